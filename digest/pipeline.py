"""The cycle every command goes through: gather snapshots (fetched, or the files given),
ingest what is new as one transaction with its outputs staged, then what follows the commit
(arXiv look-ups, site, repairs, sending). What is written to out/ lives in digest.outputs."""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from digest import outputs
from digest.collect import collect
from digest.config import Settings, SourceSettings, is_url, link_problem
from digest.enrich import EnrichReport, enrich
from digest.errors import ConfigError, DigestError
from digest.models import DigestInfo, IngestResult, Snapshot, StoredPaper
from digest.publish.output import discard, install, stage, stage_aside
from digest.publish.template_check import check_templates, template_errors
from digest.report import CycleReport
from digest.store import Store, cycle_log
from digest.store.ingest import out_of_order
from digest.store.lock import cycle_lock

# Rendering, feeds, mail and snapshot parsing are imported where they are used: a steady
# cycle (nothing new) needs none of them, and importing them costs more than its work.
if TYPE_CHECKING:
    import httpx

    from digest.mail.deliver import Sender
    from digest.store.transaction import Transaction

logger = logging.getLogger(__name__)


@contextmanager
def cyclic_gc_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off for a bulk step (reading, ingesting, rendering):
    a 50,000-paper snapshot makes millions of objects that live until the step ends, and
    the collector walked them again and again, 0.8 s of a 6 s ingest (issue 12). Garbage
    without cycles is still freed at once; the collector runs again after the step (before
    any sending, which can be long)."""
    paused = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if paused:
            gc.enable()


def prepare(paths: Sequence[str | Path], captured_at: datetime | None,
            now: datetime) -> list[Snapshot]:
    """Read every snapshot file (raising on the first bad one, so a bad call changes
    nothing), in capture order."""
    from digest.sources.files import expand_paths, read_snapshot

    return _in_order([read_snapshot(path, captured_at, now) for path in expand_paths(paths)])


def _in_order(snapshots: Sequence[Snapshot]) -> list[Snapshot]:
    return sorted(snapshots, key=lambda s: (s.captured_at, s.path))


def _late(snapshots: Sequence[Snapshot], newest: datetime | None) -> list[Snapshot]:
    """The capture-order rule: a snapshot captured before the newest one stored is refused
    (store.ingest.out_of_order says why, and the ingest transaction checks it again)."""
    return [s for s in snapshots if newest is not None and s.captured_at < newest]


def ingest(store: Store, settings: Settings, snapshots: Sequence[Snapshot], now: datetime,
           baseline: bool = False, enrich_arxiv: bool = False) -> list[IngestResult]:
    """Ingest snapshots, each its own digest, nothing sent: `run_cycle` of them; one result
    per snapshot, in capture order."""
    return run_cycle(store, settings, now, given=snapshots, baseline=baseline,
                     enrich_arxiv=enrich_arxiv, send=False).results


def commit_cycle(store: Store, settings: Settings, snapshots: Sequence[Snapshot], now: datetime,
                 *, baseline: bool = False, enrich_arxiv: bool = False,
                 client: httpx.Client | None = None,
                 ) -> tuple[list[IngestResult], DigestInfo | None, EnrichReport | None]:
    """Ingest snapshots as one digest in one transaction, its outputs rendered to temp files
    inside it (any failure rolls back and discards them) and installed after the commit; then
    what follows the commit. Every ingest goes here: `digest ingest`, `run` and `schedule`."""
    staged = Staged(store, settings)
    try:
        results, published = store.ingest_cycle(snapshots, baseline=baseline, now=now,
                                                max_new=settings.email.max_new, prepare=staged)
    except BaseException:
        staged.discard()
        raise
    staged.install()
    digest = next((r.digest for r in results if r.digest), None)
    enriched = None
    if digest is not None:
        enriched = after_commit(store, settings, digest, published, now, enrich_arxiv, client)
        outputs.record_published(settings, digest.name)
    return results, digest, enriched


def after_commit(store: Store, settings: Settings, info: DigestInfo, papers: Sequence[StoredPaper],
                 now: datetime, enrich_arxiv: bool, client: httpx.Client | None = None
                 ) -> EnrichReport | None:
    """What follows a new digest's commit (its staged outputs installed): the arXiv look-ups,
    and the digest re-rendered when a paper gained its id; the previous digest's page gains
    its "next" link. A failure here leaves outputs a rerun repairs, never a lost digest."""
    report = None
    if enrich_arxiv:
        report = enrich(store, settings.enrich, now, keys=[p.key for p in papers], client=client)
        if report.gained:
            outputs.republish(store, settings, info)
    names = [d.name for d in store.digests()]  # newest first
    older, _ = outputs.neighbours(names, names.index(info.name))
    if older is not None:
        outputs.republish(store, settings, store.digest(older) or info)
    return report


class Staged:
    """A new digest's outputs, rendered and written to temp files inside the ingest
    transaction (a template error or a full disk rolls it back), installed after the commit.

    The store calls it once the digest is decided, before the rows are written; a big
    digest is staged on the second core meanwhile (publish.output.stage_aside), and the
    `finish` returned waits for it before the commit."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store, self.settings = store, settings
        self.files: list[tuple[Path, Path]] = []  # (temp, final)
        self.pending: Callable[[], list[tuple[Path, Path]]] | None = None

    def __call__(self, results: list[IngestResult], papers: list[StoredPaper]
                 ) -> Callable[[], None] | None:
        digest = next((r.digest for r in results if r.digest), None)
        if digest is None:
            return None
        from digest.publish.render import render_index

        # Read here: the staging may run in a child, which must not use the store.
        others = self.store.digests()
        older = next((d.name for d in others if d.name != digest.name), None)

        def work() -> list[tuple[Path, Path]]:
            staged: list[tuple[Path, Path]] = []
            try:
                with template_errors():  # the streamed outputs render as they are staged
                    rendered = outputs.digest_outputs(self.settings, digest, papers, older=older)
                    for path, content in rendered.items():
                        temp = stage(path, content)
                        if temp is not None:
                            staged.append((temp, path))
                    # The archive page must take the new digest too.
                    render_index(self.settings.site, [digest, *others], self.settings.templates)
            except BaseException:
                discard(temp for temp, _ in staged)
                raise
            return staged

        self.pending = stage_aside(len(papers), work)
        return self.finish

    def finish(self) -> None:
        """Wait for the staging (when it runs aside) and take its files."""
        pending, self.pending = self.pending, None
        if pending is not None:
            self.files += pending()

    def install(self) -> None:
        for temp, path in self.files:
            install(temp, path)
        self.files = []

    def discard(self) -> None:
        try:
            self.finish()  # a staging still running leaves its files to discard
        except Exception:  # noqa: BLE001 -- the error being handled is the one to raise
            pass
        finally:
            discard(temp for temp, _ in self.files)
            self.files = []


