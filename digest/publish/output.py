"""Write rendered outputs into the output folder, atomically (temp file, fsync, rename)."""

from __future__ import annotations

import errno
import hashlib
import os
import tempfile
from collections.abc import Iterable
from itertools import islice
from pathlib import Path

from digest.errors import OutputError

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
