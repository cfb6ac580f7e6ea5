"""Benchmark the feed -> email job against rss2email 3.14 in digest mode.

    pip install rss2email==3.14         # the peer (not a dependency of paper-digest)
    python bench/feed_to_email.py       # 5 alternating rounds
    python bench/feed_to_email.py --rounds 9 --items 2000

Both tools watch the same 2,000-item RSS 2.0 feed, served over http by a local server on
127.0.0.1 (and, for the file-source case, read from disk), for one subscriber, sending to
one aiosmtpd sink on 127.0.0.1 in its own process. Each round, for each tool, in turn:
a *first run* in a fresh state folder (everything is new: one digest email), then a
*steady run* (nothing new). Wall time of the whole command, interpreter start-up included,
since that is what a cron job costs; medians over the rounds; ratio = digest / rss2email.

Targets (issue 12): first run <= 0.5x; steady run <= 0.5x, over http and for a file source.
"""

from __future__ import annotations

import argparse
import configparser
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from send import SINK  # noqa: E402

BIN = Path(sys.executable).parent
WORDS = "model data learning language vision reasoning diffusion agent training benchmark".split()


def write_feed(path: Path, items: int) -> None:
    """An RSS 2.0 feed of `items` invented articles, each with a DOI link and a guid."""
    start = datetime(2026, 3, 1, tzinfo=UTC)
    entries = []
    for i in range(items):
        words = " ".join(WORDS[(i * 7 + k) % len(WORDS)] for k in range(6))
        entries.append(
            f"<item><title>Article {i}: {words.title()}</title>"
            f"<link>https://doi.org/10.5555/bench.{i}</link><guid>bench-{i}</guid>"
            f"<description>{' '.join([words] * 12)}.</description>"
            f"<pubDate>{format_datetime(start + timedelta(minutes=i))}</pubDate></item>")
    path.write_text('<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel>'
                    "<title>Bench journal</title><link>https://journal.example.org/</link>"
                    "<description>bench</description>" + "".join(entries) + "</channel></rss>")


class Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *_: object) -> None:
        pass


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def timed(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode not in (0,):
        raise SystemExit(f"{' '.join(argv)} in {cwd}: exit {done.returncode}\n{done.stderr[-2000:]}")
    return seconds


def rss2email_rounds(state: Path, url: str, smtp_port: int) -> tuple[float, float]:
    """A first and a steady `r2e run` in a fresh state folder."""
    shutil.rmtree(state, ignore_errors=True)
    state.mkdir(parents=True)
    config, data = state / "r2e.cfg", state / "r2e.json"
    r2e = [str(BIN / "r2e"), "-c", str(config), "-d", str(data)]
    subprocess.run(r2e + ["new", "reader@example.org"], check=True, capture_output=True)
    settings = configparser.ConfigParser(interpolation=None)
    settings.read(config)
    settings["DEFAULT"].update({"digest": "True", "email-protocol": "smtp", "smtp-auth": "False",
                                "smtp-server": f"127.0.0.1:{smtp_port}", "smtp-ssl": "False",
                                "from": "bench@example.org"})
    with config.open("w") as file:
        settings.write(file)
    subprocess.run(r2e + ["add", "bench", url], check=True, capture_output=True)
    return timed(r2e + ["run"], state), timed(r2e + ["run"], state)


def digest_rounds(state: Path, location: str, smtp_port: int) -> tuple[float, float]:
    """A first and a steady `digest run` in a fresh state folder."""
    shutil.rmtree(state, ignore_errors=True)
    state.mkdir(parents=True)
    (state / "digest.toml").write_text(
        '[site]\nbase_url = "https://papers.example.org"\n'
        f'[email]\nsmtp_host = "127.0.0.1"\nsmtp_port = {smtp_port}\nsmtp_security = "none"\n'
        'from = "Bench <bench@example.org>"\nmax_new = 100000\n'
        # No arXiv look-ups: rss2email has none, and a benchmark stays off the network.
        '[enrich]\narxiv = false\n'
        f'[[sources]]\nname = "bench"\nlocation = "{location}"\nformat = "feed"\n')
    env = {"PATH": str(BIN), "DIGEST_SECRET": "bench-secret-" + "x" * 40, "HOME": str(state)}
    if "PYTHONPATH" in os.environ:  # another checkout's code, to measure a before and an after
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    digest = str(BIN / "digest")
    subprocess.run([digest, "subscribers", "add", "reader@example.org"], cwd=state, env=env,
                   check=True, capture_output=True)
    return timed([digest, "run"], state, env), timed([digest, "run"], state, env)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--items", type=int, default=2000)
    args = parser.parse_args()
    if not (BIN / "r2e").exists():
        raise SystemExit("rss2email is not installed here: pip install rss2email==3.14")
    work = Path(tempfile.mkdtemp(prefix="bench-feed-"))
    site = work / "site"
    site.mkdir()
    write_feed(site / "feed.xml", args.items)
    http = ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(site)))
    threading.Thread(target=http.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{http.server_address[1]}/feed.xml"
    smtp_port = free_port()
    sink = subprocess.Popen([sys.executable, "-c", SINK, str(smtp_port)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert sink.stdout is not None and sink.stdout.readline().strip() == "ready"
    cases = {"http": url, "file": str(site / "feed.xml")}
    times: dict[str, list[float]] = {}
    try:
        for _ in range(args.rounds):
            for case, location in cases.items():
                theirs = rss2email_rounds(work / "r2e", location, smtp_port)
                ours = digest_rounds(work / "digest", location, smtp_port)
                for phase, index in (("first", 0), ("steady", 1)):
                    times.setdefault(f"{case} {phase} rss2email", []).append(theirs[index])
                    times.setdefault(f"{case} {phase} digest", []).append(ours[index])
    finally:
        http.shutdown()
        sink.communicate("")
    results = {}
    for case in cases:
        for phase in ("first", "steady"):
            mine = statistics.median(times[f"{case} {phase} digest"])
            peer = statistics.median(times[f"{case} {phase} rss2email"])
            results[f"{case} {phase} run"] = {"digest_s": round(mine, 3), "rss2email_s": round(peer, 3),
                                              "ratio": round(mine / peer, 2)}
    print(json.dumps({"rounds": args.rounds, "items": args.items, "results": results}, indent=2))


if __name__ == "__main__":
    main()
