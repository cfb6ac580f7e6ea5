"""The orchestrator: snapshot files -> store/diff -> rendered outputs. Every command goes here."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from digest import cycle_log
from digest.alerts import alert_operator
from digest.config import Settings, SourceSettings, link_problem
from digest.deliver import Sender, Summary
from digest.enrich import EnrichReport, enrich
from digest.errors import ConfigError, ParseError, SourceError, StoreError
from digest.feeds import TOPIC_FEED_WINDOW, FeedPlace, build_feeds, matching, topic_slug
from digest.lock import cycle_lock
from digest.models import DigestInfo, IngestResult, Snapshot, StoredPaper
from digest.output import write_atomic
from digest.render import PaperView, paper_view, render_email, render_index, render_markdown, render_page
from digest.sources.collect import collect
from digest.sources.files import expand_paths, read_snapshot
from digest.store import Store
from digest.subscribers import parse_topics
from digest.transport import make_transport


def prepare(store: Store, paths: Sequence[str | Path], captured_at: datetime | None,
            now: datetime) -> list[Snapshot]:
    """Read and check every snapshot before any is ingested, and order them by capture time.

    Raises on the first bad file or out-of-order snapshot, so a bad call changes nothing.
    """
    files = expand_paths(paths)
    return check_order(store, [read_snapshot(path, captured_at, now) for path in files])


def check_order(store: Store, snapshots: list[Snapshot]) -> list[Snapshot]:
    """Sort snapshots by capture time; refuse any new one older than the store's newest."""
    snapshots = sorted(snapshots, key=lambda s: (s.captured_at, s.path))
    newest = store.newest_capture()
    fresh = [s for s in snapshots if store.find_snapshot(s.sha256) is None]
    if newest is not None and fresh and fresh[0].captured_at < newest:
        first = fresh[0]
        raise StoreError(
            first.path,
            f"captured {first.captured_at:%Y-%m-%d %H:%M} but the store already holds a "
            f"snapshot from {newest:%Y-%m-%d %H:%M}; snapshots must be ingested in capture order",
            "check its date (file name or --captured-at), or ingest it into a fresh store",
        )
    return snapshots


def ingest(store: Store, settings: Settings, snapshots: Sequence[Snapshot], now: datetime,
           baseline: bool = False, enrich_arxiv: bool = False) -> Iterator[IngestResult]:
    """Ingest prepared snapshots in order, rendering each new digest (its papers looked up on
    arXiv first with `enrich_arxiv`); then refresh the site."""
    for snapshot in snapshots:
        earlier = store.find_snapshot(snapshot.sha256)
        if earlier is not None:
            yield IngestResult(path=snapshot.path, captured_at=earlier.captured_at,
                               papers=earlier.papers, new=earlier.new, digest=earlier.digest,
                               status="already ingested")
            continue
        result, published = store.ingest(snapshot, baseline=baseline, now=now,
                                         max_new=settings.email.max_new)
        if result.digest is not None:
            if enrich_arxiv:
                published = enrich_digest(store, settings, result.digest, published, now)[0]
            publish_new_digest(store, settings, result.digest, published)
        del published
        yield result
    publish_site(store, settings)


def enrich_digest(store: Store, settings: Settings, info: DigestInfo, papers: Sequence[StoredPaper],
                  now: datetime, client: httpx.Client | None = None
                  ) -> tuple[list[StoredPaper], EnrichReport]:
    """Look a new digest's papers up on arXiv (within the budget), then re-read them if any
    gained an id. Never raises for the API's sake: the digest goes out either way."""
    report = enrich(store, settings.enrich, now, keys=[p.key for p in papers], client=client)
    return (store.digest_papers(info.name) if report.gained else list(papers)), report


