"""Fetch an http(s) source with httpx: a timeout, a User-Agent naming the project, bounded
retries with backoff on 5xx and timeouts, and conditional GET (ETag / If-Modified-Since),
where a 304 means "no new snapshot", not an error."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import httpx

from digest import __version__
from digest.errors import SourceError

USER_AGENT = f"paper-digest/{__version__} (+https://pypi.org/project/paper-digest/)"
RETRY_DELAYS = (1.0, 2.0, 4.0)
TIMEOUT = httpx.Timeout(30.0, connect=10.0)


@dataclass(frozen=True)
class Fetched:
    """What one GET brought back."""

    status: int  # 200, or 304 when nothing changed
    body: bytes
    etag: str | None
    last_modified: str | None
    content_type: str


def fetch(url: str, *, etag: str | None = None, last_modified: str | None = None,
          client: httpx.Client | None = None, delays: Sequence[float] = RETRY_DELAYS,
          sleep: Callable[[float], None] = time.sleep) -> Fetched:
    """GET `url`, conditionally; retry 5xx, timeouts and dropped connections; raise
    SourceError (one line, with the reason) when it cannot be had."""
    headers = {"User-Agent": USER_AGENT}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    own = client is None
    http = client or httpx.Client(timeout=TIMEOUT, follow_redirects=True)
    try:
        for attempt in range(len(delays) + 1):
            try:
                response = http.get(url, headers=headers)
            except httpx.TimeoutException:
                reason = "timed out"
            except httpx.TransportError as exc:
                reason = f"connection failed ({exc})"
            else:
                if response.status_code == 304:
                    return Fetched(304, b"", etag, last_modified, "")
                if response.status_code < 400:
                    return Fetched(response.status_code, response.content,
                                   response.headers.get("etag"),
                                   response.headers.get("last-modified"),
                                   response.headers.get("content-type", ""))
                reason = f"HTTP {response.status_code}"
                if response.status_code < 500 and response.status_code != 429:
                    raise SourceError(url, f"{reason}: the server refused the request",
                                      "check the source's URL")
            if attempt < len(delays):
                sleep(delays[attempt])
        raise SourceError(url, f"{reason} after {len(delays) + 1} tries",
                          "the source may be down; the next cycle tries again")
    finally:
        if own:
            http.close()
