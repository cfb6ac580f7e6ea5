"""One cycle at a time per store, across processes and machines.

PostgreSQL: an advisory lock held on a dedicated connection for the whole cycle (session
locks through a transaction-pooling proxy would be lost; point `store.url` at the server
or a session-pooling proxy). SQLite: an flock on a separate file next to the database,
never on the database file itself (SQLite's own close() calls would drop it). Either way
the lock dies with its holder: a killed run releases it.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from digest.errors import StoreError

if TYPE_CHECKING:  # the SQLite lock is taken without SQLAlchemy by a quiet cycle (digest.quiet)
    from digest.store import Store

# pg_advisory_lock(int, int): a fixed number that reads "pdig", and the store's schema
# hashed, so two stores in one database (two schemas) never wait for each other.
PG_LOCK_KEY = 0x70646967
PG_TRY_LOCK = "SELECT pg_try_advisory_lock(:k, hashtext(current_schema()))"


@contextmanager
def cycle_lock(store: Store, wait: float = 10.0, poll: float = 0.2) -> Iterator[None]:
    """Hold the store's run lock, waiting up to `wait` seconds; StoreError if it is taken."""
    deadline = time.monotonic() + wait
    if store.engine.dialect.name == "postgresql":
        from sqlalchemy import text

        conn = store.engine.connect()
        try:
            while not conn.scalar(text(PG_TRY_LOCK), {"k": PG_LOCK_KEY}):
                conn.rollback()
                if time.monotonic() >= deadline:
                    raise _busy(wait)
                time.sleep(poll)
            conn.commit()
            yield
        finally:
            conn.invalidate()  # closing the session is what releases the lock
            conn.close()
        return
    with sqlite_lock(lock_path(store.engine.url.database), wait, poll):
        yield


@contextmanager
def sqlite_lock(path: Path, wait: float = 10.0, poll: float = 0.2) -> Iterator[None]:
    """Hold the flock at `path` (a SQLite store's run lock), waiting up to `wait` seconds."""
    deadline = time.monotonic() + wait
    handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise _busy(wait) from None
                time.sleep(poll)
        os.ftruncate(handle, 0)
        os.write(handle, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.close(handle)  # closing the descriptor releases the flock


def lock_path(database: str | None) -> Path:
    """The run lock's file for the SQLite database at `database` (its path in the URL)."""
    if not database or database == ":memory:":
        return Path(os.environ.get("TMPDIR", "/tmp")) / "paper-digest-memory.lock"
    return Path(database).with_name(Path(database).name + ".lock")


def _busy(wait: float) -> StoreError:
    return StoreError("digest run", f"another cycle is running on this store (waited {wait:.0f} s)",
                      "let it finish; the scheduler runs one cycle at a time")
