"""The `digest` command line: the only module that prints or exits."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import click

from digest import __version__
from digest.cli.config import config_group, init
from digest.cli.subscribers import subscribers
from digest.cli.support import (
    CONTEXT,
    held_line,
    opened,
    progress,
    report_problems,
    report_send,
    send_progress,
    store_options,
    user_errors,
    warn_links,
)
from digest.errors import ConfigError
from digest.statuses import LISTED_STATUSES, NEEDS_ATTENTION

if TYPE_CHECKING:  # loaded by the commands that need them: `digest --help` needs click alone
    from digest.config import Settings
    from digest.models import IngestResult, SnapshotRecord

# Each command imports the modules it needs in its body: `digest --help` and `digest CMD -h`
# load click alone (tests/test_cli.py guards it), and a command loads only its own stage.


@click.group(context_settings=CONTEXT)
@click.version_option(__version__, "-V", "--version", prog_name="paper-digest")
@click.option("--config", metavar="FILE", default=None,
              help="Settings file (else $DIGEST_CONFIG, else ./digest.toml if present).")
def main(config: str | None) -> None:
    """paper-digest: publish only the research papers you have never seen.

    It keeps every snapshot of a paper listing (Hugging Face Daily Papers, arXiv, any
    feed), diffs each against everything seen before, and publishes the new papers as a
    Markdown digest, a web page, an email to subscribers, and RSS and Atom feeds.

    \b
    Examples:
      digest ingest examples/snapshots/     # try it on the bundled captures
      digest init && digest run             # watch live sources
      digest subscribers add ada@example.org && digest send
      digest schedule                       # run every day, unattended
    """


@main.command(context_settings=CONTEXT)
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option("--captured-at", "captured_at", metavar="DATE", default=None,
              help="Capture date YYYY-MM-DD (else the date in the file name, else inferred).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per snapshot.")
@click.option("--baseline", is_flag=True,
              help="Record the papers as seen without making digests (a first install).")
@click.option("--send", "and_send", is_flag=True, help="Deliver the new digests right away.")
@click.option("--enrich", "and_enrich", is_flag=True,
              help="Look new papers without an arXiv id up on arXiv first (within [enrich] budget).")
@store_options
def ingest(paths: tuple[str, ...], captured_at: str | None, as_json: bool, baseline: bool,
           and_send: bool, and_enrich: bool, db: str | None, out: str | None,
           templates: str | None) -> None:
    """Ingest snapshots, diff them against everything seen, render digests of new papers.

    PATH is a snapshot file or a folder of captures (page text, JSON, HTML, RSS or Atom
    files). Several snapshots are processed in capture order, whatever the order given.
    Re-ingesting the same bytes changes nothing.

    \b
    Examples:
      digest ingest 2026-03-13.txt
      digest ingest --captured-at 2026-03-13 capture.txt
      digest ingest --json snapshots/
      digest ingest --baseline backlog/      # first install: remember, send nothing
      digest ingest --send 2026-03-14.txt    # ingest and email in one step
    """
    from digest import pipeline
    from digest.capture import parse_iso_capture
    from digest.sources.files import expand_paths, read_snapshot

    with user_errors():
        moment = None
        if captured_at is not None:
            moment = parse_iso_capture(captured_at)
            if moment is None:
                raise ConfigError("--captured-at", f"{captured_at!r} is not a date",
                                  "use YYYY-MM-DD, e.g. --captured-at 2026-03-13")
        files = expand_paths(paths)  # a folder counts as the snapshots it holds
        if moment is not None and len(files) > 1:
            raise ConfigError("--captured-at", f"applies to one snapshot, but {len(files)} were "
                              "given", "ingest them one at a time, or put dates in the file names")
        now = datetime.now(UTC)
        with opened(db, out, templates) as (store, settings):
            with progress(files, "reading snapshots") as bar, pipeline.cyclic_gc_paused():
                snapshots = [read_snapshot(path, moment, now) for path in bar]
            for snapshot in snapshots:  # before the cycle: a warning explains a refusal
                for warning in snapshot.warnings:
                    click.echo(warning, err=True)
            report = pipeline.run_cycle(store, settings, now, given=snapshots, baseline=baseline,
                                        enrich_arxiv=and_enrich and settings.enrich.arxiv,
                                        send=and_send, progress=send_progress())
            for result in report.results:
                _ingest_line(settings, result, as_json)
            for note in report.notices:
                click.echo(note, err=True)
            if report.sent is not None:
                warn_links(settings)
                report_send(report.sent)


def _ingest_line(settings: Settings, result: IngestResult, as_json: bool) -> None:
    """Say what `digest ingest` did with one snapshot."""
    from digest.outputs import digest_path
    from digest.text import plural

    fresh = result.status == "ingested"
    md = digest_path(settings, result.digest.name, ".md") if result.digest and fresh else None
    if as_json:
        record: dict[str, object] = {
            "path": result.path, "captured_at": result.captured_at.date().isoformat(),
            "papers": result.papers, "new": result.new if fresh else 0,
            "digest": str(md) if md else None, "status": result.status,
        }
        if not fresh:  # what this call did; what the first ingest did, apart
            first = digest_path(settings, result.digest.name, ".md") if result.digest else None
            record["first_ingest"] = {"new": result.new, "digest": str(first) if first else None}
        click.echo(json.dumps(record))
    elif fresh:
        line = f"{result.captured_at:%Y-%m-%d}  {plural(result.papers, 'paper')}  {result.new} new"
        click.echo(line + (f"  → {md}" if md else ""))
    else:
        click.echo(f"{result.captured_at:%Y-%m-%d}  {plural(result.papers, 'paper')}  "
                   f"already ingested  ({result.path})")
    if result.digest and result.digest.held_reason and fresh:
        click.echo(held_line(result.digest.name, result.digest.held_reason), err=True)


@main.command(context_settings=CONTEXT)
@click.option("--budget", type=click.IntRange(min=1), default=None, metavar="SECONDS",
              help="Time to spend on look-ups (default: [enrich] budget).")
@store_options
def enrich(budget: int | None, db: str | None, out: str | None, templates: str | None) -> None:
    """Look papers without an arXiv id up on arXiv by exact title, then re-render.

    Backfills the store: every published paper with no id that was never looked up (or
    missed over a week ago), newest first, one request every [enrich] interval seconds
    until the budget is spent. Run it again to continue.

    \b
    Examples:
      digest enrich
      digest enrich --budget 600
    """
    from digest.enrich import enrich as run_enrich
    from digest.outputs import render_all
    from digest.store.lock import cycle_lock

    with user_errors(), opened(db, out, templates) as (store, settings):
        options = settings.enrich if budget is None else replace(settings.enrich, budget=budget)
        with cycle_lock(store):
            report = run_enrich(store, options, datetime.now(UTC))
            if report.gained:
                render_all(store, settings)
        click.echo(report.line())
        if report.errors:
            sys.exit(1)


@main.command(context_settings=CONTEXT)
@store_options
def render(db: str | None, out: str | None, templates: str | None) -> None:
    """Rebuild every digest, the feeds and the archive page from the store.

    Use it after changing templates or the site settings.

    \b
    Example:
      digest render --out public/
    """
    from digest.outputs import render_all
    from digest.store.lock import cycle_lock

    with user_errors(), opened(db, out, templates) as (store, settings), cycle_lock(store):
        digests = render_all(store, settings)
        click.echo(f"rendered {len(digests)} digests, feeds and index into {settings.out_dir}/")


@main.command(context_settings=CONTEXT)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per snapshot.")
@store_options
def history(as_json: bool, db: str | None, out: str | None, templates: str | None) -> None:
    """List every snapshot ingested, oldest first, with its counts and digest.

    \b
    Example:
      digest history --db postgresql+psycopg://localhost/digest
    """
    from digest.store import cycle_log
    from digest.text import plural

    with user_errors(), opened(db, out, templates, read_only=True) as (store, _settings):
        rows = store.history()
        if as_json:
            for row in rows:
                click.echo(json.dumps({  # captured_at as it has always been: naive UTC
                    "captured_at": row.captured_at.replace(tzinfo=None).isoformat(),
                    "path": row.path, "papers": row.paper_count, "new": row.new_count,
                    "digest": row.digest,
                }))
            return
        if not rows:
            click.echo("no snapshots yet — try: digest ingest examples/snapshots/")
        else:
            _history_table(rows)
        for name, since, count, reason in cycle_log.current_failures(store):
            if not reason.startswith("failing since"):
                cycles = plural(count, "cycle")
                reason = f"failing since {since:%Y-%m-%d}, {cycles}: {reason}"
            click.echo(f"{name}: {reason}")


def _history_table(rows: list[SnapshotRecord]) -> None:
    """The snapshots, one line each, and their totals."""
    from digest.text import plural
    click.echo(f"{'captured':<17} {'papers':>6} {'new':>5}  {'digest':<13} path")
    for row in rows:
        click.echo(f"{row.captured_at:%Y-%m-%d %H:%M} {row.paper_count:>6} "
                   f"{row.new_count:>5}  {row.digest or '-':<13} {row.path}")
    digests = sum(1 for r in rows if r.digest)
    click.echo(f"{plural(len(rows), 'snapshot')}, {plural(digests, 'digest')}, "
               f"{plural(sum(r.new_count for r in rows), 'paper')}")


@main.command(context_settings=CONTEXT)
@click.option("--dry-run", is_flag=True, help="Show what would be sent; send nothing.")
@click.option("--retry-unknown", is_flag=True,
              help="Also resend deliveries whose outcome is unknown (same Message-ID).")
@click.option("--to", "to", metavar="EMAIL", default=None,
              help="Send one digest to this address, outside the log (needs --digest).")
@click.option("--digest", "digest_name", metavar="DATE", default=None,
              help="The digest for --to, e.g. 2026-03-13.")
@store_options
def send(dry_run: bool, retry_unknown: bool, to: str | None, digest_name: str | None,
         db: str | None, out: str | None, templates: str | None) -> None:
    """Deliver every planned delivery not yet sent, each exactly once.

    Uses the SMTP server in DIGEST_EMAIL_SMTP_HOST, else writes .eml files to
    out/outbox/<digest>/. Ends with a summary; exits 1 when anything failed.

    \b
    Examples:
      digest send
      digest send --dry-run
      digest send --to ada@example.org --digest 2026-03-13   # a preview copy
    """
    from digest import pipeline

    with user_errors(), opened(db, out, templates) as (store, settings):
        if (to is None) != (digest_name is None):
            raise ConfigError("--to/--digest", "one without the other",
                              "give both: --to EMAIL --digest DATE")
        sender = pipeline.make_sender(store, settings, preview=bool(to), progress=send_progress())
        warn_links(settings)
        if to and digest_name:
            click.echo(f"sent {digest_name} to {to}: {sender.send_one(to, digest_name)}")
            return
        report_send(sender.run(dry_run=dry_run, retry_unknown=retry_unknown), dry_run=dry_run)


@main.command(context_settings=CONTEXT)
@click.option("--status", "statuses", multiple=True,
              type=click.Choice([str(s) for s in LISTED_STATUSES]),
              help="Only deliveries in this status (repeatable); default: failed, deferred, unknown.")
@store_options
def deliveries(statuses: tuple[str, ...], db: str | None, out: str | None,
               templates: str | None) -> None:
    """List deliveries that need a look: failed, deferred (will retry) or unknown.

    Each line: status, digest, address, then the mail server's last reply, so a bounce
    can be acted on (fix or remove the address; `digest send --retry-unknown`).

    \b
    Examples:
      digest deliveries
      digest deliveries --status failed
    """
    with user_errors(), opened(db, out, templates) as (store, _), store.read() as tx:
        rows = tx.deliveries.listing(statuses or NEEDS_ATTENTION)
        for row in rows:
            when = f"{row.when:%Y-%m-%d %H:%M}" if row.when else "-"
            click.echo(f"{row.status:<9} {row.digest}  {row.email}  {when}  "
                       f"{row.reply or '-'}")
        click.echo(f"{len(rows)} deliveries")


@main.command(context_settings=CONTEXT)
@click.argument("name", metavar="DATE")
@store_options
def release(name: str, db: str | None, out: str | None, templates: str | None) -> None:
    """Send a digest the flood guard held back, after checking it.

    A digest is held when it has more new papers than email.max_new (DIGEST_EMAIL_MAX_NEW;
    `digest config check` shows it), or when most of a page is new only hours after the
    previous snapshot (the source probably changed its format).

    \b
    Example:
      digest release 2026-03-13
    """
    from digest import pipeline

    with user_errors(), opened(db, out, templates) as (store, settings):
        with store.transaction() as tx:
            released = tx.papers.release_digest(name)
        if not released:
            raise ConfigError(name, "no held digest by that name",
                              "see `digest send --dry-run` for the held digests")
        click.echo(f"released {name}")
        sender = pipeline.make_sender(store, settings, progress=send_progress())
        warn_links(settings)
        report_send(sender.run())


@main.command(context_settings=CONTEXT)
@click.option("--source", "only", metavar="NAME", default=None, help="Run only this source.")
@click.option("--no-send", is_flag=True, help="Fetch, ingest and render, but send nothing.")
@store_options
def run(only: str | None, no_send: bool, db: str | None, out: str | None,
        templates: str | None) -> None:
    """Run one full cycle: fetch every source, ingest, render, send.

    Every source's new papers make one digest (grouped by source, each paper once).
    Running it twice in a row changes nothing the second time. A source that fails, or
    lists no papers, fails the cycle (exit 1) without stopping the others; with
    alerts.email set, the operator gets one short email per source per day.

    \b
    Examples:
      digest run
      digest run --source hf-daily --no-send
    """
    from digest.cli.entry import QUIET_TRIED

    root = click.get_current_context().find_root()
    config = root.params.get("config")
    # A steady cycle proves it has nothing to do, quietly (the console script tried already).
    if only is None and not no_send and root.obj != QUIET_TRIED:
        from digest.quiet import quiet_cycle, quiet_lines

        report = quiet_cycle(config, db, out, templates)
        if report is not None:
            for line in quiet_lines(report):
                click.echo(line)
            return
    _full_run(only, no_send, db, out, templates, config)


def _full_run(only: str | None, no_send: bool, db: str | None, out: str | None,
              templates: str | None, config: str | None) -> None:
    """`digest run` through the pipeline, sealing a cycle that leaves nothing to do."""
    import os
    from pathlib import Path

    from digest import pipeline
    from digest.outputs import digest_path
    from digest.quiet import settings_fingerprint
    from digest.text import plural

    seal = settings_fingerprint(config, db, out, templates, os.environ, Path.cwd())
    with user_errors(), opened(db, out, templates) as (store, settings):
        report = pipeline.run_cycle(store, settings, datetime.now(UTC), only=only,
                                    send=not no_send, seal=seal)
        for name, count in report.fetched.items():
            click.echo(f"{name}: {plural(count, 'new snapshot')}")
        for name, reason in report.failures:
            click.echo(f"{name}: failed: {reason}", err=True)
        if report.enriched and (report.enriched.asked or report.enriched.errors):
            click.echo(report.enriched.line(), err=bool(report.enriched.errors))
        for note in report.notices:
            click.echo(note, err=True)
        if report.digest:
            md = digest_path(settings, report.digest.name, ".md")
            click.echo(f"{report.digest.name}  {report.digest.paper_count} new  → {md}")
            if report.digest.held_reason:
                click.echo(held_line(report.digest.name, report.digest.held_reason), err=True)
        if report.sent:
            if report.sent.sent:
                warn_links(settings)
            report_problems(report.sent)
        click.echo(report.line())
        if not report.ok:
            sys.exit(1)


@main.command(context_settings=CONTEXT)
@store_options
def schedule(db: str | None, out: str | None, templates: str | None) -> None:
    """Run a cycle on the schedule in digest.toml ([schedule] cron, timezone), forever.

    Catches up once at start if a scheduled run was missed, logs every cycle, keeps
    going when a cycle fails, and stops cleanly on SIGTERM or Ctrl-C after the current
    cycle. For systemd, see contrib/paper-digest.service.

    \b
    Example:
      digest --config /etc/paper-digest/digest.toml schedule
    """
    import logging  # here: the other commands log nothing, and a quiet run pays for no import

    from digest import schedule as schedule_module
    from digest.store import cycle_log

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s",
                        stream=sys.stderr)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    with user_errors(), opened(db, out, templates) as (store, settings):
        if not settings.sources:
            raise ConfigError("sources", "none configured",
                              "add [[sources]] to digest.toml (see `digest init`)")
        job = schedule_module.cycle_job(store, settings)
        trigger = schedule_module.LocalCronTrigger(settings.schedule.cron,
                                                   settings.schedule.timezone)
        scheduler = schedule_module.build_scheduler(settings, job, trigger=trigger)
        stopping = schedule_module.stop_on_signals()
        schedule_module.catch_up(cycle_log.last_completed(store), trigger, job,
                                 datetime.now(UTC))
        if not stopping.is_set():
            schedule_module.announce_when_started(scheduler, trigger, settings, stopping)
            schedule_module.run_until_stopped(scheduler, stopping)
        click.echo("stopped", err=True)


@main.command(context_settings=CONTEXT)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=int, help="Port to listen on.")
@click.option("--dev", is_flag=True,
              help="Without DIGEST_SECRET, sign with a throwaway key (links die on restart).")
@click.option("--access-log", is_flag=True,
              help="Log every request on stderr (off: the reverse proxy in front keeps that log).")
@store_options
def serve(host: str, port: int, dev: bool, access_log: bool, db: str | None, out: str | None,
          templates: str | None) -> None:
    """Serve the archive, the feeds, subscribing and unsubscribing over HTTP.

    Behind a reverse proxy, set site.base_url to the public URL (links in emails and
    feeds point there); its path, if any, is served as the app's root path. Needs
    DIGEST_SECRET, the same as `digest send` (so emailed links work here and survive a
    restart); --dev tries it out without one.

    \b
    Examples:
      digest serve --host 127.0.0.1 --port 8080
      digest serve --dev      # local trial: a throwaway signing key
    """
    import uvicorn

    from digest.web.app import create_app

    with user_errors(), opened(db, out, templates) as (store, settings):
        app = create_app(store, settings, dev=dev)
        if dev and not settings.email.secret:
            click.echo("dev mode: signing with a throwaway key; links stop working when the "
                       "server stops (set DIGEST_SECRET for real use)", err=True)
        root = urlsplit(settings.site.base_url).path.rstrip("/") if settings.site.base_url else ""
        # The app believes X-Forwarded-For from web.trusted_proxies only (its own middleware).
        uvicorn.run(app, host=host, port=port, root_path=root, proxy_headers=False,
                    log_level="info", access_log=access_log)


main.add_command(subscribers)
main.add_command(config_group)
main.add_command(init)