def make_sender(store: Store, settings: Settings, *, preview: bool = False,
                **options: Any) -> Sender:
    """A Sender over the configured transport: SMTP or the outbox.

    Real sends by SMTP need DIGEST_SECRET and site.base_url (else every email's links are
    broken); the outbox and previews (`send --to`) go on without, the CLI warning.
    """
    if settings.email.smtp_host:
        settings.email.require_secret()
        problem = link_problem(settings)
        if problem is not None and not preview:
            raise problem
    transport = make_transport(settings.email, settings.out_dir / "outbox")
    return Sender(store, settings, transport, **{"delays": settings.email.retry_delays, **options})


def digest_path(settings: Settings, name: str, suffix: str) -> Path:
    """Where a digest's file of one kind lives: `out/digests/2026-03-13.md`."""
    return settings.out_dir / "digests" / f"{name}{suffix}"


def publish_digest(settings: Settings, info: DigestInfo, papers: Sequence[StoredPaper],
                   older: str | None = None, newer: str | None = None) -> list[Path]:
    """Write a digest's Markdown, web page (linking the `older` and `newer` digests by name)
    and email bodies."""
    views = [paper_view(p) for p in papers]
    site, templates = settings.site, settings.templates
    email = render_email(site, info, views, templates)
    outputs = {
        ".md": render_markdown(site, info, views, templates),
        ".html": _web_page(settings, info, views, older, newer),
        ".email.html": email.html,
        ".email.txt": email.text,
    }
    written = []
    for suffix, content in outputs.items():
        path = digest_path(settings, info.name, suffix)
        write_atomic(path, content)
        written.append(path)
    return written


def _web_page(settings: Settings, info: DigestInfo, views: Sequence[PaperView],
              older: str | None, newer: str | None) -> Iterator[str]:
    here = f"digests/{info.name}.html"
    return render_page(
        settings.site, info, views, settings.templates,
        older=settings.site.link(f"digests/{older}.html", here) if older else None,
        newer=settings.site.link(f"digests/{newer}.html", here) if newer else None)


def publish_new_digest(store: Store, settings: Settings, info: DigestInfo,
                       papers: Sequence[StoredPaper]) -> None:
    """Publish a new digest, linking the one before it, whose page gains its "next" link."""
    names = [d.name for d in store.digests()]  # newest first
    at = names.index(info.name)
    older = names[at + 1] if at + 1 < len(names) else None
    publish_digest(settings, info, papers, older=older)
    before = store.digest(older) if older else None
    if before is not None:
        oldest = names[at + 2] if at + 2 < len(names) else None
        views = [paper_view(p) for p in store.digest_papers(before.name)]
        write_atomic(digest_path(settings, before.name, ".html"),
                     _web_page(settings, before, views, oldest, info.name))


def publish_site(store: Store, settings: Settings) -> None:
    """Rewrite the feeds and the archive page (left untouched when nothing changed)."""
    papers = store.feed_papers(settings.feed_size)
    rss, atom = build_feeds(settings.site, papers)
    write_atomic(settings.out_dir / "feed.xml", rss)
    write_atomic(settings.out_dir / "atom.xml", atom)
    if settings.site.topic_feeds:
        wider = store.feed_papers(settings.feed_size * TOPIC_FEED_WINDOW)
        for entry in settings.site.topic_feeds:
            topics = parse_topics(entry)
            slug = topic_slug(topics)
            rss, atom = build_feeds(settings.site, matching(wider, topics, settings.feed_size),
                                    FeedPlace(f"topics/{slug}.xml", f"topics/{slug}.atom",
                                              f": {', '.join(topics)}"))
            write_atomic(settings.out_dir / "topics" / f"{slug}.xml", rss)
            write_atomic(settings.out_dir / "topics" / f"{slug}.atom", atom)
    write_atomic(settings.out_dir / "index.html",
                 render_index(settings.site, store.digests(), settings.templates))


