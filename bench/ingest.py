"""Benchmark `digest ingest`: N new papers against a store already holding H papers.

    python bench/ingest.py                       # every reported case (SQLite and PostgreSQL)
    python bench/ingest.py --n 2000 --h 0        # one case (SQLite)
    python bench/ingest.py --only floor          # one group: growth, floor or pg
    python bench/ingest.py --pg ''               # leave PostgreSQL out
    python bench/ingest.py --pg postgresql+psycopg://user@host/db

Each measurement runs in a fresh subprocess and reports the wall time of the work (not
interpreter start-up), the peak resident memory it added and the bytes it wrote (the
store, its WAL and the outputs; /proc/self/io wchar). The cases compared with
each other run alternately, one round after another, and the median of the rounds counts.

The *floor* is what a hand-written script would do with the same snapshot: read the file,
split the entries, hash each title, store every paper (title and abstract: an ingest must
keep what it saw) in one indexed SQLite insert batch, and write a minimal Markdown list and
an escaped HTML list of the papers. So the ratios are machine-independent.

PostgreSQL runs in a fresh schema made for each run and dropped after it (nothing else in
that database is touched; bytes written there are the server's, not counted); `store` is
the store part alone (`Store.ingest`), `full` the whole `digest ingest` with every output.

Targets (issue 12): N=50,000 full within 2.5x of the floor; N=2,000 at H=1,000,000 within
1.15x of H=0 and at most 2x its bytes written; PostgreSQL within 1.2x of SQLite at N=50,000;
peak memory under 4x the snapshot size.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
WORDS = ("model data learning language vision reasoning diffusion agent training benchmark "
         "attention token graph policy reward robot speech image video scaling sparse").split()


def synth_snapshot(path: Path, n: int, seed: int = 7) -> None:
    """Write a Daily Papers page of `n` invented papers, in the real format."""
    rnd = random.Random(seed)
    parts = ["new", "Get trending papers in your email inbox!", "Subscribe",
             "byAK and the research community", "Mar 13"]
    for i in range(n):
        # Random words first: new titles land all over the title indexes, as real ones do.
        title = " ".join(rnd.choice(WORDS).title() for _ in range(7)) + f": Synthetic Paper {seed}-{i}"
        abstract = " ".join(rnd.choice(WORDS) for _ in range(150)) + (
            f". Code: https://github.com/example/p{i}." if i % 3 == 0 else ".")
        parts += [title, abstract]
        if i % 2 == 0:
            parts += [f"  • {i % 12 + 1} authors", "·", f"Mar {i % 12 + 1}, 2025 {i % 5 or ''}".strip()]
    path.write_text("\n\n".join(parts) + "\n")


def preload(db_url: str, h: int) -> None:
    """Fill a store with `h` papers (and one sighting each) the fast way, dated before the run."""
    from datetime import datetime

    from sqlalchemy import insert

    from digest.store import open_store
    from digest.store import schema as t

    rnd = random.Random(h)
    store = open_store(db_url)
    with store.engine.begin() as conn:
        sid = conn.execute(insert(t.snapshots).values(
            sha256="0" * 64, source="bench", path="preload", captured_at=datetime(2026, 1, 1),
            ingested_at=datetime(2026, 1, 1), paper_count=h, new_count=h, baseline=True,
        )).inserted_primary_key[0]
        batch = 50_000
        for start in range(0, h, batch):
            titles = [" ".join(rnd.choice(WORDS) for _ in range(7)) + f" preloaded {i}"
                      for i in range(start, min(h, start + batch))]
            rows = [{"id": i + 1, "key": f"title:{title}", "title_key": title, "title": title,
                     **({"key_hash": t.key_hash(f"title:{title}")} if "key_hash" in t.papers.c
                        else {}),  # the store before migration 5 had none (A/B runs)
                     "abstract": "x" * 200, "links": "", "first_snapshot_id": sid,
                     "first_seen_at": datetime(2026, 1, 1)} for i, title in enumerate(titles, start)]
            conn.execute(insert(t.papers), rows)
            conn.execute(insert(t.sightings), [
                {"snapshot_id": sid, "paper_id": r["id"], "rank": r["id"]} for r in rows])
    store.close()


def _memory_mb() -> tuple[float, float]:
    """(current, peak) resident memory of this process, from /proc (ru_maxrss survives exec)."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return (int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024)


