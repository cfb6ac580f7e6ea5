"""Fetch an http(s) source with httpx, within limits a hostile or broken server cannot stretch.

A User-Agent naming the project, conditional GET (ETag / If-Modified-Since, where a 304
means "nothing changed"), bounded retries with backoff on 5xx and timeouts, `Retry-After`
honoured on 429/503, and three limits, each a setting: the decoded body's size (counted as
it streams, so a compression bomb stops at the limit), one deadline for the whole fetch
(retries, redirects and a server dripping one byte at a time included), and the number of
redirects, each checked by the SSRF guard.
"""

from __future__ import annotations

import ipaddress
import socket
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

from digest.errors import SourceError
from digest.sources import USER_AGENT as USER_AGENT
from digest.sources import FetchLimits

# httpx is imported by the functions that fetch: settings and file sources use FetchLimits
# alone, and a cycle over files only should not pay for loading an HTTP client.
if TYPE_CHECKING:
    import httpx

RETRY_DELAYS = (1.0, 2.0, 4.0)
READ_TIMEOUT = 30.0  # one read; the whole fetch is bounded by FetchLimits.deadline
REDIRECTS = (301, 302, 303, 307, 308)
CHUNK = 65_536  # bytes read, and bytes decoded, at a time
PERMANENT = (301, 308)


DEFAULT_LIMITS = FetchLimits()


@dataclass(frozen=True)
class Fetched:
    """What one GET brought back."""

    status: int  # 200, or 304 when nothing changed
    body: bytes
    etag: str | None
    last_modified: str | None
    content_type: str
    moved_to: str | None = None  # where a permanent redirect says the listing now lives


