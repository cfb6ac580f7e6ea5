"""Benchmark `digest ingest`: N new papers against a store already holding H papers.

    python bench/ingest.py                 # the three reported cases
    python bench/ingest.py --n 2000 --h 0  # one case

Each measurement runs in a fresh subprocess and reports the wall time of the work (not
interpreter start-up) and the peak resident memory it added; the median of three runs.
Alongside, in the same run, the *floor*: the least any ingest must do (read the file, split
entries, hash titles, one indexed insert batch into SQLite, storing each title and
abstract, since an ingest must keep what it saw) so the ratios are machine-independent.

Targets (issue 2): N=2,000 at H=1,000,000 within 1.3x of H=0; N=50,000 within 2x of the
floor stored, within 3x with every output rendered; peak memory under 4x the snapshot size.
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

WORDS = ("model data learning language vision reasoning diffusion agent training benchmark "
         "attention token graph policy reward robot speech image video scaling sparse").split()


def synth_snapshot(path: Path, n: int, seed: int = 7) -> None:
    """Write a Daily Papers page of `n` invented papers, in the real format."""
    rnd = random.Random(seed)
    parts = ["new", "Get trending papers in your email inbox!", "Subscribe",
             "byAK and the research community", "Mar 13"]
    for i in range(n):
        title = f"Synthetic Paper {seed}-{i}: " + " ".join(rnd.choice(WORDS).title() for _ in range(7))
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

    store = open_store(db_url)
    with store.engine.begin() as conn:
        sid = conn.execute(insert(t.snapshots).values(
            sha256="0" * 64, source="bench", path="preload", captured_at=datetime(2026, 1, 1),
            ingested_at=datetime(2026, 1, 1), paper_count=h, new_count=h, baseline=True,
        )).inserted_primary_key[0]
        batch = 50_000
        for start in range(0, h, batch):
            rows = [{"id": i + 1, "key": f"title:preloaded paper {i}",
                     "title_key": f"preloaded paper {i}", "title": f"Preloaded paper {i}",
                     "abstract": "x" * 200, "links": "", "first_snapshot_id": sid,
                     "first_seen_at": datetime(2026, 1, 1)} for i in range(start, min(h, start + batch))]
            conn.execute(insert(t.papers), rows)
            conn.execute(insert(t.sightings), [
                {"snapshot_id": sid, "paper_id": r["id"], "rank": r["id"]} for r in rows])
    store.close()


def _memory_mb() -> tuple[float, float]:
    """(current, peak) resident memory of this process, from /proc (ru_maxrss survives exec)."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return (int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024)


def work(kind: str, snapshot: str, db_url: str, out: str) -> dict[str, float]:
    """Run one measurement in this process (called in a fresh subprocess)."""
    import hashlib
    import sqlite3

    from click.testing import CliRunner

    from digest.cli.main import main

    base, _ = _memory_mb()
    start = time.perf_counter()
    if kind == "floor":
        # Read, split into entries (title, abstract, optional block), hash each title, and
        # store every paper (title and abstract: an ingest must keep what it saw) in one
        # indexed insert batch.
        lines = [line for line in Path(snapshot).read_text().split("\n") if line][5:]
        rows, i = [], 0
        while i < len(lines):
            title, abstract = lines[i], lines[i + 1]
            i += 5 if i + 3 < len(lines) and lines[i + 3] == "·" else 2
            rows.append((hashlib.sha256(title.encode()).hexdigest(), title, abstract))
        db = sqlite3.connect(db_url.removeprefix("sqlite:///"))
        db.execute("create table if not exists seen (hash text primary key, title text, abstract text)")
        with db:
            db.executemany("insert into seen values (?, ?, ?)", rows)
        db.close()
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
    return {"seconds": seconds, "peak_mb": peak, "added_mb": peak - base}


def measure(kind: str, n: int, h: int, folder: Path, repeat: int = 3) -> dict[str, float]:
    """Median of `repeat` runs, each on a fresh copy of the same store and snapshot."""
    case = folder / f"{kind}-{n}-{h}"
    case.mkdir()
    snapshot = case / "2026-03-13.txt"
    synth_snapshot(snapshot, n)
    template = case / "template.sqlite3"
    if h and kind != "floor":
        preload(f"sqlite:///{template}", h)
    here = str(Path(__file__).parent)
    code = (f"import json, sys; sys.path.insert(0, {here!r}); from ingest import work; "
            "print(json.dumps(work(*sys.argv[1:])))")
    runs = []
    for attempt in range(repeat):
        db = case / f"store-{attempt}.sqlite3"
        if template.exists():
            shutil.copyfile(template, db)
        os.sync()  # a store at rest has no dirty pages: the run's fsync must not flush the copy
        done = subprocess.run([sys.executable, "-c", code, kind, str(snapshot), f"sqlite:///{db}",
                               str(case / f"out-{attempt}")], capture_output=True, text=True, check=True)
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
        db.unlink()
    result = sorted(runs, key=lambda r: r["seconds"])[len(runs) // 2]
    result["snapshot_mb"] = snapshot.stat().st_size / 2**20
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int)
    parser.add_argument("--h", type=int, default=0)
    args = parser.parse_args()
    cases = ([("full", args.n, args.h)] if args.n else
             [("full", 2000, 0), ("full", 2000, 1_000_000), ("floor", 50_000, 0),
              ("store", 50_000, 0), ("full", 50_000, 0)])
    with tempfile.TemporaryDirectory() as tmp:
        results = {}
        for kind, n, h in cases:
            r = measure(kind, n, h, Path(tmp))
            results[(kind, n, h)] = r
            print(f"{kind:<5} N={n:>6} H={h:>9}  {r['seconds']:7.2f} s  peak {r['peak_mb']:6.0f} MB "
                  f"(+{r['added_mb']:.0f} MB)  snapshot {r['snapshot_mb']:.1f} MB", flush=True)
    if not args.n:
        small0, small1 = results[("full", 2000, 0)], results[("full", 2000, 1_000_000)]
        floor, store, full = (results[(k, 50_000, 0)] for k in ("floor", "store", "full"))
        growth = small1["seconds"] / small0["seconds"]
        print(f"H growth: N=2,000 at H=1M / H=0 = {growth:.2f}x (target <= 1.3x)")
        print(f"store / floor at N=50,000 = {store['seconds'] / floor['seconds']:.2f}x (target <= 2x)")
        print(f"full / floor at N=50,000 = {full['seconds'] / floor['seconds']:.2f}x (target <= 3x)")
        print(f"peak memory added / snapshot size = {full['added_mb'] / full['snapshot_mb']:.2f}x "
              "(target < 4x)")


if __name__ == "__main__":
    main()
