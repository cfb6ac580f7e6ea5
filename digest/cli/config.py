"""`digest config check` and `digest init`: see and start the settings."""

from __future__ import annotations

import json
import re
from pathlib import Path

import click

from digest import CONFIG_NAME
from digest.cli.support import CONTEXT, settings_for, user_errors
from digest.errors import ConfigError

# The example `digest init` writes. Each {section.key} is that setting's default from
# config.KEYS, so every default is written once; a comment after one keeps its column.
EXAMPLE = """\
# paper-digest settings. Every setting can be overridden by an environment variable
# DIGEST_<SECTION>_<KEY> (e.g. DIGEST_EMAIL_SMTP_HOST); the command line beats both.
# Secrets never go here: set DIGEST_EMAIL_SMTP_PASSWORD and DIGEST_SECRET in the
# environment (make a secret with: python -c 'import secrets; print(secrets.token_urlsafe(32))').

[store]
# SQLite file, or PostgreSQL: "postgresql+psycopg://digest@db.example.org/digest"
url = {store.url}

[output]
dir = {output.dir}
# templates = "my-templates"   # a folder of template overrides

[site]
title = {site.title}
# base_url = "https://papers.example.org"   # where out/ is served; makes links absolute
feed_size = {site.feed_size}
# topic_feeds = ["reasoning", "diffusion, video"]   # also write out/topics/<topics>.xml/.atom

[email]
# Without smtp_host, mail goes to out/outbox/ as .eml files.
# smtp_host = "smtp.example.org"
# smtp_port = {email.smtp_port}
smtp_security = {email.smtp_security}   # {securities}
# smtp_user = "digest"
from = {from}
max_new = {email.max_new}                # flood guard: hold a digest with more new papers than this
# smtp_timeout = {email.smtp_timeout}          # seconds for each SMTP command's reply
# final_reply_timeout = {email.final_reply_timeout}  # seconds for the reply to a whole message (RFC 5321)
# retries = {email.retries}                # end-of-run retry rounds for deferred deliveries

# [web]                      # digest serve's limits
# max_body = {web.max_body}           # bytes per request body
# subscribe_rate = {web.subscribe_rate}   # per client address
# confirm_rate = {web.confirm_rate}           # confirmation emails per email address
# trusted_proxies = {web.trusted_proxies}         # whose X-Forwarded-For to believe, or "none"

[schedule]
cron = {schedule.cron}           # minute hour day month weekday
timezone = {schedule.timezone}
misfire_grace = {schedule.misfire_grace}         # seconds a late run may still start after downtime

# [alerts]
# email = "ops@example.org"  # one short email when a cycle fails (at most daily per source)

[enrich]
arxiv = {enrich.arxiv}                 # look papers without an arXiv id up by exact title (run, schedule)
budget = {enrich.budget}                  # seconds of look-ups per cycle; the rest wait for the next cycle
timeout = {enrich.timeout}                 # seconds per request
interval = {enrich.interval}                 # seconds between requests (arXiv asks for 3)
batch = {enrich.batch}                   # titles per request (one OR query)
# api_url = {enrich.api_url}

# [fetch]                    # limits of one fetch of an http(s) source
# max_bytes = {fetch.max_bytes}     # largest body, counted decoded
# deadline = {fetch.deadline}            # seconds for the whole fetch: tries, redirects, waits
# max_redirects = {fetch.max_redirects}         # redirects followed per try

# One [[sources]] block per listing: a file, a folder of captures, or an http(s) URL.
# format: {formats}.
[[sources]]
name = "hf-daily"
location = "https://huggingface.co/api/daily_papers"
format = {source.format}

# Watch a topic: the papers search API (or the search page, told apart automatically:
# "https://huggingface.co/papers?q=slow+fast+thinking"). Each run publishes only the
# results never seen before.
# [[sources]]
# name = "slow-fast-thinking"
# location = "https://huggingface.co/api/papers/search?q=slow+fast+thinking"
"""

_COMMENT_COLUMN = 29
_PLACE = re.compile(r"\{([a-z_]+)(?:\.([a-z_]+))?\}")


def example_config() -> str:
    """The example settings file, its values the defaults (and the lists) of digest.config."""
    from digest.config import (
        EXAMPLE_FROM,
        KEYS,
        SECURITY_PORTS,
        SOURCE_FORMATS,
        EmailSettings,
        SourceSettings,
        either,
    )

    def toml(value: object) -> str:
        return str(value).lower() if isinstance(value, bool) else json.dumps(value)

    named: dict[tuple[str, str | None], str] = {
        ("securities", None): either(SECURITY_PORTS),
        ("formats", None): either(SOURCE_FORMATS),
        ("from", None): toml(EXAMPLE_FROM),
        ("source", "format"): toml(SourceSettings.format),
        ("email", "smtp_port"): toml(SECURITY_PORTS[EmailSettings.smtp_security]),
    }
    named.update({key: toml(value) for key, value in KEYS.items() if value is not None})

    def fill(text: str) -> str:
        return _PLACE.sub(lambda m: named[(m[1], m[2])], text)

    lines: list[tuple[str, str | None]] = []  # (code, the comment after it)
    for line in EXAMPLE.splitlines():
        end = line.find("}")
        at = line.find("#", end) if end >= 0 else -1
        lines.append((fill(line[:at]).rstrip(), fill(line[at:])) if at >= 0 else (fill(line), None))
    out, run = [], []  # consecutive commented lines share a comment column
    for code, note in [*lines, ("", None)]:
        if note is not None:
            run.append((code, note))
            continue
        width = max([_COMMENT_COLUMN, *(len(c) + 2 for c, _ in run)])
        out += [f"{c.ljust(width)}{n}" for c, n in run] + [code]
        run = []
    return "\n".join(out)


@click.group(name="config", context_settings=CONTEXT)
def config_group() -> None:
    """Check the settings.

    \b
    Example:
      digest --config /etc/paper-digest/digest.toml config check
    """


@config_group.command(context_settings=CONTEXT)
def check() -> None:
    """Validate the settings and print the effective configuration, secrets masked.

    Reads the command line, DIGEST_* variables and digest.toml, and checks that every
    source's file or folder exists; reports every problem, one line each naming the file
    and key (or variable) and how to fix it, and exits 2 if there is any.

    \b
    Example:
      DIGEST_EMAIL_SMTP_HOST=smtp.example.org digest config check
    """
    from digest.config import effective, link_problem

    with user_errors():
        settings = settings_for(locations=True)
        source = settings.config_path or "(no digest.toml: defaults and environment)"
        click.echo(f"# settings from {source}")
        for name, value in effective(settings):
            click.echo(f"{name} = {value}")
        problem = link_problem(settings)
        if problem is not None and settings.email.smtp_host:
            raise problem  # `digest send` would refuse: say so now
        if problem is not None:
            click.echo(f"warning: {problem.message}")
        click.echo("ok")


@click.command(context_settings=CONTEXT)
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
@click.argument("path", default=CONFIG_NAME, required=False)
def init(path: str, force: bool) -> None:
    """Write a commented example digest.toml to start from.

    \b
    Example:
      digest init && digest config check
    """
    with user_errors():
        target = Path(path)
        if target.exists() and not force:
            raise ConfigError(path, "already exists", "pass --force to overwrite it")
        from digest.publish.output import write_atomic  # tempfile: for `init` alone

        write_atomic(target, example_config())
        click.echo(f"wrote {path}: edit it, then run `digest config check`")
