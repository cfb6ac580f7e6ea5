"""Turn a configured source (a file, a folder, or an http(s) URL) into new snapshots."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from digest.config import SourceSettings, is_url
from digest.errors import ParseError, SourceError
from digest.models import Snapshot
from digest.sources import FetchLimits
from digest.sources.detect import detect
from digest.sources.fetch import DEFAULT_LIMITS, fetch
from digest.sources.files import expand_paths, parse_page_snapshot, parse_snapshot, read_snapshot
from digest.store import Store
from digest.store.fetches import last_fetch, record_fetch

if TYPE_CHECKING:
    import httpx


def collect(store: Store, source: SourceSettings, now: datetime,
            client: httpx.Client | None = None, sleep: Callable[[float], None] | None = None,
            limits: FetchLimits = DEFAULT_LIMITS,
            notice: Callable[[str], None] = lambda _: None) -> Iterator[Snapshot]:
    """Yield the source's snapshots not ingested yet, in capture order (none: nothing new).

    Raises SourceError or ParseError for a failed fetch or an empty listing; what was
    yielded before stays good (a stored fetch recovered before a new fetch failed).
    """
    if is_url(source.location):
        yield from _fetch_snapshots(store, source, now, client, sleep or time.sleep, limits, notice)
        return
    path = Path(source.location)
    if not path.exists():
        raise SourceError(source.location, "no such file or folder",
                          f"fix sources.location for {source.name!r}")
    snapshots = []
    for file in expand_paths([path]):
        if _ingested_already(store, file):  # an unchanged file is hashed, never parsed
            continue
        snapshots.append(read_snapshot(file, None, now, source.format, source.name))
    yield from sorted(snapshots, key=lambda s: (s.captured_at, s.path))


def _ingested_already(store: Store, file: Path) -> bool:
    """True when the store holds a snapshot of exactly these bytes (SHA-256)."""
    try:
        with file.open("rb") as stream:
            sha = hashlib.file_digest(stream, "sha256").hexdigest()
    except OSError:
        return False  # read_snapshot says what is wrong with it
    return store.find_snapshot(sha) is not None


def _fetch_snapshots(store: Store, source: SourceSettings, now: datetime,
                     client: httpx.Client | None, sleep: Callable[[float], None],
                     limits: FetchLimits, notice: Callable[[str], None]) -> Iterator[Snapshot]:
    """The stored fetch that never reached the store (a run killed after fetching), then
    whatever the source serves now.

    Validators (ETag, Last-Modified) are sent only for a body that was ingested, or is
    about to be in this cycle: a fetch counts once its snapshot is in the store, which the
    ingest transaction decides. So a run that dies between fetch and ingest, or a body that
    did not parse, is never mistaken for "not modified" later.
    """
    last = last_fetch(store, source.name)
    pending = None
    if last is not None and not last.ingested and last.body is not None:
        try:
            pending = _parse(last.body, last.content_type, source, last.fetched_at, now)
        except ParseError:
            pending = None  # fetched again below; the same bytes fail again, with this reason
    if pending is not None:
        yield pending
    conditional = last is not None and (last.ingested or pending is not None)
    got = fetch(source.location, etag=last.etag if last and conditional else None,
                last_modified=last.last_modified if last and conditional else None,
                client=client, sleep=sleep, limits=limits, now=lambda: now)
    if got.moved_to:
        notice(f"{source.name}: {source.location} moved permanently to {got.moved_to} — "
               "update sources.location")
    sha = record_fetch(store, source.name, source.location, now, got)
    if got.status == 304:
        if conditional:
            return
        if last is not None and last.body is not None:  # the stored body's own failure
            _parse(last.body, last.content_type, source, last.fetched_at, now)
        raise SourceError(source.location, "answered 304 Not Modified for a listing never ingested",
                          "check the server; the next cycle asks again without validators")
    if (pending is not None and sha == pending.sha256) or store.find_snapshot(sha or "") is not None:
        return
    yield _parse(got.body, got.content_type, source, now, now)


def _parse(body: bytes, content_type: str, source: SourceSettings, captured_at: datetime,
           now: datetime) -> Snapshot:
    fmt = source.format if source.format != "auto" else detect(body, content_type)
    if fmt == "dailypage":  # a text capture served over http: captured when it was fetched
        return parse_page_snapshot(body, source.location, captured_at, now, source.name)
    return parse_snapshot(body, source.location, fmt, captured_at, now, source.name)
