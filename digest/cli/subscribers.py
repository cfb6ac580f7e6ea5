"""`digest subscribers ...`: who gets the digest by email."""

from __future__ import annotations

import json
from pathlib import Path

import click

from digest.cli.support import CONTEXT, opened, store_options, user_errors
from digest.statuses import ACTIVE, PAUSED, UNSUBSCRIBED


@click.group(context_settings=CONTEXT)
def subscribers() -> None:
    """Manage email subscribers: add, remove, pause, list, import, export.

    \b
    Example:
      digest subscribers add ada@example.org --name "Ada L." --topics "reasoning, diffusion"
    """


@subscribers.command(context_settings=CONTEXT)
@click.argument("email")
@click.option("--name", default=None, help="Display name for the To: header.")
@click.option("--topics", default=None,
              help='Comma-separated words or phrases; only matching papers are sent.')
@click.option("--list-others/--no-list-others", "list_others", default=None,
              help="With --topics: after the matching papers, also list the other new papers' "
                   "titles (off unless set; an update keeps the current setting).")
@store_options
def add(email: str, name: str | None, topics: str | None, list_others: bool | None,
        db: str | None, out: str | None, templates: str | None) -> None:
    """Add a subscriber (or update one; re-adds an unsubscribed address).

    Without --topics they get every new paper; with topics, only papers whose title or
    abstract contains one of them (whole words, any case), with the words highlighted;
    --list-others adds, after those, a titles-only list of the other new papers, each
    linking to the web copy. Someone added today starts with the next digest.

    \b
    Examples:
      digest subscribers add ada@example.org
      digest subscribers add "bob@example.org" --name "Bob" --topics "diffusion, robot learning"
      digest subscribers add bob@example.org --topics diffusion --list-others
    """
    from digest.mail import subscribers as book

    with user_errors(), opened(db, out, templates) as (store, _):
        sub, outcome = book.add(store, email, name, topics, list_others=list_others)
        topics_note = f" (topics: {', '.join(sub.topics)})" if sub.topics else ""
        if sub.list_others:
            topics_note += " (also lists the other papers' titles)"
        click.echo(f"{outcome} {sub.email}{topics_note}")


def _status_command(name: str, status: str, verb: str, doc: str) -> None:
    @subscribers.command(name=name, context_settings=CONTEXT, help=doc)
    @click.argument("email")
    @store_options
    def command(email: str, db: str | None, out: str | None, templates: str | None) -> None:
        from digest.mail import subscribers as book

        with user_errors(), opened(db, out, templates) as (store, _):
            sub = book.set_status(store, email, status)
            click.echo(f"{verb} {sub.email}")


_status_command("remove", UNSUBSCRIBED, "unsubscribed",
                "Unsubscribe an address: it gets nothing more unless added again.\n\n"
                "\b\nExample:\n  digest subscribers remove ada@example.org")
_status_command("pause", PAUSED, "paused",
                "Pause a subscriber: no email (and no backlog) until resumed.\n\n"
                "\b\nExample:\n  digest subscribers pause ada@example.org")
_status_command("resume", ACTIVE, "resumed",
                "Resume a paused subscriber from the next digest on.\n\n"
                "\b\nExample:\n  digest subscribers resume ada@example.org")


@subscribers.command(name="list", context_settings=CONTEXT)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per subscriber.")
@store_options
def list_(as_json: bool, db: str | None, out: str | None, templates: str | None) -> None:
    """List subscribers, oldest first.

    \b
    Example:
      digest subscribers list --json
    """
    from digest.mail import subscribers as book
    from digest.text import plural

    with user_errors(), opened(db, out, templates, read_only=True) as (store, _):
        everyone = book.all_subscribers(store)
        for sub in everyone:
            if as_json:
                click.echo(json.dumps({"email": sub.email, "name": sub.name,
                                       "topics": list(sub.topics), "status": sub.status,
                                       "list_others": sub.list_others},
                                      ensure_ascii=False))
            else:
                topics = ", ".join(sub.topics) or "(all papers)"
                if sub.list_others:
                    topics += " + other titles"
                click.echo(f"{sub.status:<12} {sub.email:<40} {topics}")
        if not as_json:
            active = sum(1 for s in everyone if s.status == book.ACTIVE)
            click.echo(f"{plural(len(everyone), 'subscriber')}, {active} active")


@subscribers.command(name="import", context_settings=CONTEXT)
@click.argument("path", type=click.Path(path_type=Path))
@store_options
def import_(path: Path, db: str | None, out: str | None, templates: str | None) -> None:
    """Add subscribers from a CSV file with the columns email,name,topics[,status,list_others].

    list_others is yes or no (list the other new papers' titles after the matching ones);
    a file without that column leaves the setting as it is (off for new subscribers).

    A bad row is reported with its line number and skipped; the good rows are kept.
    Consent is kept: a row whose status is paused or unsubscribed (as `export` writes
    it) is recorded so, and an address paused or unsubscribed here stays so; only
    `digest subscribers add` re-adds someone who left.

    \b
    Example:
      digest subscribers import people.csv
    """
    from digest.mail import subscribers as book

    with user_errors(), opened(db, out, templates) as (store, _):
        counts, problems = book.import_csv(store, path)
        for problem in problems:
            click.echo(f"{path}:{problem.line}: skipped: {problem.message}", err=True)
        kept = f", {counts['kept']} kept paused or unsubscribed" if counts["kept"] else ""
        click.echo(f"{counts['added']} added, {counts['updated']} updated{kept}, "
                   f"{len(problems)} skipped")


@subscribers.command(context_settings=CONTEXT)
@store_options
def export(db: str | None, out: str | None, templates: str | None) -> None:
    """Print every subscriber as CSV (email,name,topics,status,list_others), ready for import.

    \b
    Example:
      digest subscribers export > subscribers.csv
    """
    from digest.mail import subscribers as book

    with user_errors(), opened(db, out, templates, read_only=True) as (store, _):
        click.echo(book.export_csv(book.all_subscribers(store)), nl=False)
