"""Turn a configured source (a file, a folder, or an http(s) URL) into new snapshots."""

from __future__ import annotations

import gzip
import hashlib
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import httpx
from sqlalchemy import insert, select

from digest import schema as t
from digest.config import SourceSettings
from digest.errors import ParseError, SourceError
from digest.models import Snapshot
from digest.sources.detect import detect
from digest.sources.fetch import fetch
from digest.sources.files import expand_paths, parse_snapshot, read_snapshot
from digest.store import Store, naive_utc


def is_url(location: str) -> bool:
    return location.startswith(("http://", "https://"))


def collect(store: Store, source: SourceSettings, now: datetime,
            client: httpx.Client | None = None,
            sleep: Callable[[float], None] | None = None) -> list[Snapshot]:
    """The source's snapshots not ingested yet, in capture order (an empty list: nothing new).

    Raises SourceError or ParseError for a failed fetch or an empty listing.
    """
    if is_url(source.location):
        snapshot = _fetch_snapshot(store, source, now, client, sleep)
        return [snapshot] if snapshot else []
    path = Path(source.location)
    if not path.exists():
        raise SourceError(source.location, "no such file or folder",
                          f"fix sources.location for {source.name!r}")
    snapshots = []
    for file in expand_paths([path]):
        snapshot = read_snapshot(file, None, now, source.format, source.name)
        if store.find_snapshot(snapshot.sha256) is None:
            snapshots.append(snapshot)
    if not snapshots and path.is_file():
        return []
    return sorted(snapshots, key=lambda s: (s.captured_at, s.path))


def _fetch_snapshot(store: Store, source: SourceSettings, now: datetime,
                    client: httpx.Client | None,
                    sleep: Callable[[float], None] | None) -> Snapshot | None:
    with store.engine.connect() as conn:
        last = conn.execute(
            select(t.fetches.c.etag, t.fetches.c.last_modified)
            .where(t.fetches.c.source == source.name, t.fetches.c.status == 200)
            .order_by(t.fetches.c.id.desc()).limit(1)).first()
    got = fetch(source.location, etag=last.etag if last else None,
                last_modified=last.last_modified if last else None, client=client,
                sleep=sleep or time.sleep)
    sha = hashlib.sha256(got.body).hexdigest() if got.status != 304 else None
    # Kept raw (compressed) with its time before parsing, so it can be re-parsed later.
    with store.engine.begin() as conn:
        conn.execute(insert(t.fetches).values(
            source=source.name, url=source.location, fetched_at=naive_utc(now),
            status=got.status, etag=got.etag, last_modified=got.last_modified,
            content_type=got.content_type, sha256=sha,
            body_gzip=gzip.compress(got.body) if got.status != 304 else None))
    if got.status == 304 or store.find_snapshot(sha or "") is not None:
        return None
    fmt = source.format if source.format != "auto" else detect(got.body, got.content_type)
    if fmt == "dailypage":
        raise ParseError(source.location, "fetched a page of plain text",
                         "use the JSON API (/api/daily_papers) or the HTML page for live fetches")
    return parse_snapshot(got.body, source.location, fmt, now, now, source.name)