def render_all(store: Store, settings: Settings) -> list[DigestInfo]:
    """Rebuild every output from the store."""
    digests = store.digests()  # newest first
    names = [d.name for d in digests]
    for at, info in enumerate(digests):
        publish_digest(settings, info, store.digest_papers(info.name),
                       older=names[at + 1] if at + 1 < len(names) else None,
                       newer=names[at - 1] if at > 0 else None)
    publish_site(store, settings)
    return digests


@dataclass
class CycleReport:
    """What one `digest run` cycle did."""

    fetched: dict[str, int] = field(default_factory=dict)  # source -> new snapshots
    failures: list[tuple[str, str]] = field(default_factory=list)  # (source, reason)
    results: list[IngestResult] = field(default_factory=list)
    digest: DigestInfo | None = None
    enriched: EnrichReport | None = None
    sent: Summary | None = None
    seconds: float = 0.0

    @property
    def new(self) -> int:
        return sum(r.new for r in self.results)

    @property
    def ok(self) -> bool:
        return not self.failures and (self.sent is None or self.sent.ok)

    def line(self) -> str:
        sent = self.sent.line() if self.sent else "not sent"
        return (f"cycle {'ok' if self.ok else 'FAILED'}: {sum(self.fetched.values())} snapshots, "
                f"{self.new} new papers, {sent}, {len(self.failures)} sources failed, "
                f"{self.seconds:.1f} s")


def _cycle(store: Store, settings: Settings, sources: Sequence[SourceSettings], now: datetime,
           client: httpx.Client | None, sleep: Callable[[float], None] | None,
           report: CycleReport) -> None:
    """Fetch every source and ingest what is new as one digest, rendered."""
    snapshots: list[Snapshot] = []
    newest = store.newest_capture()
    for source in sources:
        try:
            found = collect(store, source, now, client, sleep)
        except (SourceError, ParseError) as exc:
            report.failures.append((source.name, exc.message))
            continue
        late = [s for s in found if newest and s.captured_at < newest]
        if late:
            report.failures.append((source.name, f"{late[0].path}: captured before the newest "
                                    "snapshot stored; ingest it into a fresh store"))
            found = [s for s in found if s not in late]
        report.fetched[source.name] = len(found)
        snapshots += found
    if snapshots:
        report.results, published = store.ingest_cycle(
            snapshots, now=now, max_new=settings.email.max_new)
        report.digest = next((r.digest for r in report.results if r.digest), None)
        if report.digest:
            if settings.enrich.arxiv:
                published, report.enriched = enrich_digest(store, settings, report.digest, published,
                                                            now, client)
            publish_new_digest(store, settings, report.digest, published)
        publish_site(store, settings)


def run_cycle(store: Store, settings: Settings, now: datetime, *, only: str | None = None,
              client: httpx.Client | None = None, sleep: Callable[[float], None] | None = None,
              lock_wait: float = 10.0, send: bool = True) -> CycleReport:
    """One full cycle: fetch every source, ingest what is new as one digest, render, send.

    A source that cannot be fetched, or lists no papers, fails (and the cycle with it),
    but the other sources still make the day's digest. Holds the store's run lock.
    """
    sources = [s for s in settings.sources if only is None or s.name == only]
    if not sources:
        raise ConfigError("sources", f"no source named {only!r}" if only else "none configured",
                          "add [[sources]] to digest.toml (see `digest init`)")
    started = time.monotonic()
    report = CycleReport()
    sender = make_sender(store, settings) if send else None  # settings errors before anything
    with cycle_lock(store, wait=lock_wait):
        cycle_id = cycle_log.start(store, now)
        try:
            _cycle(store, settings, sources, now, client, sleep, report)
            if sender is not None:
                report.sent = sender.run()
            for name, reason in report.failures:
                alert_operator(store, settings, name, reason, now)
        except BaseException as exc:  # recorded, then raised again: never swallowed
            report.failures.append(("cycle", str(exc) or type(exc).__name__))
            raise
        finally:
            report.seconds = time.monotonic() - started
            cycle_log.finish(store, cycle_id, report, now)
    return report
