"""The `digest` command line: the only module that prints or exits."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

import click
from sqlalchemy.exc import SQLAlchemyError

from digest import __version__, pipeline
from digest.capture import parse_iso_capture
from digest.config import Settings, load_settings
from digest.errors import ConfigError, DigestError
from digest.sources.files import expand_paths, read_snapshot
from digest.store import Store, open_store

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def store_options(func: F) -> F:
    """The options every store-touching command shares."""
    func = click.option("--templates", metavar="DIR", default=None,
                        help="Folder of template overrides (else $DIGEST_TEMPLATES).")(func)
    func = click.option("--out", metavar="DIR", default=None,
                        help="Output folder (else $DIGEST_OUT, else out/).")(func)
    func = click.option("--db", metavar="URL", default=None,
                        help="Store URL (else $DIGEST_DB, else sqlite:///digest.sqlite3).")(func)
    return func


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn expected failures into one `error:` line on stderr and exit code 2."""
    try:
        yield
    except DigestError as exc:
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(2)
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        click.echo(f"error: store: {reason} — check the database server and try again", err=True)
        sys.exit(2)


@contextmanager
def progress(items: list[T], label: str) -> Iterator[Iterable[T]]:
    """A progress bar on stderr for long work on a terminal; silent otherwise."""
    if len(items) < 20 or not sys.stderr.isatty():
        yield items
        return
    with click.progressbar(items, label=label, file=sys.stderr) as bar:
        yield bar


@contextmanager
def opened(db: str | None, out: str | None, templates: str | None) -> Iterator[tuple[Store, Settings]]:
    settings = load_settings(db=db, out=out, templates=templates)
    store = open_store(settings.db_url)
    try:
        yield store, settings
    finally:
        store.close()


@click.group(context_settings=CONTEXT)
@click.version_option(__version__, "-V", "--version", prog_name="paper-digest")
def main() -> None:
    """paper-digest: publish only the research papers you have never seen.

    Feed it captures of the Hugging Face Daily Papers page; it keeps every snapshot,
    diffs each against everything seen before and writes a digest of the new papers
    (Markdown, web page, email body) plus RSS and Atom feeds.

    \b
    Example:
      digest ingest examples/snapshots/
      digest history
    """


@main.command(context_settings=CONTEXT)
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option("--captured-at", "captured_at", metavar="DATE", default=None,
              help="Capture date YYYY-MM-DD (else the date in the file name, else inferred).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per snapshot.")
@store_options
def ingest(paths: tuple[str, ...], captured_at: str | None, as_json: bool, db: str | None,
           out: str | None, templates: str | None) -> None:
    """Ingest snapshots, diff them against everything seen, render digests of new papers.

    PATH is a snapshot file or a folder of *.txt snapshots. Several snapshots are
    processed in capture order, whatever the order given. Re-ingesting the same bytes
    changes nothing.

    \b
    Examples:
      digest ingest 2026-03-13.txt
      digest ingest --captured-at 2026-03-13 capture.txt
      digest ingest --json snapshots/
    """
    with user_errors():
        moment = None
        if captured_at is not None:
            moment = parse_iso_capture(captured_at)
            if moment is None:
                raise ConfigError("--captured-at", f"{captured_at!r} is not a date",
                                  "use YYYY-MM-DD, e.g. --captured-at 2026-03-13")
            if len(paths) > 1:
                raise ConfigError("--captured-at", "applies to one snapshot, but several were given",
                                  "ingest them one at a time, or put dates in the file names")
        now = datetime.now(UTC)
        with opened(db, out, templates) as (store, settings):
            files = expand_paths(paths)
            with progress(files, "reading snapshots") as bar:
                snapshots = [read_snapshot(path, moment, now) for path in bar]
            snapshots = pipeline.check_order(store, snapshots)
            for snapshot in snapshots:
                for warning in snapshot.warnings:
                    click.echo(warning, err=True)
            for result in pipeline.ingest(store, settings, snapshots, now):
                md = (pipeline.digest_path(settings, result.digest.name, ".md")
                      if result.digest and result.status == "ingested" else None)
                if as_json:
                    click.echo(json.dumps({
                        "path": result.path, "captured_at": result.captured_at.date().isoformat(),
                        "papers": result.papers, "new": result.new,
                        "digest": str(md) if md else None, "status": result.status,
                    }))
                elif result.status == "ingested":
                    line = f"{result.captured_at:%Y-%m-%d}  {result.papers} papers  {result.new} new"
                    click.echo(line + (f"  → {md}" if md else ""))
                else:
                    click.echo(f"{result.captured_at:%Y-%m-%d}  {result.papers} papers  "
                               f"already ingested  ({result.path})")


@main.command(context_settings=CONTEXT)
@store_options
def render(db: str | None, out: str | None, templates: str | None) -> None:
    """Rebuild every digest, the feeds and the archive page from the store.

    Use it after changing templates or the site settings.

    \b
    Example:
      digest render --out public/
    """
    with user_errors(), opened(db, out, templates) as (store, settings):
        digests = pipeline.render_all(store, settings)
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
    with user_errors(), opened(db, out, templates) as (store, _settings):
        rows = store.history()
        if as_json:
            for row in rows:
                click.echo(json.dumps({
                    "captured_at": row["captured_at"].isoformat(), "path": row["path"],
                    "papers": row["paper_count"], "new": row["new_count"], "digest": row["digest"],
                }))
            return
        if not rows:
            click.echo("no snapshots yet — try: digest ingest examples/snapshots/")
            return
        click.echo(f"{'captured':<17} {'papers':>6} {'new':>5}  {'digest':<13} path")
        for row in rows:
            click.echo(f"{row['captured_at']:%Y-%m-%d %H:%M} {row['paper_count']:>6} "
                       f"{row['new_count']:>5}  {row['digest'] or '-':<13} {row['path']}")
        digests = sum(1 for r in rows if r["digest"])
        click.echo(f"{len(rows)} snapshots, {digests} digests, "
                   f"{sum(r['new_count'] for r in rows)} papers")