def _written() -> int:
    """Bytes this process has written so far (wchar: what it handed to write(), the WAL, the
    checkpoint and the outputs). Not write_bytes: on this ext4 that counts whole large folios
    of the page cache, so one 4 KiB page written into a big store counted as 10-20 times that."""
    fields = dict(line.split(": ", 1) for line in Path("/proc/self/io").read_text().splitlines())
    return int(fields["wchar"])


def floor(snapshot: str, db_path: str, out: str) -> None:
    """The least an ingest must do, as a plain script would do it."""
    import hashlib
    import html
    import sqlite3

    lines = [line for line in Path(snapshot).read_text().split("\n") if line][5:]
    rows, i = [], 0
    while i < len(lines):
        title, abstract = lines[i], lines[i + 1]
        i += 5 if i + 3 < len(lines) and lines[i + 3] == "·" else 2
        rows.append((hashlib.sha256(title.encode()).hexdigest(), title, abstract))
    db = sqlite3.connect(db_path)
    db.execute("create table if not exists seen (hash text primary key, title text, abstract text)")
    with db:
        db.executemany("insert into seen values (?, ?, ?)", rows)
    db.close()
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    day = Path(snapshot).stem
    (folder / f"{day}.md").write_text(f"# Papers of {day}\n\n" + "".join(
        f"## {title}\n\n{abstract}\n\n" for _, title, abstract in rows))
    (folder / f"{day}.html").write_text(
        f"<!doctype html>\n<title>Papers of {day}</title>\n<h1>Papers of {day}</h1>\n<ol>\n"
        + "".join(f"<li><h2>{html.escape(title)}</h2>\n<p>{html.escape(abstract)}</p></li>\n"
                  for _, title, abstract in rows) + "</ol>\n")


def work(kind: str, snapshot: str, db_url: str, out: str) -> dict[str, float]:
    """Run one measurement in this process (called in a fresh subprocess)."""
    from click.testing import CliRunner

    from digest.cli.main import main

    base, _ = _memory_mb()
    written = _written()
    start = time.perf_counter()
    if kind == "floor":
        floor(snapshot, db_url.removeprefix("sqlite:///"), out)
    elif kind == "store":
        from datetime import UTC, datetime

        from digest.pipeline import prepare
        from digest.store import open_store

        store = open_store(db_url)
        now = datetime.now(UTC)
        for snap in prepare([snapshot], None, now):
            store.ingest(snap, now=now)
        store.close()
    else:
        result = CliRunner().invoke(main, ["ingest", "--db", db_url, "--out", out, snapshot])
        assert result.exit_code == 0, result.output
    seconds = time.perf_counter() - start
    _, peak = _memory_mb()
    return {"seconds": seconds, "peak_mb": peak, "added_mb": peak - base,
            "written_mb": (_written() - written) / 2**20}


