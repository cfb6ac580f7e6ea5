"""Issue 12: a steady `digest run` takes the quiet path (digest.quiet) only while the seal a
full cycle wrote still holds, and then writes the same rows and prints the same lines as the
full path; anything that could give a cycle work breaks the seal."""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import FIXTURES, MAIL_SECRET
from http_server import FixtureServer, Route
from smtp_server import Mailbox, SmtpServer
from sqlalchemy import text

import digest.pipeline
import digest.quiet
from digest.cli.main import main
from digest.store import open_store, schema
from digest.store.quiet import SCHEMA_VERSION, read_seal

FEED = (FIXTURES / "sources" / "journal.rss").read_bytes()
DB = Path("digest.sqlite3")


class Paths:
    """Which path each `digest run` took: "full" when it went through pipeline.run_cycle."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.full = 0
        real = digest.pipeline.run_cycle

        def spy(*args: Any, **kwargs: Any) -> Any:
            self.full += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(digest.pipeline, "run_cycle", spy)

    def run(self, *args: str) -> tuple[str, int, str, str]:
        """One `digest run`: (path, exit code, stdout, stderr)."""
        before = self.full
        result = CliRunner().invoke(main, ["run", *args], catch_exceptions=False)
        path = "full" if self.full > before else "quiet"
        return path, result.exit_code, result.stdout, result.stderr


@pytest.fixture
def paths(monkeypatch: pytest.MonkeyPatch) -> Paths:
    return Paths(monkeypatch)


def configure(location: str, extra: str = "") -> None:
    Path("digest.toml").write_text(
        f'{extra}[[sources]]\nname = "journal"\nlocation = "{location}"\nformat = "feed"\n')


def file_source() -> Path:
    feed = Path("journal.rss").resolve()
    feed.write_bytes(FEED)
    configure(str(feed))
    return feed


def http_source(server: FixtureServer, extra: str = "") -> Route:
    route = Route(FEED, "application/rss+xml", etag='"v1"')
    server.routes["/journal"] = route
    configure(server.url("/journal"), extra)
    return route


def settle(paths: Paths) -> None:
    """The first run ingests the feed and seals; the next one is quiet."""
    assert paths.run()[:2] == ("full", 0)
    assert read_seal(DB) is not None
    path, code, out, _ = paths.run()
    assert (path, code) == ("quiet", 0)
    assert out.startswith("journal: 0 new snapshots\ncycle ok: 0 snapshots, 0 new papers, 0 sent,")


def tables(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every table's rows, with the cycle's times and duration, and the fetch times, masked."""
    conn = sqlite3.connect(db)
    try:
        names = [n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        found = {n: conn.execute(f"SELECT * FROM {n} ORDER BY 1").fetchall() for n in names}
    finally:
        conn.close()
    found["cycles"] = [(*row[:1], "T", "T", *row[3:8], re.sub(r'"seconds": [0-9.]+', "S", row[8]))
                       for row in found["cycles"]]
    found["fetches"] = [(*row[:3], "T", *row[4:]) for row in found["fetches"]]
    return found


def masked(out: str) -> str:
    return re.sub(r"[0-9.]+ s$", "S s", out, flags=re.M)


# -- the contract: same rows, same output ---------------------------------------------------


@pytest.mark.parametrize("kind", ["file", "http"])
def test_a_quiet_cycle_writes_and_prints_what_the_full_path_does(
        kind: str, isolated: Path, paths: Paths, server: FixtureServer,
        monkeypatch: pytest.MonkeyPatch) -> None:
    if kind == "file":
        file_source()
    else:
        http_source(server)
    settle(paths)
    assert not Path("digest.sqlite3-wal").exists()
    shutil.copy(DB, "before.sqlite3")
    path, code, quiet_out, quiet_err = paths.run()
    assert path == "quiet"
    quiet = tables(DB)
    shutil.copy("before.sqlite3", DB)
    monkeypatch.setattr(digest.quiet, "quiet_cycle", lambda *args: None)
    path, full_code, full_out, full_err = paths.run()
    assert path == "full"
    assert (code, masked(quiet_out), quiet_err) == (full_code, masked(full_out), full_err)
    assert quiet == tables(DB)
    assert quiet["quiet_seal"]  # the full path sealed again: the same seal
    if kind == "http":
        assert [hit.status for hit in server.hits] == [200, 304, 304, 304]
        assert all(hit.headers["if-none-match"] == '"v1"' for hit in server.hits[1:])
        assert quiet["fetches"][-1][4:] == (304, '"v1"', None, "", None, None)


# -- what breaks the seal ---------------------------------------------------------------------


def test_a_new_subscriber_breaks_the_seal(isolated: Path, paths: Paths) -> None:
    file_source()
    settle(paths)
    assert CliRunner().invoke(main, ["subscribers", "add", "ada@example.org"]).exit_code == 0
    assert read_seal(DB) is None
    assert paths.run()[:2] == ("full", 0)
    assert paths.run()[0] == "quiet"  # the full cycle had nothing left to do: sealed again


def test_a_held_digest_is_never_sealed_and_its_release_is_sent(isolated: Path,
                                                                 paths: Paths) -> None:
    """A digest the flood guard holds leaves pending deliveries: the cycle is ok, but a later
    one has work once it is released (a seal would have hidden it)."""
    feed = file_source()
    configure(str(feed), "[email]\nmax_new = 1\n")
    assert CliRunner().invoke(main, ["subscribers", "add", "ada@example.org"]).exit_code == 0
    path, code, _, err = paths.run()
    assert (path, code) == ("full", 0) and "held:" in err
    assert read_seal(DB) is None
    assert paths.run()[0] == "full"
    name = next(Path("out/digests").glob("*.md")).name.removesuffix(".md")
    assert CliRunner().invoke(main, ["release", name]).exit_code == 0
    assert paths.run()[:2] == ("full", 0)
    assert len(list(Path("out/outbox").iterdir())) == 1
    assert paths.run()[0] == "quiet"


def test_a_deleted_output_breaks_the_seal_and_is_rewritten(isolated: Path, paths: Paths) -> None:
    file_source()
    settle(paths)
    page = next(Path("out/digests").glob("*.email.txt"))
    page.unlink()
    path, code, _, err = paths.run()
    assert (path, code) == ("full", 0) and "rewrote the missing outputs" in err
    assert page.is_file()
    assert paths.run()[0] == "quiet"


def test_changed_settings_or_templates_break_the_seal(isolated: Path, paths: Paths,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    file_source()
    settle(paths)
    monkeypatch.setenv("DIGEST_SITE_TITLE", "Another title")
    assert paths.run()[0] == "full"
    assert "Another title" in Path("out/index.html").read_text()
    assert paths.run()[0] == "quiet"
    Path("digest.toml").write_text(Path("digest.toml").read_text() + "\n")
    assert paths.run()[0] == "full"
    templates = Path("templates")
    templates.mkdir()
    (templates / "notes.txt").write_text("mine\n")
    monkeypatch.setenv("DIGEST_TEMPLATES", str(templates))
    assert paths.run()[0] == "full"
    assert paths.run()[0] == "quiet"
    (templates / "notes.txt").write_text("mine, changed\n")
    assert paths.run()[0] == "full"


def test_a_deleted_empty_templates_folder_takes_the_full_path_and_its_error(
        isolated: Path, paths: Paths, monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty folder has no files, as a missing one has none: the seal tells them apart."""
    file_source()
    Path("mine").mkdir()
    monkeypatch.setenv("DIGEST_TEMPLATES", "mine")
    settle(paths)
    Path("mine").rmdir()
    _, code, out, err = paths.run()  # the settings refuse it, before any cycle
    assert code == 2 and "cycle ok" not in out
    assert err.startswith("error: ") and "does not exist" in err


def test_a_changed_file_is_hashed_and_only_other_bytes_break_the_seal(
        isolated: Path, paths: Paths) -> None:
    feed = file_source()
    settle(paths)
    os.utime(feed, ns=(feed.stat().st_atime_ns, feed.stat().st_mtime_ns + 10**9))
    assert paths.run()[0] == "quiet"  # touched, same bytes: hashed, unchanged
    changed = FEED.replace(b"Journal", b"Jurnal!", 1)
    assert len(changed) == len(FEED) and changed != FEED
    feed.write_bytes(changed)
    path, code, out, _ = paths.run()
    assert (path, code) == ("full", 0) and "journal: 1 new snapshot\n" in out


def test_other_bytes_under_the_same_size_and_mtime_break_the_seal(
        isolated: Path, paths: Paths) -> None:
    """`touch -d`, `cp -p` or `rsync -t` of other bytes of the same length keep size and
    mtime: the ctime (no user can set it) and the inode still move, so the file is hashed."""
    feed = file_source()
    settle(paths)
    before = feed.stat()
    changed = FEED.replace(b"Journal", b"Jurnal!", 1)
    assert len(changed) == len(FEED)
    feed.write_bytes(changed)
    os.utime(feed, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (feed.stat().st_size, feed.stat().st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    path, code, out, _ = paths.run()
    assert (path, code) == ("full", 0) and "journal: 1 new snapshot\n" in out


def test_secrets_reach_the_seal_only_as_set_or_not(tmp_path: Path) -> None:
    """A hash of a secret in the store would let a copy of it test guesses offline: only
    whether DIGEST_SECRET / DIGEST_EMAIL_SMTP_PASSWORD are set is part of the fingerprint."""
    def fingerprint(**env: str) -> str:
        return digest.quiet.settings_fingerprint(None, None, None, None, env, tmp_path)

    assert fingerprint(DIGEST_SECRET="a" * 40) == fingerprint(DIGEST_SECRET="b" * 40)
    assert fingerprint(DIGEST_EMAIL_SMTP_PASSWORD="x") == fingerprint(
        DIGEST_EMAIL_SMTP_PASSWORD="y")
    assert fingerprint(DIGEST_SECRET="a" * 40) != fingerprint()
    assert fingerprint(DIGEST_SITE_TITLE="A") != fingerprint(DIGEST_SITE_TITLE="B")


def test_a_source_the_quiet_check_cannot_read_takes_the_full_path(
        isolated: Path, paths: Paths, monkeypatch: pytest.MonkeyPatch) -> None:
    """A folder it may not list (a permission error) is no traceback from the quiet check:
    the full path runs and says what is wrong, if anything is."""
    file_source()
    settle(paths)

    def refused(_: object) -> list[Path]:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(digest.quiet, "expand_paths", refused)
    path, code, out, _ = paths.run()
    assert (path, code) == ("full", 0) and "journal: 0 new snapshots\n" in out
    assert read_seal(DB) is None  # nor can the full path seal what it could not list


def test_a_new_file_in_a_folder_source_breaks_the_seal(isolated: Path, paths: Paths) -> None:
    folder = Path("captures").resolve()
    folder.mkdir()
    (folder / "2026-03-01.rss").write_bytes(FEED)
    configure(str(folder))
    settle(paths)
    (folder / "2026-03-02.rss").write_bytes(FEED.replace(b"Journal", b"Jurnal!", 1))
    path, code, out, _ = paths.run()
    assert (path, code) == ("full", 0) and "journal: 1 new snapshot\n" in out


def test_a_new_listing_over_http_is_fetched_by_the_full_path(
        isolated: Path, paths: Paths, server: FixtureServer) -> None:
    route = http_source(server)
    settle(paths)
    route.body, route.etag = FEED.replace(b"Journal", b"Jurnal!", 1), '"v2"'
    path, code, out, _ = paths.run()
    assert (path, code) == ("full", 0) and "journal: 1 new snapshot\n" in out
    # One extra request that day: the quiet path's conditional GET, then the full path's.
    assert [hit.status for hit in server.hits][-2:] == [200, 200]
    assert paths.run()[0] == "quiet"


def test_a_listing_without_validators_is_never_sealed(isolated: Path, paths: Paths,
                                                     server: FixtureServer) -> None:
    """Without an ETag or Last-Modified there is nothing for a quiet check to ask: every
    run is a full one, and makes one request."""
    server.routes["/journal"] = Route(FEED, "application/rss+xml")
    configure(server.url("/journal"))
    assert paths.run()[:2] == ("full", 0)
    assert read_seal(DB) is None
    assert paths.run()[:2] == ("full", 0)
    assert len(server.hits) == 2


def test_a_stalling_server_sends_the_quiet_check_to_the_full_path_in_bounded_time(
        isolated: Path, paths: Paths, server: FixtureServer) -> None:
    route = http_source(server, "[fetch]\ndeadline = 1\n")
    settle(paths)
    route.delay = 3.0
    start = time.monotonic()
    path, code, _, err = paths.run()
    assert (path, code) == ("full", 1) and "deadline" in err
    assert time.monotonic() - start < 2.9  # one deadline for each path, no 3 s wait for either


def test_a_failing_source_is_not_sealed_and_its_recovery_is_reported(
        isolated: Path, paths: Paths, server: FixtureServer) -> None:
    route = http_source(server)
    settle(paths)
    route.failures = [404, 404]  # the quiet check's answer, then the full path's
    assert paths.run()[:2] == ("full", 1)
    assert read_seal(DB) is None
    path, code, _, err = paths.run()
    assert (path, code) == ("full", 0) and "journal: recovered after 1 failed cycle" in err
    assert paths.run()[0] == "quiet"


def test_another_schema_version_takes_the_full_path(isolated: Path, paths: Paths,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    assert SCHEMA_VERSION == schema.MIGRATIONS[-1][0]
    file_source()
    settle(paths)
    later = SCHEMA_VERSION + 1

    def m006(conn: Any) -> None:
        pass

    monkeypatch.setattr(schema, "MIGRATIONS", [*schema.MIGRATIONS, (later, "next", m006)])
    monkeypatch.setattr(digest.quiet, "SCHEMA_VERSION", later)
    assert paths.run()[:2] == ("full", 0)  # a newer release: the seal is of the old schema
    monkeypatch.undo()
    paths = Paths(monkeypatch)
    assert paths.run()[0] == "full"  # an older release on a newer store: never trusted


# -- races, kills, PostgreSQL -------------------------------------------------------------


def test_a_write_between_the_checks_and_the_record_sends_the_quiet_path_away(
        isolated: Path, paths: Paths, monkeypatch: pytest.MonkeyPatch) -> None:
    file_source()
    settle(paths)
    cycles = len(tables(DB)["cycles"])
    real = digest.quiet._files_unchanged

    def meanwhile(*args: Any) -> bool:
        store = open_store(f"sqlite:///{DB}")
        with store.transaction():  # any write (this one writes nothing else) breaks the seal
            pass
        store.close()
        return real(*args)

    monkeypatch.setattr(digest.quiet, "_files_unchanged", meanwhile)
    assert paths.run()[:2] == ("full", 0)
    assert len(tables(DB)["cycles"]) == cycles + 1  # the full cycle's alone


KILLED = """
import os, signal, sqlite3, sys
import digest.store.quiet as q

class Killing:
    def __init__(self, conn): self.conn = conn
    def __getattr__(self, name): return getattr(self.conn, name)
    def execute(self, sql, *args):
        if sql == "COMMIT":
            os.kill(os.getpid(), signal.SIGKILL)
        return self.conn.execute(sql, *args)

real = sqlite3.connect
q.sqlite3 = type("M", (), {"connect": staticmethod(lambda *a, **k: Killing(real(*a, **k))),
                           "Error": sqlite3.Error})
sys.argv = ["digest", "run"]
from digest.cli.main import main
main()
"""


def test_a_quiet_cycle_killed_before_its_commit_leaves_the_store_as_it_was(
        isolated: Path, paths: Paths) -> None:
    file_source()
    settle(paths)
    before = tables(DB)
    killed = subprocess.run([sys.executable, "-c", KILLED], capture_output=True, text=True)
    assert killed.returncode == -9, killed.stderr
    conn = sqlite3.connect(DB)
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    conn.close()
    assert tables(DB) == before
    assert paths.run()[:2] == ("quiet", 0)
    assert len(tables(DB)["cycles"]) == len(before["cycles"]) + 1


def test_a_postgresql_store_always_takes_the_full_path(isolated: Path, paths: Paths,
                                                       pg_url: str) -> None:
    file_source()
    assert paths.run("--db", pg_url)[:2] == ("full", 0)
    path, code, out, _ = paths.run("--db", pg_url)
    assert (path, code) == ("full", 0) and out.startswith("journal: 0 new snapshots\ncycle ok")
    store = open_store(pg_url)
    try:
        with store.read() as tx:
            assert tx.conn.scalar(text("SELECT count(*) FROM quiet_seal")) == 0
            assert len(tx.cycles.history()) == 2
    finally:
        store.close()


def test_no_seal_for_a_single_source_or_without_sending(isolated: Path, paths: Paths) -> None:
    file_source()
    assert paths.run("--source", "journal")[:2] == ("full", 0)
    assert read_seal(DB) is None
    assert paths.run("--no-send")[0] == "full"
    assert read_seal(DB) is None
    assert paths.run()[0] == "full"
    assert paths.run()[0] == "quiet"


def test_a_deferred_delivery_is_never_sealed_and_the_next_run_sends_it(
        isolated: Path, paths: Paths, monkeypatch: pytest.MonkeyPatch) -> None:
    box = Mailbox(script={"ada@example.org": ["451 4.3.0 try again later"]})
    with SmtpServer(box) as smtp:
        for name, value in {**smtp.env(), "DIGEST_SECRET": MAIL_SECRET,
                            "DIGEST_SITE_BASE_URL": "https://papers.example.org",
                            "DIGEST_EMAIL_RETRIES": "0"}.items():
            monkeypatch.setenv(name, value)
        file_source()
        assert CliRunner().invoke(main, ["subscribers", "add", "ada@example.org"]).exit_code == 0
        path, code, out, _ = paths.run()
        assert (path, code) == ("full", 1) and "1 deferred" in out
        assert read_seal(DB) is None
        path, code, out, _ = paths.run()
        assert (path, code) == ("full", 0) and "1 sent" in out
        assert len(box.messages) == 1
        assert paths.run()[:2] == ("quiet", 0)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def tls_server_context(folder: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A server TLS context for 127.0.0.1 with a fresh self-signed certificate, which the
    client side trusts (SSL_CERT_FILE, as httpx and the quiet check read it)."""
    import ssl

    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


def test_an_https_source_is_checked_with_the_certificates_httpx_trusts(
        isolated: Path, paths: Paths, monkeypatch: pytest.MonkeyPatch) -> None:
    context = tls_server_context(isolated, monkeypatch)
    server = FixtureServer()
    server.httpd.socket = context.wrap_socket(server.httpd.socket, server_side=True)
    with server:
        server.routes["/journal"] = Route(FEED, "application/rss+xml", etag='"v1"')
        configure(server.url("/journal").replace("http://", "https://"))
        settle(paths)
        assert [hit.status for hit in server.hits] == [200, 304]
        monkeypatch.delenv("SSL_CERT_FILE")  # a server neither path trusts: the full path says so
        path, code, _, err = paths.run()
        assert (path, code) == ("full", 1) and "CERTIFICATE_VERIFY_FAILED" in err


# -- the console script: a steady `digest run` before click loads ---------------------------


@pytest.mark.parametrize(("argv", "expected"), [
    (["run"], {}),
    (["--config", "d.toml", "run"], {"--config": "d.toml"}),
    (["--config=d.toml", "run", "--db", "sqlite:///x.db", "--out=o", "--templates", "t"],
     {"--config": "d.toml", "--db": "sqlite:///x.db", "--out": "o", "--templates": "t"}),
    (["run", "--out", "run"], {"--out": "run"}),
    (["run", "--no-send"], None), (["run", "--source", "a"], None), (["run", "-h"], None),
    (["run", "--db"], None), (["run", "--db", "a", "--db", "b"], None),
    (["run", "--config", "d.toml"], None), (["--db", "x", "run"], None), (["ingest"], None),
    (["run", "run"], None), ([], None), (["--config", "run"], None), (["run", "--out="], None),
    (["run", "--out", "--db"], None), (["run", "--"], None), (["--version"], None),
])
def test_the_console_script_takes_only_plain_runs_quietly(
        argv: list[str], expected: dict[str, str] | None) -> None:
    """Any command line but `[--config F] run [--db U] [--out D] [--templates D]` goes to
    click, which reads, checks and explains it."""
    from digest.cli.entry import quiet_arguments

    found = quiet_arguments(argv)
    if expected is None:
        assert found is None
    else:
        assert found == {"--config": None, "--db": None, "--out": None, "--templates": None,
                         **expected}


@pytest.mark.parametrize("toml", [
    None, "", '[store]\nurl = "sqlite:///from-file.db"\n', '[store]\nurl = ""\n',
    '[site]\ntitle = "T"\n', '[store]\n',
])
@pytest.mark.parametrize("env", [{}, {"DIGEST_DB": "sqlite:///env-db.db"},
                                 {"DIGEST_STORE_URL": "sqlite:///env-url.db"},
                                 {"DIGEST_DB": "", "DIGEST_STORE_URL": "sqlite:///env-url.db"}])
@pytest.mark.parametrize("db", [None, "sqlite:///option.db"])
def test_the_quiet_store_is_the_store_the_settings_name(
        toml: str | None, env: dict[str, str], db: str | None, tmp_path: Path) -> None:
    """The quiet path reads the store URL without the settings module; it must name the
    store `load_settings` names, or say it does not know (None)."""
    from digest.config import load_settings

    config = None
    if toml is not None:
        config = str(tmp_path / "digest.toml")
        Path(config).write_text(toml)
    settings = load_settings(db=db, env=env, config=config)
    assert digest.quiet.store_url(db, config, env) == settings.db_url


@pytest.mark.parametrize("toml", ['[store]\nurl = 5\n', "[store\n", "store = 1\n"])
def test_a_store_url_the_quiet_path_cannot_read_leaves_it_to_the_full_path(
        toml: str, tmp_path: Path) -> None:
    config = tmp_path / "digest.toml"
    config.write_text(toml)
    assert digest.quiet.store_url(None, str(config), {}) is None


def _script(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`digest ARGS` as the console script runs it, in a fresh interpreter, printing the
    modules it loaded last."""
    probe = ("import json, runpy, sys\n"
             f"sys.argv = ['digest', *{list(args)!r}]\n"
             "try:\n    runpy.run_module('digest', run_name='__main__')\n"
             "except SystemExit as stop:\n    assert stop.code in (0, None), stop.code\n"
             "print(json.dumps(sorted(sys.modules)))\n")
    return subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env)


def test_a_steady_run_is_answered_before_click_loads(isolated: Path, paths: Paths) -> None:
    """The quiet cycle costs less than importing click and the commands (issue 12), so the
    console script answers it first, with the lines `run` prints."""
    file_source()
    settle(paths)
    _, _, expected, _ = paths.run()
    done = _script("run")
    assert done.returncode == 0, done.stderr
    *lines, modules = done.stdout.splitlines()
    assert masked("\n".join(lines) + "\n") == masked(expected)
    loaded = json.loads(modules)
    assert "digest.quiet" in loaded
    assert [m for m in ("click", "digest.cli.main", "digest.config") if m in loaded] == []


def test_a_run_the_seal_does_not_cover_asks_the_server_once_for_the_quiet_check(
        isolated: Path, paths: Paths, server: FixtureServer) -> None:
    """The console script tried the quiet cycle and it did not hold: click's `run` goes
    straight to the full path (one conditional GET for the check, one fetch)."""
    route = http_source(server)
    settle(paths)
    route.body, route.etag = FEED.replace(b"Journal", b"Jurnal!", 1), '"v2"'
    before = len(server.hits)
    done = _script("run")
    assert done.returncode == 0, done.stderr
    assert "journal: 1 new snapshot\n" in done.stdout
    assert [hit.status for hit in server.hits[before:]] == [200, 200]
    assert "click" in json.loads(done.stdout.splitlines()[-1])


def test_the_console_script_leaves_its_objects_to_the_exit_not_to_the_collector() -> None:
    """Python's shutdown ran full collections over everything a first run made (0.1 s of
    0.8 s): the command freezes what it made when it is done, whatever the way it ends. (In
    a fresh interpreter: frozen objects in this one would be collected in a later test.)"""
    probe = ("import gc, sys\nsys.argv = ['digest', '--version']\n"
             "from digest.cli.entry import main\n"
             "try:\n    main()\nexcept SystemExit:\n    pass\n"
             "print(gc.get_freeze_count())\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.splitlines()[-1]) > 0


def test_a_quiet_run_whose_reader_left_exits_1_without_a_traceback(isolated: Path,
                                                                  paths: Paths) -> None:
    """`digest run | head -0`: as the full path (click), exit 1 and no traceback."""
    file_source()
    settle(paths)
    readable, writable = os.pipe()
    os.close(readable)
    probe = ("import runpy, sys\nsys.argv = ['digest', 'run']\n"
             "runpy.run_module('digest', run_name='__main__')\n")
    try:
        done = subprocess.run([sys.executable, "-c", probe], stdout=writable,
                              stderr=subprocess.PIPE, text=True)
    finally:
        os.close(writable)
    assert (done.returncode, done.stderr) == (1, "")


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_a_tls_server_that_stalls_after_the_handshake_leaves_no_socket_open(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The quiet check's deadline ends the wait; the TLS socket (which owns the connection
    once wrapped) is closed then too, not left to the garbage collector."""
    import gc
    import socket
    import ssl
    import threading

    context = tls_server_context(tmp_path, monkeypatch)
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[ssl.SSLSocket] = []

    def serve() -> None:  # handshake, then silence
        for _ in range(3):
            conn, _ = listener.accept()
            held.append(context.wrap_socket(conn, server_side=True))

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    url = f"https://127.0.0.1:{listener.getsockname()[1]}/feed"
    gc.disable()
    try:
        before = len(os.listdir("/proc/self/fd"))
        for _ in range(3):
            assert digest.quiet._not_modified(url, '"v1"', None, deadline=0.3) is False
        server.join(5)
        assert len(os.listdir("/proc/self/fd")) - len(held) == before
    finally:
        gc.enable()
        for conn in held:
            conn.close()
        listener.close()