def make_sender(store: Store, settings: Settings, *, preview: bool = False,
                progress: Callable[[int, int], None] | None = None) -> Sender:
    """A Sender over the configured transport: SMTP or the outbox.

    Real sends by SMTP need DIGEST_SECRET and site.base_url (else every email's links are
    broken); the outbox and previews (`send --to`) go on without, the CLI warning.
    """
    from digest.mail.deliver import Sender
    from digest.mail.transport import make_transport

    if settings.email.smtp_host:
        settings.email.require_secret()
        problem = link_problem(settings)
        if problem is not None and not preview:
            raise problem
    transport = make_transport(settings.email, settings.out_dir / "outbox")
    return Sender(store, settings, transport, delays=settings.email.retry_delays, progress=progress)


def _fetch(store: Store, settings: Settings, sources: Sequence[SourceSettings], now: datetime,
           client: httpx.Client | None, sleep: Callable[[float], None] | None,
           report: CycleReport) -> list[Snapshot]:
    """Fetch every source: its new snapshots, each once; a source that fails, or serves a
    snapshot out of capture order, is a failure of that source alone."""
    snapshots: list[Snapshot] = []
    newest = store.newest_capture()
    for source in sources:
        found: list[Snapshot] = []
        try:
            for snapshot in collect(store, source, now, client, sleep, settings.fetch,
                                    report.notices.append):
                found.append(snapshot)
                report.notices += snapshot.warnings
        except DigestError as exc:
            report.failures.append((source.name, exc.message))
        except Exception as exc:  # noqa: BLE001 -- any fault in one source's bytes fails that
            # source alone (a parser's RecursionError, a decoder's MemoryError): the others
            # still make the day's digest, and the failure is reported and alerted like any.
            logger.warning("source %s failed", source.name, exc_info=True)
            report.failures.append((source.name, f"{source.location}: {type(exc).__name__}: "
                                    f"{str(exc)[:200] or 'no detail'} — report this as a bug"))
        late = _late(found, newest)
        if late and newest is not None:
            report.failures.append((source.name, out_of_order(
                late[0].path, late[0].captured_at, newest,
                archive=not is_url(source.location)).message))
        fresh = []
        for snapshot in found:
            twin = next((s for s in snapshots if s.sha256 == snapshot.sha256), None)
            if twin is not None:
                report.notices.append(f"{source.name}: serves the same bytes as {twin.source}; "
                                      "ingested once")
            elif all(snapshot is not stale for stale in late):
                fresh.append(snapshot)
        if fresh or all(name != source.name for name, _ in report.failures):
            report.fetched[source.name] = len(fresh)
        snapshots += fresh
    return snapshots


