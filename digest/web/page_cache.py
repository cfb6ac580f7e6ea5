"""Rendered public pages kept in memory while the published output is unchanged.

The web app's public pages (feeds, digests, the archive, paper histories) change only when
an ingest, a run or a render publishes. Every publish rewrites `out/index.html` (atomically:
a new inode), so its identity is a validator that costs one stat() and never touches the
store or a template. A page is rendered once per publish, then served, and a 304 answered,
from its cached bytes. When the web app does not share the output folder (another machine,
another --out), entries expire after `ttl` seconds instead, so a new digest shows up within
that time.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from functools import cached_property
from pathlib import Path

from starlette.responses import Response

DEFAULT_TTL = 30.0  # seconds a page is kept when the output folder cannot tell a publish
DEFAULT_SIZE = 1024  # pages kept at most (paper histories are many; the oldest go first)
# What a 304 carries of the 200's headers (RFC 9110 §15.4.5): no Last-Modified beside an ETag.
NOT_MODIFIED_HEADERS = ("ETag", "Cache-Control", "Expires", "Vary", "Content-Location")


@dataclass(frozen=True)
class CachedPage:
    """One rendered answer: its bytes, media type, and headers (an ETag of the bytes)."""

    body: bytes
    media_type: str
    headers: dict[str, str] = field(default_factory=dict)
    status: int = 200

    @classmethod
    def of(cls, body: bytes, media_type: str, status: int = 200,
           headers: dict[str, str] | None = None) -> CachedPage:
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        return cls(body, media_type, {"ETag": etag, **(headers or {})}, status)

    # Header lines encoded once per cached page, exactly as Starlette's Response encodes them:
    # a repeat or a 304 then costs no encoding.
    @cached_property
    def raw_headers(self) -> list[tuple[bytes, bytes]]:
        """The full answer's header lines."""
        return Response(self.body, self.status, self.headers, self.media_type).raw_headers

    @cached_property
    def raw_not_modified(self) -> list[tuple[bytes, bytes]]:
        """A 304's header lines."""
        kept = {k: v for k, v in self.headers.items() if k in NOT_MODIFIED_HEADERS}
        return Response(status_code=304, headers=kept).raw_headers


class PageCache:
    """An LRU of rendered pages, valid for one published version of the output folder."""

    def __init__(self, marker: Path, ttl: float = DEFAULT_TTL, size: int = DEFAULT_SIZE,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.marker, self.ttl, self.size, self.clock = marker, ttl, size, clock
        self.pages: OrderedDict[str, tuple[object, CachedPage]] = OrderedDict()

    def version(self) -> object:
        """The published version: the marker file's identity, else the current TTL window."""
        try:
            found = os.stat(self.marker)
        except OSError:
            return ("ttl", int(self.clock() // self.ttl))
        return (found.st_ino, found.st_mtime_ns, found.st_size)

    async def get(self, key: str, build: Callable[[], Awaitable[CachedPage | None]]) -> CachedPage | None:
        """The cached page for `key` at the current version, else `build()` (None: not cacheable)."""
        version = self.version()
        hit = self.pages.get(key)
        if hit is not None and hit[0] == version:
            self.pages.move_to_end(key)
            return hit[1]
        page = await build()
        if page is not None and page.status == 200:
            self.pages[key] = (version, page)
            self.pages.move_to_end(key)
            while len(self.pages) > self.size:
                self.pages.popitem(last=False)
        return page


def not_modified(if_none_match: str | None, if_modified_since: str | None, page: CachedPage) -> bool:
    """Whether a conditional GET may be answered 304 (RFC 9110 §13.1.2 and §13.1.3).

    `If-None-Match` wins when present and compares weakly (`W/"x"` matches `"x"`: a proxy that
    compresses the feed weakens its ETag); else `If-Modified-Since` against `Last-Modified`.
    """
    if if_none_match is not None:
        tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
        return "*" in tags or page.headers["ETag"] in tags
    modified = page.headers.get("Last-Modified")
    if if_modified_since is None or modified is None:
        return False
    try:
        return parsedate_to_datetime(modified) <= parsedate_to_datetime(if_modified_since)
    except (TypeError, ValueError):  # an unparseable date is ignored, as the RFC says
        return False
