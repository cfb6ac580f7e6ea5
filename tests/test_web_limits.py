"""The web app stays up for everyone: pages never wait on a mail server, bodies are capped
before parsing, subscribing is limited per client and per address, X-Forwarded-For counts
only from configured proxies, and malformed input or a vanished client never gives a 500
(and every response, errors included, carries the security headers). Real HTTP throughout."""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import threading
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from smtp_server import Mailbox, SmtpServer
from starlette.testclient import TestClient
from web_server import WebServer

from digest.config import EmailSettings, Settings, WebSettings
from digest.mail import subscribers as book
from digest.mail.transport import SmtpTransport
from digest.publish.site import Site
from digest.store import Store, open_store
from digest.web.app import create_app
from digest.web.safety import SECURITY_HEADERS

SECRET = "web-limits-secret-0123456789abcdefghij"


def make_settings(tmp_path: Path, db_url: str | None = None, smtp_port: int | None = None,
                  **web: Any) -> Settings:
    email = EmailSettings(secret=SECRET, from_address="papers@example.org")
    if smtp_port:
        email = EmailSettings(secret=SECRET, from_address="papers@example.org",
                              smtp_host="127.0.0.1", smtp_port=smtp_port, smtp_security="none")
    return Settings(db_url=db_url or f"sqlite:///{tmp_path / 'w.sqlite3'}", out_dir=tmp_path / "out",
                    site=Site(base_url="https://papers.example.org"), email=email,
                    web=WebSettings(**web))


def csrf(client: httpx.Client | TestClient) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', client.get("/").text).group(1)  # type: ignore[union-attr]


def has_security_headers(response: httpx.Response) -> bool:
    return all(response.headers.get(name) == value for name, value in SECURITY_HEADERS.items())


SlowWorld = tuple[Mailbox, threading.Event, Store, Any]


@pytest.fixture
def slow_smtp(tmp_path: Path) -> Iterator[SlowWorld]:
    """The app over a mail server that takes every RCPT only once the test opens the gate."""
    gate = threading.Event()
    box = Mailbox(gate=gate)
    with SmtpServer(box) as server:
        settings = make_settings(tmp_path, smtp_port=server.port)
        store = open_store(settings.db_url)
        app = create_app(store, settings, transport=lambda: SmtpTransport(settings.email))
        try:
            yield box, gate, store, app
        finally:
            gate.set()
            store.close()


def test_pages_never_wait_on_a_slow_mail_server(slow_smtp: SlowWorld) -> None:
    box, gate, store, app = slow_smtp
    book.add(store, "known@example.org")
    book.set_status(store, "known@example.org", book.PAUSED)
    # The mail server answers no RCPT until the gate opens, so every answer below that
    # comes at all came while it stalled (before, the first subscribe waited on it, and
    # every page with it: the client gives up after 15 s).
    with WebServer(app) as web, httpx.Client(base_url=web.url, timeout=15) as client:
        token = csrf(client)
        answers = [client.post("/subscribe", data={"email": address, "csrf": token})
                   for address in ("new@example.org", "known@example.org")]
        assert [a.status_code for a in answers] == [200, 200]
        # Known or not, the same answer (the lookup happens after it, on the mail thread).
        assert answers[0].text.replace("new@", "X@") == answers[1].text.replace("known@", "X@")
        assert client.get("/").status_code == 200 and client.get("/feed.xml").status_code == 200
        assert box.messages == [] and not gate.is_set()  # all that while the server stalled
        gate.set()
        app.state.mailer.join()
    assert sorted(r for _, rcpts, _ in box.messages for r in rcpts) == [
        "known@example.org", "new@example.org"]


