"""Write rendered outputs into the output folder, atomically (temp file, fsync, rename)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path


def write_atomic(path: Path, content: str | bytes | Iterable[str]) -> bool:
    """Write `content` to `path` so readers see the old file or the new one, never half.

    Returns False (and leaves the file, and its mtime, alone) when a str/bytes content
    is already there byte for byte; streamed content is always written.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        content = content.encode("utf-8")
    if isinstance(content, bytes) and path.is_file() and path.read_bytes() == content:
        return False
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            if isinstance(content, bytes):
                stream.write(content)
            else:
                buffer: list[str] = []
                for chunk in content:  # template streams yield many tiny chunks: batch them
                    buffer.append(chunk)
                    if len(buffer) >= 4096:
                        stream.write("".join(buffer).encode("utf-8"))
                        buffer.clear()
                stream.write("".join(buffer).encode("utf-8"))
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temp, 0o644)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return True