class _Retry(Exception):
    """A failure worth another try (5xx, 429, timeout, dropped connection)."""

    def __init__(self, reason: str, wait: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.wait = wait  # what Retry-After asked for, in seconds


def fetch(url: str, *, etag: str | None = None, last_modified: str | None = None,
          client: httpx.Client | None = None, delays: Sequence[float] = RETRY_DELAYS,
          sleep: Callable[[float], None] = time.sleep, limits: FetchLimits = DEFAULT_LIMITS,
          now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> Fetched:
    """GET `url`, conditionally, within `limits`; raise SourceError (one line, with the
    reason and the fix) when it cannot be had."""
    import httpx

    _check_scheme(url, url)
    # Only what _decoded inflates within limits (httpx would offer br/zstd when installed).
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "gzip, deflate"}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    deadline = time.monotonic() + limits.deadline
    own = client is None
    http = client or httpx.Client(timeout=httpx.Timeout(READ_TIMEOUT, connect=10.0))
    try:
        for attempt in range(len(delays) + 1):
            try:
                return _get(http, url, headers, limits, deadline, now)
            except _Retry as retry:
                reason, wait = retry.reason, retry.wait
            if attempt == len(delays):
                break
            pause = delays[attempt] if wait is None else wait
            if pause >= deadline - time.monotonic():
                if wait is not None:
                    until = now() + timedelta(seconds=wait)
                    raise SourceError(url, f"{reason} with Retry-After {wait:.0f} s, past the "
                                      f"{limits.deadline:.0f} s deadline",
                                      f"the server asks to wait until {until:%Y-%m-%d %H:%M} UTC; "
                                      "the next cycle tries again")
                raise SourceError(url, f"{reason}; no time for another try within the "
                                  f"{limits.deadline:.0f} s deadline",
                                  "the source may be down; the next cycle tries again")
            sleep(pause)
        raise SourceError(url, f"{reason} after {len(delays) + 1} tries",
                          "the source may be down; the next cycle tries again")
    finally:
        if own:
            http.close()


def _get(http: httpx.Client, url: str, headers: dict[str, str], limits: FetchLimits,
         deadline: float, now: Callable[[], datetime]) -> Fetched:
    """One try: follow up to `limits.max_redirects` redirects, then read the body."""
    import httpx

    moved_to: str | None = None
    permanent = True
    for _hop in range(limits.max_redirects + 1):
        left = deadline - time.monotonic()
        if left <= 0:
            raise SourceError(url, f"no answer within the {limits.deadline:.0f} s deadline",
                              "raise fetch.deadline, or check the server")
        read = http.timeout.read if http.timeout.read is not None else READ_TIMEOUT
        request = http.build_request("GET", url, headers=headers,
                                     timeout=httpx.Timeout(min(read, left)))
        try:
            response = http.send(request, stream=True, follow_redirects=False)
        except httpx.TimeoutException:
            raise _Retry("timed out") from None
        except httpx.TransportError as exc:
            raise _Retry(f"connection failed ({exc})") from None
        try:
            status = response.status_code
            if status in REDIRECTS and "location" in response.headers:
                target = urljoin(url, response.headers["location"])
                _check_scheme(target, url)
                _check_redirect(url, target)
                permanent = permanent and status in PERMANENT
                moved_to = target if permanent else None
                url = target
                continue
            if status == 304:
                return Fetched(304, b"", headers.get("If-None-Match"),
                               headers.get("If-Modified-Since"), "", moved_to)
            if status >= 400:
                reason = f"HTTP {status}"
                if status in (429, 503):
                    raise _Retry(reason, _retry_after(response.headers.get("retry-after"), now()))
                if status >= 500:
                    raise _Retry(reason)
                raise SourceError(url, f"{reason}: the server refused the request",
                                  "check the source's URL")
            body = _read(response, url, limits, deadline)
            return Fetched(status, body, response.headers.get("etag"),
                           response.headers.get("last-modified"),
                           response.headers.get("content-type", ""), moved_to)
        finally:
            response.close()
    raise SourceError(url, f"more than {limits.max_redirects} redirects",
                      "point the source at the final location (or raise fetch.max_redirects)")


def _read(response: httpx.Response, url: str, limits: FetchLimits, deadline: float) -> bytes:
    """The decoded body, stopped at the size limit or the deadline, whichever comes first."""
    import httpx

    chunks: list[bytes] = []
    size = 0
    try:
        for chunk in _decoded(response, url):
            size += len(chunk)
            if size > limits.max_bytes:
                raise SourceError(url, f"response larger than {limits.max_bytes:,} bytes "
                                  "(decoded)", "raise fetch.max_bytes if the listing really is that big")
            if time.monotonic() > deadline:
                raise SourceError(url, f"response not complete within the {limits.deadline:.0f} s "
                                  "deadline", "raise fetch.deadline, or check the server")
            chunks.append(chunk)
    except httpx.TimeoutException:
        raise _Retry("timed out") from None
    except (httpx.DecodingError, zlib.error) as exc:
        raise SourceError(url, f"cannot decode the response ({exc})", "check the server") from None
    except httpx.TransportError as exc:
        raise _Retry(f"connection failed ({exc})") from None
    return b"".join(chunks)


def _decoded(response: httpx.Response, url: str) -> Iterator[bytes]:
    """The body decoded in pieces of at most CHUNK bytes, however well the bytes compress
    (httpx would inflate a whole network read at once: 64 MiB from 64 KiB of a bomb)."""
    encoding = response.headers.get("content-encoding", "").strip().lower()
    if encoding in ("", "identity"):
        yield from _raw(response)
        return
    if encoding not in ("gzip", "x-gzip", "deflate"):
        raise SourceError(url, f"unsupported Content-Encoding {encoding!r}", "check the server")
    # deflate is meant to be zlib-wrapped, but some servers send it raw: tell from the header.
    decoder: Any = None
    for raw in _raw(response):
        if decoder is None:
            wbits = (16 + zlib.MAX_WBITS if encoding != "deflate"
                     else zlib.MAX_WBITS if raw[:1] == b"\x78" else -zlib.MAX_WBITS)
            decoder = zlib.decompressobj(wbits)
        data = decoder.decompress(raw, CHUNK)
        yield data
        while decoder.unconsumed_tail:
            yield decoder.decompress(decoder.unconsumed_tail, CHUNK)
    if decoder is not None:
        yield decoder.flush()


def _raw(response: httpx.Response) -> Iterator[bytes]:
    """The body as sent, a network read at a time (a transport that already read it, such
    as httpx.MockTransport, hands it over whole: sliced here)."""
    if not response.is_stream_consumed:
        # No chunk size: each network read as it comes (with one, httpx would wait for a
        # full chunk, and a server dripping bytes would never meet the deadline check).
        yield from response.iter_raw()
        return
    body = response.content
    for start in range(0, len(body), CHUNK):
        yield body[start:start + CHUNK]


def _retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a Retry-After header (seconds or an HTTP date); None if absent."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def _check_scheme(target: str, where: str) -> None:
    if urlsplit(target).scheme.lower() not in ("http", "https"):
        raise SourceError(where, f"{target!r} is not an http(s) URL",
                          "sources fetch http:// and https:// only")


def _check_redirect(origin: str, target: str) -> None:
    """The SSRF guard: a public address never redirects to a loopback, private or link-local one."""
    if is_internal(urlsplit(target).hostname or "") and not is_internal(urlsplit(origin).hostname or ""):
        raise SourceError(origin, f"redirected to an internal address ({target})",
                          "refused: a public source may not point inside this network")


def is_internal(host: str) -> bool:
    """True when `host` is, or resolves to, a loopback, private or link-local address."""
    return any(_internal_address(address) for address in resolve(host))


def resolve(host: str) -> list[str]:
    """The addresses of `host` (the host itself when it is an IP address)."""
    host = host.strip("[]")
    try:
        ipaddress.ip_address(host)
        return [host]
    except ValueError:
        pass
    try:
        return [str(info[4][0]) for info in socket.getaddrinfo(host, None)]
    except (OSError, UnicodeError):
        return []


def _internal_address(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address.split("%")[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_loopback or ip.is_private or ip.is_link_local or ip.is_unspecified