def _raw_post(port: int, headers: str, chunks: Iterator[bytes]) -> bytes:
    """POST over a raw socket, streaming `chunks`; return what the server answered."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(headers.encode())
        try:
            for chunk in chunks:
                sock.sendall(chunk)
        except OSError:
            pass  # the server answered and closed early: the point of the cap
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_WR)
        answer = b""
        try:
            while data := sock.recv(65536):
                answer += data
        except OSError:
            pass
        return answer


def test_bodies_are_capped_before_parsing(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, max_body=65536)
    store = open_store(settings.db_url)
    megabyte = b"x" * (1 << 20)
    with WebServer(create_app(store, settings)) as web:
        # Declared too large: refused before a byte of the body is read.
        declared = _raw_post(web.port, "POST /subscribe HTTP/1.1\r\nHost: x\r\nContent-Type: "
                             "application/x-www-form-urlencoded\r\nContent-Length: 419430400\r\n\r\n",
                             iter([b"email=" + megabyte[:1000]]))
        assert declared.startswith(b"HTTP/1.1 413 ")
        assert b"\r\ncontent-security-policy: default-src 'none'" in declared.lower()
        # Chunked, so no length is declared: counted as it arrives, and refused past the cap.
        tracemalloc.start()
        chunked = _raw_post(web.port, "POST /subscribe HTTP/1.1\r\nHost: x\r\nContent-Type: "
                            "application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n",
                            (b"%x\r\n%s\r\n" % (len(megabyte), megabyte) for _ in range(40)))
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert chunked.startswith(b"HTTP/1.1 413 ")
        assert peak < 8 * (1 << 20), f"{peak / (1 << 20):.1f} MB held for one request"
        # Many fields within the cap: still refused (a form here has a handful).
        with httpx.Client(base_url=web.url, timeout=10) as client:
            many = client.post("/subscribe", data={f"f{i}": "1" for i in range(500)},
                               headers={"Content-Type": "application/x-www-form-urlencoded"})
            assert many.status_code == 400 and has_security_headers(many)
    store.close()


def _subscribe_codes(web: WebServer, addresses: list[str], forwarded: list[str] | None) -> list[int]:
    with httpx.Client(base_url=web.url, timeout=10) as client:
        token = csrf(client)
        return [client.post("/subscribe", data={"email": address, "csrf": token},
                            headers={"X-Forwarded-For": forwarded[i]} if forwarded else {}).status_code
                for i, address in enumerate(addresses)]


def test_forwarded_for_is_believed_only_from_configured_proxies(tmp_path: Path) -> None:
    addresses = [f"r{i}@example.org" for i in range(7)]
    spoofed = [f"203.0.113.{i}" for i in range(7)]
    store = open_store(f"sqlite:///{tmp_path / 'w.sqlite3'}")
    untrusted = make_settings(tmp_path, trusted_proxies="")
    with WebServer(create_app(store, untrusted)) as web:
        # A client rotating X-Forwarded-For is still one client: the 6th is refused.
        assert _subscribe_codes(web, addresses, spoofed)[-2:] == [429, 429]
    trusted = make_settings(tmp_path, trusted_proxies="127.0.0.1")
    with WebServer(create_app(store, trusted)) as web:
        # Behind a configured proxy, the address it forwards is the client.
        assert _subscribe_codes(web, addresses, spoofed) == [200] * 7
    store.close()


def test_one_confirmation_per_address_per_hour_whoever_asks(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, trusted_proxies="127.0.0.1")
    store = open_store(settings.db_url)
    app = create_app(store, settings)
    with WebServer(app) as web:
        codes = _subscribe_codes(web, ["victim@example.org"] * 4,
                                 ["198.51.100.1", "198.51.100.2", "198.51.100.3", "198.51.100.4"])
        assert codes == [200] * 4  # the same answer every time
        app.state.mailer.join()
    assert len(list((settings.out_dir / "outbox" / "confirm").glob("*.eml"))) == 1
    store.close()


@pytest.fixture
def any_store(store_url: str, tmp_path: Path) -> Iterator[tuple[Store, Settings]]:
    settings = make_settings(tmp_path, db_url=store_url)
    store = open_store(store_url)
    yield store, settings
    store.close()


def test_malformed_input_never_gives_a_500(any_store: tuple[Store, Settings]) -> None:
    store, settings = any_store
    ada, _ = book.add(store, "ada@example.org")
    with TestClient(create_app(store, settings), base_url="https://testserver",
                    raise_server_exceptions=False) as client:
        token = csrf(client)
        answers = [
            client.get("/digests/2026-03-11%00.html"),
            client.get("/papers/arxiv:2403.%00"),
            client.get("/confirm?token=%C3%A9t%C3%A9"),
            client.get("/unsubscribe?token=%ED%A0%80"),
            client.post("/subscribe", data={"email": "a@example.org", "csrf": "é" + token}),
            client.post("/subscribe", data={"email": "a\x00@example.org", "csrf": token}),
            client.post("/preferences", data={"token": "é", "topics": "x\x00y", "csrf": token}),
            client.post("/subscribe", content=b"\xff\xfe=\x00", headers={
                "Content-Type": "application/x-www-form-urlencoded"}),
            client.post("/subscribe", content=b"--x\r\n", headers={
                "Content-Type": "multipart/form-data; boundary=x"}),
        ]
        cookie = "digest_csrf=n\u00e9once.abc".encode()  # raw UTF-8 in the Cookie header
        answers.append(client.post("/subscribe", data={"email": "a@example.org", "csrf": "n\u00e9once.abc"},
                                   headers=[(b"cookie", cookie)]))
        answers.append(client.get("/"))
    assert [a.status_code for a in answers] == [404, 404, 400, 400, 403, 400, 400, 403, 403, 403, 200]
    assert all(has_security_headers(a) for a in answers)
    assert book.find(store, "ada@example.org") == ada


def test_every_error_carries_the_security_headers(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    settings = make_settings(tmp_path)
    store = open_store(settings.db_url)
    with TestClient(create_app(store, settings), base_url="https://testserver",
                    raise_server_exceptions=False) as client:
        missing = client.get("/no-such-page")
        wrong_method = client.delete("/subscribe")
        monkeypatch.setattr(store, "digests", lambda: 1 / 0)
        broken = client.get("/")
    assert [r.status_code for r in (missing, wrong_method, broken)] == [404, 405, 500]
    assert all(has_security_headers(r) for r in (missing, wrong_method, broken))
    store.close()


def test_a_client_that_hangs_up_mid_body_is_not_an_error(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    store = open_store(settings.db_url)
    app = create_app(store, settings)
    sent: list[dict[str, Any]] = []
    events = iter([{"type": "http.request", "body": b"email=a%40exa", "more_body": True},
                   {"type": "http.disconnect"}])

    async def receive() -> dict[str, Any]:
        return next(events)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
             "scheme": "http", "path": "/subscribe", "raw_path": b"/subscribe", "query_string": b"",
             "root_path": "", "headers": [(b"host", b"x"), (b"content-length", b"1000"), (
                 b"content-type", b"application/x-www-form-urlencoded")],
             "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 80)}
    asyncio.run(app(scope, receive, send))  # raises (a logged traceback under uvicorn) before
    assert sent[0]["status"] == 400
    store.close()


def test_confirmations_asked_for_before_a_shutdown_still_go_out(slow_smtp: SlowWorld) -> None:
    box, gate, _, app = slow_smtp
    with TestClient(app, base_url="https://testserver") as client:
        for address in ("a@example.org", "b@example.org"):
            client.post("/subscribe", data={"email": address, "csrf": csrf(client)})
        assert box.messages == []  # stalled on the mail server
        gate.set()
    # The app's shutdown waited for the queue: both went out.
    assert sorted(r for _, rcpts, _ in box.messages for r in rcpts) == ["a@example.org", "b@example.org"]
