"""What the commands share: options, error handling, progress, the send report."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import click

from digest.errors import DigestError

if TYPE_CHECKING:  # the heavy modules load inside the commands: `digest --help` needs click alone
    from click._termui_impl import ProgressBar

    from digest.config import Settings
    from digest.report import Summary
    from digest.store import Store

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


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
        for problem in getattr(exc, "problems", [exc]):
            click.echo(f"error: {problem.message}", err=True)
        sys.exit(2)
    except Exception as exc:
        # Only a command that loaded SQLAlchemy can raise its errors; --help never loads it.
        sqlalchemy_errors = sys.modules.get("sqlalchemy.exc")
        if sqlalchemy_errors is None or not isinstance(exc, sqlalchemy_errors.SQLAlchemyError):
            raise
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


def settings_for(db: str | None = None, out: str | None = None,
                 templates: str | None = None, locations: bool = False) -> Settings:
    """The settings, taking `digest --config FILE` from the command group (`locations`: also
    check that the sources' files and folders exist)."""
    from digest.config import load_settings

    context = click.get_current_context(silent=True)
    config = context.find_root().params.get("config") if context else None
    return load_settings(db=db, out=out, templates=templates, config=config, locations=locations)


@contextmanager
def opened(db: str | None, out: str | None, templates: str | None,
           read_only: bool = False) -> Iterator[tuple[Store, Settings]]:
    """Resolve the settings (with the group's --config) and open the store; a read-only
    command never creates one."""
    from digest.store import open_store

    settings = settings_for(db, out, templates)
    store = open_store(settings.db_url, create=not read_only)
    try:
        yield store, settings
    finally:
        store.close()


class _SendBar:
    """A progress bar on stderr, drawn once a send has 20 messages or more."""

    def __init__(self) -> None:
        self.bar: ProgressBar[int] | None = None

    def __call__(self, done: int, total: int) -> None:
        if total < 20:
            return
        if self.bar is None:
            self.bar = click.progressbar(length=total, label="sending", file=sys.stderr)
        self.bar.update(1)
        if done == total:
            self.bar.render_finish()


class _SendLines:
    """Without a terminal: a line every few seconds, so logs show a long send moving."""

    def __init__(self, every: float = 5.0) -> None:
        self.every = every
        self.last = time.monotonic()

    def __call__(self, done: int, total: int) -> None:
        if time.monotonic() - self.last >= self.every:
            self.last = time.monotonic()
            click.echo(f"sending: {done}/{total}", err=True)


def held_line(name: str, reason: str) -> str:
    """The flood guard's notice for a digest held back from email, and how to let it go."""
    return f"held: {name}: {reason} — check it, then: digest release {name}"


def send_progress() -> Callable[[int, int], None]:
    """Progress for the Sender: a bar on a terminal, else a line every few seconds."""
    return _SendBar() if sys.stderr.isatty() else _SendLines()


def report_send(summary: Summary, dry_run: bool = False) -> None:
    """Print what a send run did (or would do) and exit 1 when anything went wrong."""
    from digest.text import plural
    for name, reason in summary.held:
        click.echo(held_line(name, reason))
    if dry_run:
        for name, sends, skips in summary.planned:
            click.echo(f"would send {name} to {plural(sends, 'subscriber')} ({skips} skipped)")
        if not summary.planned:
            click.echo("nothing to send")
        return
    report_problems(summary)
    if summary.stopped:
        click.echo(f"error: stopped: {summary.stopped} — the rest stays pending for the next run",
                   err=True)
    click.echo(summary.line())
    if not summary.ok:
        sys.exit(1)


def report_problems(summary: Summary) -> None:
    """Name each delivery that failed, was deferred or is unknown, with the server's reply."""
    for problem in summary.problems:
        click.echo(problem.line(), err=True)
    if summary.problems:
        click.echo("see them later with: digest deliveries", err=True)


def warn_links(settings: Settings) -> None:
    """Warn (outbox, previews) that emails would carry broken links without a base URL."""
    from digest.config import link_problem

    problem = link_problem(settings)
    if problem is not None:
        click.echo(f"warning: {problem.message}", err=True)
