"""Write rendered outputs into the output folder, atomically (temp file, fsync, rename)."""

from __future__ import annotations

import errno
import hashlib
import os
import pickle
import signal
import sys
import tempfile
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import NoReturn

from digest.errors import DigestError, OutputError

TEMP_SUFFIX = ".tmp"

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
    except OSError as exc:
        raise _output_error(path, exc) from None
    handle, temp = _open_temp(path)
    _staged[temp] = _fill(handle, temp, path, content)
    return temp


def _open_temp(path: Path) -> tuple[int, Path]:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
    except OSError as exc:
        raise _output_error(path, exc) from None
    return handle, Path(name)


def _fill(handle: int, temp: Path, path: Path, content: bytes | Iterable[str]) -> str:
    """Write, sync and close the temp file open at `handle`; its SHA-256. Removes it on any
    failure."""
    sha256 = hashlib.sha256()
    try:
        with os.fdopen(handle, "wb") as stream:
            if isinstance(content, bytes):
                stream.write(content)
                sha256.update(content)
            else:
                buffer: list[str] = []
                for chunk in content:  # template streams yield many tiny chunks: batch them
                    buffer.append(chunk)
                    if len(buffer) >= 4096:
                        data = "".join(buffer).encode("utf-8")
                        stream.write(data)
                        sha256.update(data)
                        buffer.clear()
                data = "".join(buffer).encode("utf-8")
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
    return sha256.hexdigest()


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


def stage_all(contents: Mapping[Path, str | bytes | Iterable[str]], worker: Path | None = None
              ) -> list[tuple[Path, Path]]:
    """Stage every output (see `stage`); returns (temp, final) pairs in the order given. The
    one at `worker` (a big streamed render) is rendered into its temp file by a forked child
    meanwhile, on another core. Any failure, the child's included (its error, or the child
    killed), discards every temp staged here and raises: the caller's transaction rolls back
    as for a template error."""
    done: dict[Path, Path] = {}  # final -> temp
    child = _Worker(worker, contents[worker]) if worker is not None else None
    try:
        for path, content in contents.items():
            if path != worker:
                temp = stage(path, content)
                if temp is not None:
                    done[path] = temp
        if child is not None:
            done[child.path] = child.result()
    except BaseException:
        if child is not None:
            child.stop()
        discard(done.values())
        raise
    return [(done[path], path) for path in contents if path in done]


class _Worker:
    """`stage(path, content)` in a forked child: this process makes the temp file (so it can
    always remove it), the child writes it and reports its hash, or its error, through a
    pipe. The child dies with its parent (PR_SET_PDEATHSIG): a SIGKILLed ingest leaves no
    renderer behind (it would hold the run lock's file), only the temp file, which the next
    run removes. Fork only where `can_fork`; without a fork to be had, it stages here."""

    def __init__(self, path: Path, content: str | bytes | Iterable[str]) -> None:
        self.path, self.pid, self.pipe = path, 0, -1
        self.handle, self.temp = _open_temp(path)
        if isinstance(content, str):
            content = content.encode("utf-8")
        for stream in (sys.stdout, sys.stderr):  # else the child's copies could repeat them
            stream.flush()
        parent = os.getpid()
        read, write = os.pipe()
        try:
            self.pid = os.fork()
        except OSError:  # no memory or process left for it: stage it here
            os.close(read)
            os.close(write)
            self.sha256 = _fill(self.handle, self.temp, path, content)
            return
        if self.pid == 0:  # the child: never returns
            os.close(read)
            _child(parent, write, self.handle, self.temp, path, content)
        os.close(write)
        os.close(self.handle)
        self.pipe = read

    def result(self) -> Path:
        """Wait for the child: the staged temp file, or the child's error raised here (a
        child that ended without a report, killed say, is an OutputError)."""
        if self.pid:
            chunks = []
            while chunk := os.read(self.pipe, 65536):
                chunks.append(chunk)
            os.close(self.pipe)
            _, status = os.waitpid(self.pid, 0)
            self.pid, self.pipe = 0, -1
            try:
                report = pickle.loads(b"".join(chunks))
            except (pickle.UnpicklingError, EOFError, ValueError):
                raise OutputError(str(self.path), "the process rendering it ended without a "
                                  f"report ({_ended(status)})",
                                  "run the command again (nothing was changed)") from None
            if report[0] == "digest":
                cls, where, what, fix = report[1:]
                error = cls.__new__(cls)
                DigestError.__init__(error, where, what, fix)
                raise error
            if report[0] == "crash":
                raise OutputError(str(self.path), f"rendering it failed: {report[1]}",
                                  "report this as a bug (nothing was changed)")
            self.sha256 = report[1]
        _staged[self.temp] = self.sha256
        return self.temp

    def stop(self) -> None:
        """End and reap the child (this process failed meanwhile), and remove the temp."""
        if self.pid:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
            os.close(self.pipe)
            self.pid, self.pipe = 0, -1
        discard([self.temp])


def _ended(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by signal {os.WTERMSIG(status)}"
    return f"exit status {os.waitstatus_to_exitcode(status)}"


def _child(parent: int, pipe: int, handle: int, temp: Path, path: Path,
           content: bytes | Iterable[str]) -> NoReturn:
    """The forked child: write the temp file, report, and leave by os._exit (no atexit, no
    finalizers: the store connection and the files it inherited are the parent's)."""
    try:
        _die_with_parent()
        if os.getppid() != parent:  # the parent died before that took effect
            os._exit(1)
        from digest.publish.template_check import template_errors

        try:
            with template_errors():
                report: tuple[object, ...] = ("ok", _fill(handle, temp, path, content))
        except DigestError as exc:
            report = ("digest", type(exc), exc.where, exc.what, exc.fix)
        except BaseException as exc:  # noqa: BLE001 -- reported: the parent raises it
            report = ("crash", f"{type(exc).__name__}: {exc}"[:500])
        data = pickle.dumps(report)
        while data:
            data = data[os.write(pipe, data):]
    finally:
        os._exit(0)


_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Have the kernel SIGKILL this process when its parent dies (Linux prctl)."""
    import ctypes

    if ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0):
        os._exit(1)


def can_fork() -> bool:
    """True where a render may go to a forked child: Linux (the parent-death signal), more
    than one core for this process, and no other thread (fork copies only the calling one:
    a lock another thread holds would stay held in the child)."""
    return (sys.platform == "linux" and len(os.sched_getaffinity(0)) > 1
            and threading.active_count() == 1)
