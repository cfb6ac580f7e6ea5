"""Find the arXiv id of papers seen without one, by exact title on the arXiv API.

Best-effort and polite: several titles per request (an OR of `ti:"…"` phrases), one request
every `interval` seconds (arXiv asks for 3), all within a per-cycle time budget; what does
not fit waits for the next cycle. Only a normalised-title match counts, never a fuzzy guess.
A failure stops the look-ups for this cycle and is reported, never raised: the digest goes
out without the links it would have added.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from digest.config import EnrichSettings
from digest.models import normalize_arxiv_id, normalize_title
from digest.report import EnrichReport as EnrichReport
from digest.store import Store
from digest.store.enrichment import Lookup

if TYPE_CHECKING:
    import httpx

# arXiv's search treats these as syntax inside a phrase; words are what the match needs.
_QUERY_NOISE = re.compile(r'["\\$^{}()\[\]:]+')
# Below this, a request is not worth starting: it would time out at the end of the budget.
_MIN_REQUEST_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class Found:
    """One entry of an arXiv API answer."""

    arxiv_id: str
    title: str
    authors: tuple[str, ...]


def search_query(titles: Sequence[str]) -> str:
    """`ti:"first title" OR ti:"second title"`, the phrases cleaned of search syntax."""
    phrases = (" ".join(_QUERY_NOISE.sub(" ", title).split()) for title in titles)
    return " OR ".join(f'ti:"{phrase}"' for phrase in phrases if phrase)


def request_params(titles: Sequence[str]) -> dict[str, str]:
    """The query string of one look-up request (also what the tests' server expects)."""
    return {"search_query": search_query(titles), "start": "0",
            "max_results": str(max(10, 3 * len(titles)))}


def parse_answer(body: bytes) -> list[Found]:
    """The entries of an arXiv API (Atom) answer; entries without a usable id are skipped."""
    from digest.sources.feeds import read_feed

    parsed, _ = read_feed(body)
    if parsed.bozo and not parsed.entries and not parsed.feed:
        raise ValueError(f"not an arXiv API answer ({parsed.get('bozo_exception')})")
    found = []
    for entry in parsed.entries:
        arxiv_id = normalize_arxiv_id(str(entry.get("id", "")))
        title = " ".join(str(entry.get("title", "")).split())
        if arxiv_id and title:
            names = tuple(" ".join(str(a.get("name", "")).split()) for a in entry.get("authors", []))
            found.append(Found(arxiv_id, title, tuple(n for n in names if n)))
    return found


def match(asked: Sequence[tuple[str, str]], found: Sequence[Found]) -> list[Lookup]:
    """A hit for each asked (title_key, title) whose normalised title an entry has, else a miss."""
    by_key = {normalize_title(f.title): f for f in reversed(found)}  # the first entry wins
    lookups = []
    for title_key, _title in asked:
        hit = by_key.get(title_key)
        lookups.append(Lookup(title_key, hit.arxiv_id, hit.authors) if hit else Lookup(title_key, None))
    return lookups


def enrich(store: Store, settings: EnrichSettings, now: datetime, *, keys: Sequence[str] | None = None,
           client: httpx.Client | None = None, clock: Callable[[], float] = time.monotonic,
           sleep: Callable[[float], None] = time.sleep) -> EnrichReport:
    """Look up, within the budget, the papers with no arXiv id (only `keys` when given)."""
    with store.read() as tx:
        pending = tx.enrichment.to_look_up(now, keys)
    report = EnrichReport(left=len(pending))
    if not pending:
        return report
    import httpx  # only with titles to look up: a cycle with nothing new never loads it

    deadline = clock() + settings.budget
    last_request: float | None = None
    own_client = client is None
    http = client or httpx.Client(headers={"User-Agent": "paper-digest (arXiv title look-ups)"})
    try:
        for start in range(0, len(pending), settings.batch):
            batch = pending[start : start + settings.batch]
            wait = 0.0 if last_request is None else max(0.0, last_request + settings.interval - clock())
            timeout = min(float(settings.timeout), deadline - clock() - wait)
            if timeout < _MIN_REQUEST_SECONDS:
                break  # the budget is spent: the rest wait for the next cycle
            sleep(wait)
            last_request = clock()
            report.requests += 1
            try:
                answer = http.get(settings.api_url, params=request_params([t for _, t in batch]),
                                  timeout=timeout)
                answer.raise_for_status()
                lookups = match(batch, parse_answer(answer.content))
            except (httpx.HTTPError, ValueError) as exc:
                report.errors.append(f"{settings.api_url}: {str(exc) or type(exc).__name__}")
                break  # the API is down or slow: try again next cycle, record no misses
            report.asked += len(batch)
            report.left -= len(batch)
            report.hits += sum(1 for lookup in lookups if lookup.arxiv_id)
            with store.transaction() as tx:  # each batch's answers kept as they come
                report.gained += tx.enrichment.record(lookups, now)
    finally:
        if own_client:
            http.close()
    return report
