"""Benchmark the command line's start-up: `digest --help` and `digest ingest -h`.

    python bench/cli_help.py            # 21 alternating rounds
    python bench/cli_help.py --rounds 51

The floor is `python -c "import click"`: a help text cannot cost less than starting Python
and loading click. The three commands run in turn, round after round (so a busy moment
hits all of them alike), and the medians are compared. Target (issue 12): each help at
most 2x the floor.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

DIGEST = str(Path(sys.executable).with_name("digest"))
COMMANDS = {
    "floor: python -c 'import click'": [sys.executable, "-c", "import click"],
    "digest --help": [DIGEST, "--help"],
    "digest ingest -h": [DIGEST, "ingest", "-h"],
}


def wall(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=21)
    args = parser.parse_args()
    for argv in COMMANDS.values():  # warm the file cache and the .pyc files
        wall(argv)
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(args.rounds):
        for name, argv in COMMANDS.items():
            times[name].append(wall(argv))
    medians = {name: statistics.median(values) for name, values in times.items()}
    floor = medians["floor: python -c 'import click'"]
    report = {name: {"median_ms": round(value * 1000, 1), "ratio": round(value / floor, 2)}
              for name, value in medians.items()}
    print(json.dumps({"rounds": args.rounds, "results": report}, indent=2))


if __name__ == "__main__":
    main()
