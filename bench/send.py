"""Benchmark `digest send`: N subscribers, one digest of 50 papers, a local SMTP sink.

    python bench/send.py              # N=10,000 (and N=2,000 to show memory is flat)
    python bench/send.py --n 1000

The sink is aiosmtpd on 127.0.0.1 in its own process (it takes every message and keeps
none). In the same run, the *floor*: a bare smtplib loop sending N copies of one prebuilt
message of the same size over one connection. Target (issue 3): at least 0.6x the floor's
rate, and memory flat in N. Issue 12: CPU per message at most 2x the floor's, wall rate at
least 0.8x.
"""

from __future__ import annotations

import argparse
import json
import smtplib
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

SINK = """
import asyncio, sys
from aiosmtpd.controller import Controller
class Sink:
    count = 0
    async def handle_DATA(self, server, session, envelope):
        Sink.count += 1
        return "250 2.0.0 queued"
c = Controller(Sink(), hostname="127.0.0.1", port=int(sys.argv[1]), data_size_limit=0)
c.start()
print("ready", flush=True)
sys.stdin.read()
c.stop()
print(Sink.count, flush=True)
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _memory_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def prepare_store(folder: Path, n: int) -> str:
    """A store with one 50-paper digest planned for n subscribers."""
    from ingest import synth_snapshot

    from digest.config import Settings
    from digest.pipeline import ingest, prepare
    from digest.statuses import ACTIVE
    from digest.store import open_store

    url = f"sqlite:///{folder / 'send.sqlite3'}"
    store = open_store(url)
    stamp = datetime(2026, 3, 1, tzinfo=UTC)
    with store.transaction() as tx:  # one commit for all of them
        for i in range(n):
            tx.subscribers.add(f"reader{i}@example.org", f"Reader {i}", None, stamp,
                               reactivate=True, status=ACTIVE, list_others=None)
    snapshot = folder / "2026-03-13.txt"
    synth_snapshot(snapshot, 50)
    now = datetime.now(UTC)
    settings = Settings(db_url=url, out_dir=folder / "out")
    list(ingest(store, settings, prepare([snapshot], None, now), now))
    store.close()
    return url


def run_send(url: str, port: int, out: str) -> dict[str, float]:
    """Run `digest send` in this process; report messages, seconds and peak memory."""
    from digest.config import EmailSettings, Settings
    from digest.mail.deliver import Sender
    from digest.mail.transport import SmtpTransport
    from digest.publish.site import Site
    from digest.store import open_store

    email = EmailSettings(smtp_host="127.0.0.1", smtp_port=port, smtp_security="none",
                          from_address="papers@example.org", secret="bench-secret-0123456789abcdefghijklmn")
    settings = Settings(db_url=url, out_dir=Path(out), email=email,
                        site=Site(base_url="https://papers.example.org"))
    store = open_store(url)
    sender = Sender(store, settings, SmtpTransport(email))
    start, cpu = time.perf_counter(), time.process_time()
    summary = sender.run()
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    store.close()
    return {"sent": summary.sent, "seconds": seconds, "cpu": cpu, "peak_mb": _memory_mb()}


def run_floor(port: int, n: int, size_from: str) -> dict[str, float]:
    """A bare smtplib loop: n copies of one prebuilt message over one connection."""
    from email import policy
    from email.message import EmailMessage

    body = Path(size_from).read_text()
    message = EmailMessage(policy=policy.SMTP)
    message["From"], message["To"], message["Subject"] = "a@example.org", "b@example.org", "x"
    message.set_content(body[: len(body) // 3], cte="quoted-printable")
    message.add_alternative(body, subtype="html", cte="base64")
    data = message.as_bytes()
    conn = smtplib.SMTP("127.0.0.1", port)
    start, cpu = time.perf_counter(), time.process_time()
    for i in range(n):
        conn.sendmail("papers@example.org", [f"reader{i}@example.org"], data)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    conn.quit()
    return {"sent": n, "seconds": seconds, "cpu": cpu, "bytes": len(data)}


def with_sink(args: list[str]) -> dict[str, float]:
    port = free_port()
    sink = subprocess.Popen([sys.executable, "-c", SINK, str(port)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert sink.stdout and sink.stdout.readline().strip() == "ready"
    here = str(Path(__file__).parent)
    code = (f"import json, sys; sys.path.insert(0, {here!r}); import send; "
            "print(json.dumps(getattr(send, sys.argv[1])(*sys.argv[2:])))")
    try:
        done = subprocess.run([sys.executable, "-c", code, *args, str(port)],
                              capture_output=True, text=True, check=True)
    finally:
        received = sink.communicate("", timeout=60)[0].split()
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["received"] = int(received[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="*", default=[2_000, 10_000])
    ns = parser.parse_args().n
    with tempfile.TemporaryDirectory() as tmp:
        for n in ns:
            folder = Path(tmp) / f"n{n}"
            folder.mkdir()
            url = prepare_store(folder, n)
            ours = with_sink(["run_send_cli", url, str(folder / "out")])
            html = next((folder / "out/digests").glob("*.email.html"))
            floor = with_sink(["run_floor_cli", str(n), str(html)])
            assert ours["received"] == ours["sent"] == n, ours
            ours_rate, floor_rate = n / ours["seconds"], n / floor["seconds"]
            cpu_ratio = ours["cpu"] / floor["cpu"]
            print(f"N={n:>6}  digest send {ours_rate:7.0f} msg/s  floor {floor_rate:7.0f} msg/s  "
                  f"wall ratio {ours_rate / floor_rate:.2f}x (target >= 0.8x)  "
                  f"CPU/message {ours['cpu'] / n * 1e3:.2f} ms vs {floor['cpu'] / n * 1e3:.2f} ms "
                  f"= {cpu_ratio:.2f}x (target <= 2x)  "
                  f"peak {ours['peak_mb']:.0f} MB  message {floor['bytes'] / 1024:.0f} KB",
                  flush=True)


def run_send_cli(url: str, out: str, port: str) -> dict[str, float]:
    return run_send(url, int(port), out)


def run_floor_cli(n: str, html: str, port: str) -> dict[str, float]:
    return run_floor(int(port), int(n), html)


if __name__ == "__main__":
    main()
