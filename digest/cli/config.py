"""`digest config check` and `digest init`: see and start the settings."""

from __future__ import annotations

from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any

import click

from digest import CONFIG_NAME
from digest.cli.support import CONTEXT, settings_for, user_errors
from digest.errors import ConfigError
from digest.publish.output import write_atomic

EXAMPLE = """\
# paper-digest settings. Every setting can be overridden by an environment variable
# DIGEST_<SECTION>_<KEY> (e.g. DIGEST_EMAIL_SMTP_HOST); the command line beats both.
# Secrets never go here: set DIGEST_EMAIL_SMTP_PASSWORD and DIGEST_SECRET in the
# environment (make a secret with: python -c 'import secrets; print(secrets.token_urlsafe(32))').

[store]
# SQLite file, or PostgreSQL: "postgresql+psycopg://digest@db.example.org/digest"
url = "sqlite:///digest.sqlite3"

[output]
dir = "out"
# templates = "my-templates"   # a folder of template overrides

[site]
title = "Daily Papers"
# base_url = "https://papers.example.org"   # where out/ is served; makes links absolute
feed_size = 200
# topic_feeds = ["reasoning", "diffusion, video"]   # also write out/topics/<topics>.xml/.atom

[email]
# Without smtp_host, mail goes to out/outbox/ as .eml files.
# smtp_host = "smtp.example.org"
# smtp_port = 587
smtp_security = "starttls"   # none, starttls or tls
# smtp_user = "digest"
from = "Daily Papers <papers@example.org>"
max_new = 300                # flood guard: hold a digest with more new papers than this
# smtp_timeout = 30          # seconds for each SMTP command's reply
# final_reply_timeout = 600  # seconds for the reply to a whole message (RFC 5321)
# retries = 4                # end-of-run retry rounds for deferred deliveries

# [web]                      # digest serve's limits
# max_body = 65536           # bytes per request body
# subscribe_rate = "5 per 10 minutes"   # per client address
# confirm_rate = "1 per hour"           # confirmation emails per email address
# trusted_proxies = "127.0.0.1"         # whose X-Forwarded-For to believe, or "none"

[schedule]
cron = "0 8 * * *"           # minute hour day month weekday
timezone = "UTC"
misfire_grace = 3600         # seconds a late run may still start after downtime

# [alerts]
# email = "ops@example.org"  # one short email when a cycle fails (at most daily per source)

[enrich]
arxiv = true                 # look papers without an arXiv id up by exact title (run, schedule)
budget = 60                  # seconds of look-ups per cycle; the rest wait for the next cycle
timeout = 20                 # seconds per request
interval = 3                 # seconds between requests (arXiv asks for 3)

# One [[sources]] block per listing: a file, a folder of captures, or an http(s) URL.
# format: auto, dailypage, hf-json, hf-html, arxiv or feed.
[[sources]]
name = "hf-daily"
location = "https://huggingface.co/api/daily_papers"
format = "auto"

# Watch a topic: the papers search API (or the search page, told apart automatically:
# "https://huggingface.co/papers?q=slow+fast+thinking"). Each run publishes only the
# results never seen before.
# [[sources]]
# name = "slow-fast-thinking"
# location = "https://huggingface.co/api/papers/search?q=slow+fast+thinking"
"""

_SECRET_FIELDS = {"smtp_password", "secret"}


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
    from digest.config import check_locations, link_problem
    from digest.errors import raise_all

    with user_errors():
        settings = settings_for()
        raise_all(check_locations(settings))
        source = settings.config_path or "(no digest.toml: defaults and environment)"
        click.echo(f"# settings from {source}")
        for name, value in _flatten(settings):
            click.echo(f"{name} = {value}")
        problem = link_problem(settings)
        if problem is not None and settings.email.smtp_host:
            raise problem  # `digest send` would refuse: say so now
        if problem is not None:
            click.echo(f"warning: {problem.message}")
        click.echo("ok")


def _flatten(value: Any, prefix: str = "") -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    if is_dataclass(value) and not isinstance(value, type):
        for field in fields(value):
            rows += _flatten(getattr(value, field.name),
                             f"{prefix}.{field.name}" if prefix else field.name)
        return rows
    if isinstance(value, tuple) and value and is_dataclass(value[0]):
        for index, item in enumerate(value, 1):
            rows += _flatten(item, f"{prefix}[{index}]")
        return rows
    leaf = prefix.rsplit(".", 1)[-1]
    if leaf in _SECRET_FIELDS:
        return [(prefix, "(set)" if value else "(not set)")]
    return [(prefix, repr(str(value)) if isinstance(value, Path) else repr(value))]


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
        write_atomic(target, EXAMPLE)
        click.echo(f"wrote {path}: edit it, then run `digest config check`")