def _ingest_given(store: Store, settings: Settings, snapshots: Sequence[Snapshot], now: datetime,
                  baseline: bool, enrich_arxiv: bool, report: CycleReport) -> bool:
    """Ingest the snapshots given to `digest ingest`, each its own digest, in capture order;
    refuse them all if any new one is out of order. True when any was new."""
    snapshots = _in_order(snapshots)
    fresh = [s for s in snapshots if store.find_snapshot(s.sha256) is None]
    newest = store.newest_capture()
    late = _late(fresh, newest)
    if late and newest is not None:
        raise out_of_order(late[0].path, late[0].captured_at, newest)
    for snapshot in snapshots:
        earlier = store.find_snapshot(snapshot.sha256)
        if earlier is not None:
            if earlier.digest is not None:  # rewrite what is missing or stale
                outputs.republish(store, settings, earlier.digest)
            report.results.append(IngestResult(
                path=snapshot.path, captured_at=earlier.captured_at, papers=earlier.papers,
                new=earlier.new, digest=earlier.digest, status="already ingested"))
            continue
        results, digest, enriched = commit_cycle(store, settings, [snapshot], now,
                                                 baseline=baseline, enrich_arxiv=enrich_arxiv)
        report.results += results
        report.digest, report.enriched = digest or report.digest, enriched or report.enriched
    return bool(fresh)


def run_cycle(store: Store, settings: Settings, now: datetime, *, only: str | None = None,
              given: Sequence[Snapshot] | None = None, baseline: bool = False,
              enrich_arxiv: bool | None = None, client: httpx.Client | None = None,
              sleep: Callable[[float], None] | None = None, lock_wait: float = 10.0,
              send: bool = True, progress: Callable[[int, int], None] | None = None,
              seal: str | None = None) -> CycleReport:
    """One cycle, the one every command goes through (`digest run`, `schedule`, `ingest`):
    gather snapshots, ingest what is new, render, send.

    Without `given`, fetch every configured source (or `only` one) and ingest what is new as
    one digest; a source that cannot be fetched, or lists no papers, fails (and the cycle
    with it), but the others still make the day's digest; the cycle is logged. With
    `given` (`digest ingest`), ingest those snapshots, each its own digest. Holds the store's
    run lock.

    `seal` (the settings' fingerprint, from `digest run`): when the cycle fetched every source
    of a SQLite store and left nothing to do, it ends by writing the quiet seal (digest.quiet).
    """
    sources: list[SourceSettings] = []
    if given is None:
        sources = [s for s in settings.sources if only is None or s.name == only]
        if not sources:
            raise ConfigError("sources", f"no source named {only!r}" if only else "none configured",
                              "add [[sources]] to digest.toml (see `digest init`)")
    if enrich_arxiv is None:
        enrich_arxiv = settings.enrich.arxiv
    started = time.monotonic()
    report = CycleReport()
    # Settings errors before anything.
    sender = make_sender(store, settings, progress=progress) if send else None
    check_templates(settings.templates)
    with cycle_lock(store, wait=lock_wait):
        cycle_id = cycle_log.start(store, now) if given is None else None
        sealing: Callable[[Transaction], str | None] | None = None
        try:
            with cyclic_gc_paused():
                if given is None:
                    snapshots = _fetch(store, settings, sources, now, client, sleep, report)
                    if snapshots:
                        report.results, report.digest, report.enriched = commit_cycle(
                            store, settings, snapshots, now, baseline=baseline,
                            enrich_arxiv=enrich_arxiv, client=client)
                    changed = bool(snapshots)
                else:
                    changed = _ingest_given(store, settings, given, now, baseline,
                                            enrich_arxiv, report)
                if changed or not outputs.site_current(store, settings):
                    outputs.publish_site(store, settings)
            repaired = outputs.repair_outputs(store, settings)
            if repaired:
                report.notices.append(f"rewrote the missing outputs of {', '.join(repaired)}")
            cycle_log.mark_streaks(store, report, now)
            if sender is not None:
                report.sent = sender.run()
            if report.failures:
                from digest.mail.alerts import alert_operator
                for name, reason in report.failures:
                    alert_operator(store, settings, name, reason, now)
            if seal is not None and given is None and only is None and sender is not None:
                sealing = _sealing(store, settings, report, seal)
        except BaseException as exc:  # recorded, then raised again: never swallowed
            report.failures.append(("cycle", str(exc) or type(exc).__name__))
            raise
        finally:
            report.seconds = time.monotonic() - started
            if cycle_id is not None:
                cycle_log.finish(store, cycle_id, report, now, seal=sealing)
    return report


def _sealing(store: Store, settings: Settings, report: CycleReport, fingerprint: str
             ) -> Callable[[Transaction], str | None] | None:
    """How to seal the cycle's end (digest.quiet.make_seal, in the transaction that records
    it), or None when this cycle shows a later one could still have work: a source failed,
    a send went wrong, a look-up failed, the outputs are not current and intact. SQLite only."""
    if (store.engine.dialect.name != "sqlite" or not report.ok
            or (report.enriched is not None and report.enriched.errors)):
        return None
    digests = store.digests()
    if not outputs.site_current(store, settings) or (
            digests and not outputs.published_intact(settings, digests[0].name)):
        return None
    from digest.quiet import make_seal

    return lambda tx: make_seal(tx, settings, fingerprint)
