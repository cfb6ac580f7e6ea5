"""The orchestrator: snapshot files -> store/diff -> rendered outputs. Every command goes here."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from digest.config import Settings
from digest.deliver import Sender
from digest.errors import StoreError
from digest.feeds import build_feeds
from digest.models import DigestInfo, IngestResult, Snapshot, StoredPaper
from digest.output import write_atomic
from digest.render import paper_view, render_email, render_index, render_markdown, render_page
from digest.sources.files import expand_paths, read_snapshot
from digest.store import Store
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
           baseline: bool = False) -> Iterator[IngestResult]:
    """Ingest prepared snapshots in order, rendering each new digest; then refresh the site."""
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
            publish_digest(settings, result.digest, published)
        del published
        yield result
    publish_site(store, settings)


def make_sender(store: Store, settings: Settings, **options: Any) -> Sender:
    """A Sender over the configured transport: SMTP (which needs DIGEST_SECRET) or the outbox."""
    if settings.email.smtp_host:
        settings.email.require_secret()
    transport = make_transport(settings.email, settings.out_dir / "outbox")
    return Sender(store, settings, transport, **options)


def digest_path(settings: Settings, name: str, suffix: str) -> Path:
    """Where a digest's file of one kind lives: `out/digests/2026-03-13.md`."""
    return settings.out_dir / "digests" / f"{name}{suffix}"


def publish_digest(settings: Settings, info: DigestInfo,
                   papers: Sequence[StoredPaper]) -> list[Path]:
    """Write a digest's Markdown, web page and email bodies."""
    views = [paper_view(p) for p in papers]
    site, templates = settings.site, settings.templates
    email = render_email(site, info, views, templates)
    outputs = {
        ".md": render_markdown(site, info, views, templates),
        ".html": render_page(site, info, views, templates),
        ".email.html": email.html,
        ".email.txt": email.text,
    }
    written = []
    for suffix, content in outputs.items():
        path = digest_path(settings, info.name, suffix)
        write_atomic(path, content)
        written.append(path)
    return written


def publish_site(store: Store, settings: Settings) -> None:
    """Rewrite the feeds and the archive page (left untouched when nothing changed)."""
    rss, atom = build_feeds(settings.site, store.feed_papers(settings.feed_size))
    write_atomic(settings.out_dir / "feed.xml", rss)
    write_atomic(settings.out_dir / "atom.xml", atom)
    write_atomic(settings.out_dir / "index.html",
                 render_index(settings.site, store.digests(), settings.templates))


def render_all(store: Store, settings: Settings) -> list[DigestInfo]:
    """Rebuild every output from the store."""
    digests = store.digests()
    for info in digests:
        publish_digest(settings, info, store.digest_papers(info.name))
    publish_site(store, settings)
    return digests
