"""The `digest` console script (and `python -m digest`).

A cron job's usual day is a steady `digest run`: nothing new anywhere. That run is answered
here by a quiet cycle (digest.quiet) before click and the command modules load, since
importing them costs more than the cycle itself (issue 12). Only the plain forms are taken
this way: `digest [--config FILE] run [--db URL] [--out DIR] [--templates DIR]`. Any other
argument, or a seal that does not hold, goes to the click command line, which then does not
try the quiet cycle a second time.
"""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Sequence

# Each option's name, in the order quiet_cycle takes them after config.
_RUN_OPTIONS = ("--db", "--out", "--templates")

QUIET_TRIED = "quiet cycle tried"  # click's context object: `run` skips its own attempt


def quiet_arguments(args: Sequence[str]) -> dict[str, str | None] | None:
    """The options of a plain `digest run`, by name; None for any other command line (a
    flag, a help request, a repeated or unknown option): click reads those."""
    found: dict[str, str | None] = {"--config": None, **dict.fromkeys(_RUN_OPTIONS)}
    allowed: tuple[str, ...] = ("--config",)  # before `run`, then the run's own options
    rest, at = list(args), 0
    while at < len(rest):
        word = rest[at]
        if word == "run" and allowed == ("--config",):
            allowed, at = _RUN_OPTIONS, at + 1
            continue
        name, equals, value = word.partition("=")
        if name not in allowed or found[name] is not None:
            return None
        if not equals:
            if at + 1 >= len(rest):
                return None
            value, at = rest[at + 1], at + 1
        if not value or value.startswith("-"):  # click would read these otherwise: leave it to it
            return None
        found[name], at = value, at + 1
    return found if allowed == _RUN_OPTIONS else None


def main() -> None:
    """Answer a steady `digest run` quietly, else hand the command line to click."""
    try:
        found = quiet_arguments(sys.argv[1:])
        if found is not None:
            from digest.quiet import quiet_cycle, quiet_lines

            report = quiet_cycle(found["--config"], found["--db"], found["--out"],
                                 found["--templates"])
            if report is not None:
                try:
                    sys.stdout.write("".join(f"{line}\n" for line in quiet_lines(report)))
                    sys.stdout.flush()
                except BrokenPipeError:  # the reader left (`digest run | head -0`): as click,
                    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
                    sys.exit(1)  # exit 1 and no word
                return
        from digest.cli.main import main as command_line

        command_line(obj=QUIET_TRIED if found is not None else None)
    finally:
        # The command is done: the interpreter's shutdown need not walk every object it
        # made in search of garbage (its collections cost a first `digest run` 0.1 s of
        # its 0.8 s). Objects are still freed and atexit handlers still run.
        gc.freeze()
