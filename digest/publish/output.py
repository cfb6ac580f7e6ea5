"""Write rendered outputs into the output folder, atomically (temp file, fsync, rename)."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import sys
import tempfile
import threading
import traceback
from collections.abc import Callable, Iterable
from itertools import islice
from pathlib import Path
from typing import Any, NoReturn

from digest import errors
from digest.errors import DigestError, OutputError

TEMP_SUFFIX = ".tmp"
# Streamed chunks joined and written at a time: a digest page's chunks include whole paper
# cards (about 2 KB each), so a batch of 2,048 holds a few MB (8,192 added 20 MB of peak).
_BATCH = 2048

# The SHA-256 of the bytes this process last wrote to (or found in) each output file, taken
# as they were written, with the file's size, times and inode then: the publish manifest
# notes and checks them without reading the files again. Staged temps wait in `_staged`.
_written: dict[Path, tuple[str, tuple[int, int, int, int]]] = {}
_staged: dict[Path, str] = {}


def _identity(path: Path) -> tuple[int, int, int, int]:
    found = path.stat()  # ctime: a touch that puts the mtime back still changes it
    return found.st_size, found.st_mtime_ns, found.st_ctime_ns, found.st_ino


def _note(path: Path, sha256: str) -> None:
    try:
        _written[path] = (sha256, _identity(path))
    except OSError:
        _written.pop(path, None)


def written_sha256(path: Path) -> str | None:
    """The SHA-256 of what this process last put at `path`, if the file is still the one it
    put there (same size, mtime, ctime and inode); else None: read it."""
    known = _written.get(path)
    try:
        return known[0] if known is not None and _identity(path) == known[1] else None
    except OSError:
        return None


def write_atomic(path: Path, content: str | bytes | Iterable[str]) -> bool:
    """Write `content` to `path` so readers see the old file or the new one, never half.

    Returns False (and leaves the file, and its mtime, alone) when a str/bytes content
    is already there byte for byte; streamed content is always written.
    """
    temp = stage(path, content)
    if temp is None:
        return False
    install(temp, path)
    return True


def stage(path: Path, content: str | bytes | Iterable[str]) -> Path | None:
    """Write `content` to a synced temp file beside `path`, to be installed later (or None
    when the file already holds these bytes). A render error or a full disk leaves no temp."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            content = content.encode("utf-8")
        if isinstance(content, bytes) and path.is_file() and path.read_bytes() == content:
            _note(path, hashlib.sha256(content).hexdigest())
            return None
        handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
    except OSError as exc:
        raise _output_error(path, exc) from None
    temp = Path(name)
    sha256 = hashlib.sha256()
    try:
        with os.fdopen(handle, "wb") as stream:
            if isinstance(content, bytes):
                stream.write(content)
                sha256.update(content)
            else:
                # Template streams yield many tiny chunks (a million for a 50,000-paper page):
                # take them in batches, pulled from the stream by islice in C, not one by one.
                chunks = iter(content)
                while batch := list(islice(chunks, _BATCH)):
                    data = "".join(batch).encode("utf-8")
                    stream.write(data)
                    sha256.update(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temp, 0o644)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise _output_error(path, exc) from None
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    _staged[temp] = sha256.hexdigest()
    return temp


def install(temp: Path, path: Path) -> None:
    """Move a staged temp file into place, atomically."""
    sha256 = _staged.pop(temp, None)
    _written.pop(path, None)
    try:
        os.replace(temp, path)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise _output_error(path, exc) from None
    if sha256 is not None:
        _note(path, sha256)


def discard(temps: Iterable[Path]) -> None:
    """Remove staged temp files that will not be installed."""
    for temp in temps:
        _staged.pop(temp, None)
        temp.unlink(missing_ok=True)


def remove_stray_temps(folder: Path) -> list[Path]:
    """Remove temp files a killed writer left in `folder` (call it under the run lock)."""
    if not folder.is_dir():
        return []
    stray = [p for p in folder.glob(f".*{TEMP_SUFFIX}") if p.is_file()]
    discard(stray)
    return stray


def _output_error(path: Path, exc: OSError) -> OutputError:
    reason = (exc.strerror or str(exc)).lower()
    fix = ("free space, then run digest render" if exc.errno == errno.ENOSPC
           else "check the output folder and its permissions, then run digest render")
    return OutputError(str(path), reason, fix)


# -- staging on the second core -------------------------------------------------------------

# A digest of this many papers or more is staged in a forked child while the ingest writes
# its rows; below it, the fork and the child's copied pages cost more than they overlap.
FORK_MIN_PAPERS = 5_000
Staging = Callable[[], list[tuple[Path, Path]]]  # stages files; returns (temp, final) pairs


def stage_aside(papers: int, work: Staging) -> Staging:
    """Run `work` (render and stage outputs) in a forked child, on another core, while the
    caller goes on; the function returned waits for it and returns what it staged, or
    raises the child's error (a template error, a full disk: the same one line). Where
    forking is not safe or not worth it (not Linux; another thread running, whose locks a
    fork would copy held; fewer than FORK_MIN_PAPERS papers), `work` runs here, now.

    The child touches neither the store nor the terminal: it stages temp files, reports
    them through a pipe and leaves with `os._exit` (no cleanup of the parent's runs twice).
    A child that dies without a report (killed, out of memory) is an OutputError; a child
    whose parent was killed finishes, and its temps are strays the next run removes."""
    if papers < FORK_MIN_PAPERS or not _can_fork():
        staged = work()
        return lambda: staged
    readable, writable = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        os.close(readable)
        _report(writable, work)
    os.close(writable)

    def finish() -> list[tuple[Path, Path]]:
        with os.fdopen(readable, "rb") as stream:
            data = stream.read()
        os.waitpid(pid, 0)
        if not data:
            raise OutputError("the process staging the outputs", "it ended without a report "
                              "(killed, or out of memory)", "run the command again")
        report = json.loads(data)
        if "error" in report:
            kind, where, what, fix = report["error"]
            raise _error_class(kind)(where, what, fix)
        if "crash" in report:
            raise RuntimeError(f"staging the outputs failed:\n{report['crash']}")
        staged = []
        for temp, final, sha256 in report["staged"]:
            _staged[Path(temp)] = sha256
            staged.append((Path(temp), Path(final)))
        return staged

    return finish


def _error_class(name: str) -> type[DigestError]:
    """The child's error class by name: one of digest.errors made of (where, what, fix)."""
    found = getattr(errors, name, None)
    if (isinstance(found, type) and issubclass(found, DigestError)
            and not issubclass(found, errors.ConfigErrors)):
        return found
    return DigestError


def _can_fork() -> bool:
    return sys.platform.startswith("linux") and threading.active_count() == 1


def _report(writable: int, work: Staging) -> NoReturn:
    """The child's part: stage, report, leave."""
    report: dict[str, Any]
    try:
        staged = work()
        report = {"staged": [[str(temp), str(final), _staged[temp]] for temp, final in staged]}
    except DigestError as exc:
        report = {"error": [type(exc).__name__, exc.where, exc.what, exc.fix]}
    except BaseException:  # noqa: BLE001 -- a bug: its traceback goes to the parent
        report = {"crash": traceback.format_exc()}
    try:
        with os.fdopen(writable, "wb") as stream:
            stream.write(json.dumps(report).encode())
    finally:
        os._exit(0)