class Case:
    """One kind of run (floor, store or full) on one backend, N new papers over H stored."""

    def __init__(self, kind: str, n: int, h: int, folder: Path, pg: str | None = None) -> None:
        self.kind, self.n, self.h, self.pg = kind, n, h, pg
        self.label = f"{kind:<5} N={n:>6} H={h:>9} {'postgresql' if pg else 'sqlite':<10}"
        self.folder = Path(tempfile.mkdtemp(prefix=f"{kind}-{n}-{h}-{'pg' if pg else 'sqlite'}-",
                                            dir=folder))
        self.snapshot = self.folder / "2026-03-13.txt"
        synth_snapshot(self.snapshot, n)
        self.template = self.folder / "template.sqlite3"
        if h and kind != "floor":
            assert not pg, "a preloaded store is SQLite only"
            preload(f"sqlite:///{self.template}", h)
        self.runs: list[dict[str, float]] = []

    def run(self, attempt: int) -> None:
        """One measurement on a fresh copy of the store, in a fresh process."""
        here = str(Path(__file__).parent)
        code = (f"import json, sys; sys.path.insert(0, {here!r}); from ingest import work; "
                "print(json.dumps(work(*sys.argv[1:])))")
        db = self.folder / f"store-{attempt}.sqlite3"
        url, schema = f"sqlite:///{db}", None
        if self.template.exists():
            shutil.copyfile(self.template, db)
        if self.pg:
            url, schema = _pg_schema(self.pg, attempt)
        os.sync()  # a store at rest has no dirty pages: the run's fsync must not flush the copy
        try:
            done = subprocess.run([sys.executable, "-c", code, self.kind, str(self.snapshot), url,
                                   str(self.folder / f"out-{attempt}")],
                                  capture_output=True, text=True, check=True)
        finally:
            if schema:
                _pg_drop(self.pg or "", schema)
        self.runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
        for path in self.folder.glob(f"store-{attempt}.sqlite3*"):
            path.unlink()
        shutil.rmtree(self.folder / f"out-{attempt}", ignore_errors=True)

    def median(self, field: str) -> float:
        values = sorted(r[field] for r in self.runs)
        return values[len(values) // 2]

    def line(self) -> str:
        spread = sorted(r["seconds"] for r in self.runs)
        return (f"{self.label} {self.median('seconds'):7.2f} s ({spread[0]:.2f}-{spread[-1]:.2f})  "
                f"written "
                f"{self.median('written_mb'):6.1f} MB ({min(r['written_mb'] for r in self.runs):.0f}-"
                f"{max(r['written_mb'] for r in self.runs):.0f})  peak {self.median('peak_mb'):5.0f} MB "
                f"(+{self.median('added_mb'):.0f} MB)  snapshot "
                f"{self.snapshot.stat().st_size / 2**20:.1f} MB")


def _pg_schema(url: str, attempt: int) -> tuple[str, str]:
    """A fresh schema for one run, and the URL that works in it."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import DBAPIError

    schema = f"bench_ingest_{os.getpid()}_{attempt}"
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(f"create schema {schema}"))
    try:  # like os.sync() for SQLite: no run pays for flushing the one before it
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("checkpoint"))
    except DBAPIError:  # CHECKPOINT needs a privileged role: go on without
        pass
    engine.dispose()
    scoped = make_url(url).update_query_dict({"options": f"-csearch_path={schema}"})
    return scoped.render_as_string(hide_password=False), schema


def _pg_drop(url: str, schema: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(f"drop schema if exists {schema} cascade"))
    engine.dispose()


def alternate(cases: list[Case], rounds: int) -> None:
    """Run the cases one after another, `rounds` times over, and print each one's medians."""
    for attempt in range(rounds):
        for case in cases:
            case.run(attempt)
    for case in cases:
        print(case.line(), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int)
    parser.add_argument("--h", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pg", default=DEFAULT_PG, help="PostgreSQL URL ('' to leave it out)")
    parser.add_argument("--only", choices=["growth", "floor", "pg"],
                        help="run one group of cases")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if args.n:
            alternate([Case("full", args.n, args.h, folder)], args.rounds)
            return
        if args.only in (None, "growth"):
            small = [Case("full", 2000, 0, folder), Case("full", 2000, 1_000_000, folder)]
            alternate(small, args.rounds)
            small0, small1 = small
            print(f"H growth: N=2,000 at H=1M / H=0 = "
                  f"{small1.median('seconds') / small0.median('seconds'):.2f}x (target <= 1.15x); "
                  f"bytes written {small1.median('written_mb') / small0.median('written_mb'):.2f}x "
                  "(target <= 2x)", flush=True)
        if args.only in (None, "floor"):
            big = [Case(kind, 50_000, 0, folder) for kind in ("floor", "store", "full")]
            alternate(big, args.rounds)
            low, store, full = (c.median("seconds") for c in big)
            print(f"store / floor at N=50,000 = {store / low:.2f}x", flush=True)
            print(f"full / floor at N=50,000 = {full / low:.2f}x (target <= 2.5x)", flush=True)
            print(f"peak memory added / snapshot size = "
                  f"{big[2].median('added_mb') / (big[2].snapshot.stat().st_size / 2**20):.2f}x "
                  "(target < 4x)", flush=True)
        if args.pg and args.only in (None, "pg"):
            pair = [Case(kind, 50_000, 0, folder, pg) for kind in ("store", "full")
                    for pg in (None, args.pg)]
            alternate(pair, args.rounds)
            s_lite, s_pg, f_lite, f_pg = (c.median("seconds") for c in pair)
            print(f"PostgreSQL / SQLite at N=50,000: store {s_pg / s_lite:.2f}x, "
                  f"full {f_pg / f_lite:.2f}x (target <= 1.2x)", flush=True)


if __name__ == "__main__":
    main()
