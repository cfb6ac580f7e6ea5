"""The store: snapshots, papers, sightings, digests, subscribers, deliveries and cycles in
SQLite or PostgreSQL, one code path for both.

Every query lives in this package, one module per area; `Store.transaction()` hands the areas
to a caller on one connection, so work that must agree commits together or not at all. Every
ingest runs in one transaction, so a failure leaves the store exactly as it was.

The package itself loads nothing: `Store` and `open_store` (digest.store.core) import
SQLAlchemy on first use, so the settings and a quiet cycle (digest.store.quiet, stdlib
sqlite3) can use the defaults and the lock without paying for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

DEFAULT_URL = "sqlite:///digest.sqlite3"
DEFAULT_MAX_NEW = 300

if TYPE_CHECKING:  # what the package hands out, loaded by __getattr__ below
    from digest.store.core import MIGRATION_LOCK as MIGRATION_LOCK
    from digest.store.core import MIGRATION_LOCK_KEY as MIGRATION_LOCK_KEY
    from digest.store.core import Prepare as Prepare
    from digest.store.core import Store as Store
    from digest.store.core import aware as aware
    from digest.store.core import naive_utc as naive_utc
    from digest.store.core import open_store as open_store

_CORE = ("MIGRATION_LOCK", "MIGRATION_LOCK_KEY", "Prepare", "Store", "aware", "naive_utc",
         "open_store")


def __getattr__(name: str) -> Any:
    """`Store`, `open_store` and the rest of digest.store.core, loaded on first use."""
    if name in _CORE:
        from digest.store import core

        return getattr(core, name)
    raise AttributeError(f"module 'digest.store' has no attribute {name!r}")
