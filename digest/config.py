"""Settings, resolved in this order: command line > environment > digest.toml > default.

Every file setting `[section] key` has an environment twin `DIGEST_<SECTION>_<KEY>`
(`DIGEST_DB` and `DIGEST_OUT` stay as shorthands). Secrets (the SMTP password, the token
secret) come from the environment only. Unknown keys are errors, and every value is
checked before anything runs, each problem on one line naming where it came from.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from digest import config_file
from digest.errors import ConfigError, raise_all
from digest.publish.site import Site
from digest.sources import FORMATS, FetchLimits
from digest.store import DEFAULT_MAX_NEW, DEFAULT_URL

DEFAULT_OUT = "out"
T = TypeVar("T")


SECURITY_PORTS = {"none": 25, "starttls": 587, "tls": 465}
EXAMPLE_FROM = f"{Site.title} <papers@example.org>"  # in `digest init`'s file and in errors
MAKE_SECRET = "make one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'"


@dataclass(frozen=True)
class EmailSettings:
    """How mail leaves: an SMTP server, or (no host) the outbox folder."""

    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_security: str = "starttls"
    smtp_user: str | None = None
    smtp_password: str | None = field(default=None, repr=False)  # environment only
    from_name: str = Site.title  # the newsletter is named like the site
    from_address: str = "digest@paper-digest.invalid"
    secret: str | None = field(default=None, repr=False)  # environment only
    max_new: int = DEFAULT_MAX_NEW
    smtp_timeout: int = 30  # seconds for each SMTP command's reply
    final_reply_timeout: int = 600  # seconds for the reply to a whole message (RFC 5321)
    retries: int = 4  # rounds at the end of a run for deferred deliveries: waits 1, 2, 4, 8 s

    @property
    def retry_delays(self) -> tuple[float, ...]:
        """The waits before each retry round: doubling from 1 second."""
        return tuple(float(2 ** i) for i in range(self.retries))

    @property
    def domain(self) -> str:
        return self.from_address.rpartition("@")[2]

    def require_secret(self, why: str = "sending by SMTP needs it to sign unsubscribe links") -> str:
        """The token secret, which every non-outbox send and the web app need."""
        if not self.secret:
            raise ConfigError("DIGEST_SECRET", f"not set, and {why}", MAKE_SECRET)
        check_secret(self.secret)
        return self.secret


MIN_SECRET = 32  # characters: a short secret is guessed from a single signed link


def check_secret(secret: str) -> None:
    """Refuse a token secret short enough to be recovered from one link by brute force."""
    if len(secret) < MIN_SECRET:
        raise ConfigError("DIGEST_SECRET", f"only {len(secret)} characters; links signed with "
                          f"a short secret can be forged (use {MIN_SECRET} or more)", MAKE_SECRET)


def link_problem(settings: Settings) -> ConfigError | None:
    """Why emails sent with these settings would carry broken links, or None."""
    if settings.site.base_url:
        return None
    return ConfigError("site.base_url", "not set, so emails get relative links and no web "
                       "unsubscribe or preferences link", "set [site] base_url (or "
                       "DIGEST_SITE_BASE_URL) to the public URL, e.g. https://papers.example.org")


@dataclass(frozen=True)
class WebSettings:
    """`digest serve`'s limits, and whom it trusts to say who the client is."""

    max_body: int = 65536  # bytes a request body may have (forms are tiny)
    subscribe_rate: str = "5 per 10 minutes"  # subscribe requests per client address
    confirm_rate: str = "1 per hour"  # confirmation emails per email address
    trusted_proxies: str = "127.0.0.1"  # whose X-Forwarded-For is believed ("none": nobody's)


@dataclass(frozen=True)
class ScheduleSettings:
    """When `digest schedule` runs a cycle."""

    cron: str = "0 8 * * *"
    timezone: str = "UTC"
    misfire_grace: int = 3600  # seconds a late run may still start (APScheduler's default: 1)


@dataclass(frozen=True)
class EnrichSettings:
    """Looking papers without an arXiv id up by title on the arXiv API: polite and bounded."""

    arxiv: bool = True
    api_url: str = "https://export.arxiv.org/api/query"
    budget: int = 60  # seconds per cycle; the rest wait for the next cycle
    timeout: int = 20  # seconds per request (cut to what is left of the budget)
    interval: int = 3  # seconds between requests: arXiv's rule
    batch: int = 20  # titles per request (one OR query)


@dataclass(frozen=True)
class SourceSettings:
    """One listing to watch: a file, a folder or an http(s) URL, in a format (or auto)."""

    name: str
    location: str
    format: str = "auto"


@dataclass(frozen=True)
class Settings:
    """Everything a command needs to know."""

    db_url: str = DEFAULT_URL
    out_dir: Path = Path(DEFAULT_OUT)
    templates: str | None = None
    site: Site = Site()
    feed_size: int = 200
    email: EmailSettings = EmailSettings()
    schedule: ScheduleSettings = ScheduleSettings()
    enrich: EnrichSettings = EnrichSettings()
    web: WebSettings = WebSettings()
    sources: tuple[SourceSettings, ...] = ()
    alerts_email: str | None = None
    fetch: FetchLimits = FetchLimits()
    config_path: Path | None = None



SOURCE_FORMATS = ("auto", *FORMATS)
CRON_FIELDS = ("minute", "hour", "day", "month", "day_of_week")
# The defaults table (pelican's DEFAULT_CONFIG): each file setting (section, key) -> its default,
# read from the settings dataclasses so that every default is written once. The environment
# twin of a setting is DIGEST_SECTION_KEY.
# A default in the table, and a raw value read from digest.toml (any TOML value) or the
# environment (text), before it is checked.
Default = str | int | bool | tuple[str, ...] | None
KEYS: dict[tuple[str, str], Default] = {
    ("store", "url"): DEFAULT_URL,
    ("output", "dir"): DEFAULT_OUT,
    ("output", "templates"): None,
    ("site", "title"): Site.title,
    ("site", "base_url"): None,
    ("site", "feed_size"): Settings.feed_size,
    ("site", "topic_feeds"): (),
    ("email", "smtp_host"): None,
    ("email", "smtp_port"): None,
    ("email", "smtp_security"): EmailSettings.smtp_security,
    ("email", "smtp_user"): None,
    ("email", "from"): None,
    ("email", "max_new"): EmailSettings.max_new,
    ("email", "smtp_timeout"): EmailSettings.smtp_timeout,
    ("email", "final_reply_timeout"): EmailSettings.final_reply_timeout,
    ("email", "retries"): EmailSettings.retries,
    ("web", "max_body"): WebSettings.max_body,
    ("web", "subscribe_rate"): WebSettings.subscribe_rate,
    ("web", "confirm_rate"): WebSettings.confirm_rate,
    ("web", "trusted_proxies"): WebSettings.trusted_proxies,
    ("schedule", "cron"): ScheduleSettings.cron,
    ("schedule", "timezone"): ScheduleSettings.timezone,
    ("schedule", "misfire_grace"): ScheduleSettings.misfire_grace,
    ("alerts", "email"): None,
    ("enrich", "arxiv"): EnrichSettings.arxiv,
    ("enrich", "api_url"): EnrichSettings.api_url,
    ("enrich", "budget"): EnrichSettings.budget,
    ("enrich", "timeout"): EnrichSettings.timeout,
    ("enrich", "interval"): EnrichSettings.interval,
    ("enrich", "batch"): EnrichSettings.batch,
    ("fetch", "max_bytes"): FetchLimits.max_bytes,
    ("fetch", "deadline"): int(FetchLimits.deadline),
    ("fetch", "max_redirects"): FetchLimits.max_redirects,
}
SHORTHANDS = {("store", "url"): "DIGEST_DB", ("output", "dir"): "DIGEST_OUT",
              ("output", "templates"): "DIGEST_TEMPLATES"}
SECRETS = {("email", "smtp_password"): "DIGEST_EMAIL_SMTP_PASSWORD",
           ("email", "secret"): "DIGEST_SECRET", ("site", "secret"): "DIGEST_SECRET"}


# Where a file setting lives on Settings when it is not `settings.<section>.<key>`.
_ATTRIBUTES = {("store", "url"): "db_url", ("output", "dir"): "out_dir",
               ("output", "templates"): "templates", ("site", "feed_size"): "feed_size",
               ("alerts", "email"): "alerts_email"}


def effective(settings: Settings) -> list[tuple[str, str]]:
    """Every file setting's value by its name in digest.toml (`store.url`, `email.from`),
    whether each secret is set (by its variable), then the sources: `digest config check`."""
    def shown(value: object) -> str:
        return repr(str(value)) if isinstance(value, Path) else repr(value)

    rows: list[tuple[str, str]] = []
    for section, key in KEYS:
        if (section, key) == ("email", "from"):
            value: object = f"{settings.email.from_name} <{settings.email.from_address}>"
        elif (section, key) in _ATTRIBUTES:
            value = getattr(settings, _ATTRIBUTES[(section, key)])
        else:
            value = getattr(getattr(settings, section), key)
        rows.append((f"{section}.{key}", shown(value)))
    for name, secret in (("DIGEST_EMAIL_SMTP_PASSWORD", settings.email.smtp_password),
                         ("DIGEST_SECRET", settings.email.secret)):
        rows.append((name, "(set)" if secret else "(not set)"))
    for index, source in enumerate(settings.sources, 1):
        rows += [(f"sources[{index}].{key}", shown(getattr(source, key)))
                 for key in ("name", "location", "format")]
    return rows


def either(names: Iterable[str]) -> str:
    """`a, b or c`: the choices of a setting, for its help and its errors."""
    *most, last = names
    return f"{', '.join(most)} or {last}" if most else last


def env_name(section: str, key: str) -> str:
    return f"DIGEST_{section.upper()}_{key.upper()}"


class _Values:
    """Raw values by (section, key), each with where it came from, for error messages; and
    the problems found so far, so that every bad setting is reported, not just the first."""

    def __init__(self, file_values: Mapping[str, object], file_label: str,
                 env: Mapping[str, str]) -> None:
        self.file, self.file_label, self.env = file_values, file_label, env
        self.problems: list[ConfigError] = []

    def checked(self, compute: Callable[[], T], fallback: T) -> T:
        """The setting, or (noting the problem) its fallback: every problem gets reported."""
        try:
            return compute()
        except ConfigError as exc:
            self.problems.extend(getattr(exc, "problems", [exc]))
            return fallback

    def get(self, section: str, key: str) -> tuple[object, str]:
        names = [env_name(section, key)]
        if (section, key) in SHORTHANDS:
            names.insert(0, SHORTHANDS[(section, key)])
        for name in names:
            if self.env.get(name):
                return self.env[name], name
        table = self.file.get(section, {})
        if isinstance(table, dict) and key in table:
            return table[key], f"{self.file_label}: {section}.{key}"
        return KEYS[(section, key)], f"{section}.{key}"

    def example(self, section: str, key: str, value: object) -> str:
        """`set it like ...` in the form the value was given: a variable or a file line."""
        where = self.get(section, key)[1]
        if where.startswith("DIGEST_"):
            return f"set it like {where}={value}"
        return f"set it like {key} = {value} under [{section}]"

    def text(self, section: str, key: str) -> str | None:
        """The setting as text; None when unset or empty."""
        value, where = self.get(section, key)
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise ConfigError(where, f"{value!r} should be text", "quote it")
        return value

    def number(self, section: str, key: str, default: int, least: int = 1) -> int:
        """The setting as a whole number of at least `least`; `default` when unset or empty."""
        value, where = self.get(section, key)
        if value is None or value == "":
            return default
        try:
            if isinstance(value, bool | float) or not isinstance(value, int | str):
                raise ValueError
            result = int(value)
            if result < least:
                raise ValueError
        except ValueError:
            kind = "a positive whole number" if least == 1 else f"a whole number, {least} or more"
            raise ConfigError(where, f"{value!r} is not {kind}",
                              self.example(section, key, default or least)) from None
        return result


def read_config_file(path: Path) -> tuple[dict[str, object], list[ConfigError]]:
    """Parse digest.toml; its unknown sections and keys, and secrets in it, are problems
    (returned, so that they are reported with the bad values of the keys that are known)."""
    label = str(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(label, "no such file", "check --config / DIGEST_CONFIG, or run "
                          "`digest init` to write an example") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(label, f"cannot read ({exc})", "check the file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(label, f"not valid TOML ({exc})", "fix the syntax at that line") from None
    sections = {section for section, _ in KEYS} | {"sources"}
    problems: list[ConfigError] = []
    for section, table in data.items():
        if section not in sections:
            problems.append(ConfigError(label, f"unknown section [{section}]",
                                        f"use one of: {', '.join(sorted(sections))}"))
            continue
        if section == "sources":
            continue
        if not isinstance(table, dict):
            problems.append(ConfigError(label, f"{section} must be a table",
                                        f"write it as [{section}]"))
            continue
        for key in table:
            if (section, key) in SECRETS:
                problems.append(ConfigError(
                    f"{label}: {section}.{key}", "secrets are read from the environment only",
                    f"remove it and set {SECRETS[(section, key)]}"))
            elif (section, key) not in KEYS:
                known = ", ".join(k for s, k in KEYS if s == section)
                problems.append(ConfigError(f"{label}: {section}.{key}", "unknown setting",
                                            f"[{section}] takes: {known}"))
    return data, problems


def load_settings(
    db: str | None = None,
    out: str | None = None,
    templates: str | None = None,
    env: Mapping[str, str] | None = None,
    config: str | None = None,
    locations: bool = False,
) -> Settings:
    """Resolve every setting: options, then DIGEST_* variables, then digest.toml, then defaults.
    Every problem is reported, each setting on its own line; `locations` also checks that
    the sources' files and folders exist."""
    env = os.environ if env is None else env
    path, explicit = config_file(config, env)
    file_values, problems = read_config_file(path) if explicit or path.is_file() else ({}, [])
    values = _Values(file_values, str(path), env)
    values.problems += problems
    text, number, checked = values.text, values.number, values.checked

    settings = Settings(
        db_url=checked(lambda: db or text("store", "url") or DEFAULT_URL, DEFAULT_URL),
        out_dir=checked(lambda: Path(out or text("output", "dir") or DEFAULT_OUT), Path(DEFAULT_OUT)),
        templates=checked(lambda: _templates(values, templates or text("output", "templates"),
                                             given=templates is not None), None),
        site=Site(title=checked(lambda: text("site", "title") or Site.title, Site.title),
                  base_url=checked(lambda: _base_url(values, text("site", "base_url")), None),
                  topic_feeds=checked(lambda: _topic_feeds(values), ())),
        feed_size=checked(lambda: number("site", "feed_size", Settings.feed_size), Settings.feed_size),
        email=_email_settings(values, env),
        schedule=_schedule_settings(values),
        enrich=_enrich_settings(values),
        web=_web_settings(values),
        sources=_sources(values, file_values.get("sources", []), str(path), locations),
        alerts_email=checked(lambda: _address(values, "alerts", "email", text("alerts", "email")),
                             None),
        fetch=FetchLimits(
            max_bytes=checked(lambda: number("fetch", "max_bytes", FetchLimits.max_bytes),
                              FetchLimits.max_bytes),
            deadline=float(checked(lambda: number("fetch", "deadline", int(FetchLimits.deadline)),
                                   FetchLimits.deadline)),
            max_redirects=checked(lambda: number("fetch", "max_redirects", FetchLimits.max_redirects),
                                  FetchLimits.max_redirects)),
        config_path=path if file_values else None,
    )
    raise_all(values.problems)
    return settings


def _base_url(values: _Values, base_url: str | None) -> str | None:
    if not base_url:
        return None
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(values.get("site", "base_url")[1], f"{base_url!r} is not an "
                          "http(s) URL", "set it like https://papers.example.org")
    return base_url.rstrip("/")


def _templates(values: _Values, templates: str | None, given: bool) -> str | None:
    if templates and not Path(templates).is_dir():
        raise ConfigError("--templates" if given else values.get("output", "templates")[1],
                          f"folder {templates!r} does not exist",
                          "pass a folder of template overrides, or leave it unset")
    return templates


def is_url(location: str) -> bool:
    """An http(s) URL, as opposed to a file or folder."""
    return location.lower().startswith(("http://", "https://"))


def _topic_feeds(values: _Values) -> tuple[str, ...]:
    """`["reasoning", "diffusion, video"]` in the file, `reasoning; diffusion, video` in the
    environment: one feed per entry, each entry a topic list as subscribers write them."""
    raw, where = values.get("site", "topic_feeds")
    entries = raw.split(";") if isinstance(raw, str) else raw
    if not isinstance(entries, list | tuple) or not all(isinstance(e, str) for e in entries):
        raise ConfigError(where, f"{raw!r} is not a list of topics",
                          'set it like topic_feeds = ["reasoning", "diffusion models"]')
    topics = [e for e in entries if isinstance(e, str)]
    return tuple(dict.fromkeys(" ".join(e.split()) for e in topics if e.strip()))


def _enrich_settings(values: _Values) -> EnrichSettings:
    number, checked, defaults = values.number, values.checked, EnrichSettings()

    def arxiv() -> bool:
        raw, where = values.get("enrich", "arxiv")
        flag = str(raw).strip().lower()
        if flag not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
            raise ConfigError(where, f"{raw!r} is not true or false", "set it like arxiv = false")
        return flag in ("true", "1", "yes", "on")

    def api_url() -> str:
        url = values.text("enrich", "api_url") or EnrichSettings.api_url
        if urlsplit(url).scheme not in ("http", "https"):
            raise ConfigError(values.get("enrich", "api_url")[1], f"{url!r} is not an http(s) URL",
                              f"leave it unset for {EnrichSettings.api_url}")
        return url

    def count(key: str) -> int:
        default: int = getattr(defaults, key)
        return checked(lambda: number("enrich", key, default), default)

    return EnrichSettings(
        arxiv=checked(arxiv, defaults.arxiv), api_url=checked(api_url, defaults.api_url),
        budget=count("budget"), timeout=count("timeout"), interval=count("interval"),
        batch=count("batch"),
    )


def _address(values: _Values, section: str, key: str, raw: str | None) -> str | None:
    if not raw:
        return None
    from email_validator import EmailNotValidError, validate_email

    try:
        return validate_email(raw, check_deliverability=False).normalized
    except EmailNotValidError:
        raise ConfigError(values.get(section, key)[1], f"{raw!r} is not an email address",
                          "set it like ops@example.org") from None


def _email_settings(values: _Values, env: Mapping[str, str]) -> EmailSettings:
    text, number, checked = values.text, values.number, values.checked

    def security() -> str:
        mode = (text("email", "smtp_security") or EmailSettings.smtp_security).lower()
        if mode not in SECURITY_PORTS:
            raise ConfigError(values.get("email", "smtp_security")[1],
                              f"{mode!r} is not a security mode", f"use {either(SECURITY_PORTS)}")
        return mode

    def sender() -> tuple[str, str]:
        raw_from = text("email", "from")
        if not raw_from:
            return EmailSettings.from_name, EmailSettings.from_address
        from email.utils import parseaddr

        name, address = parseaddr(raw_from)
        from email_validator import EmailNotValidError, validate_email

        try:
            address = validate_email(address, check_deliverability=False).normalized
        except EmailNotValidError:
            raise ConfigError(values.get("email", "from")[1], f"{raw_from!r} has no valid address",
                              f"set it like: {EXAMPLE_FROM}") from None
        return " ".join(name.split()) or EmailSettings.from_name, address

    def count(key: str, least: int = 1) -> int:
        default: int = getattr(EmailSettings, key)
        return checked(lambda: number("email", key, default, least), default)

    mode = checked(security, EmailSettings.smtp_security)
    from_name, from_address = checked(sender, (EmailSettings.from_name, EmailSettings.from_address))
    port = SECURITY_PORTS[mode]
    return EmailSettings(
        smtp_host=checked(lambda: text("email", "smtp_host"), None),
        smtp_port=checked(lambda: number("email", "smtp_port", port), port),
        smtp_security=mode,
        smtp_user=checked(lambda: text("email", "smtp_user"), None),
        smtp_password=env.get("DIGEST_EMAIL_SMTP_PASSWORD") or None,
        from_name=from_name,
        from_address=from_address,
        secret=checked(lambda: _secret(env.get("DIGEST_SECRET") or None), None),
        max_new=count("max_new"),
        smtp_timeout=count("smtp_timeout"),
        final_reply_timeout=count("final_reply_timeout"),
        retries=min(count("retries", least=0), 8),
    )


def _web_settings(values: _Values) -> WebSettings:
    def rate(key: str, default: str) -> str:
        rate = values.text("web", key) or default
        if rate != default:  # the defaults are tested: no `limits` import for them
            from limits import parse

            try:
                parse(rate)
            except ValueError:
                raise ConfigError(values.get("web", key)[1], f"{rate!r} is not a rate",
                                  'write it like "5 per 10 minutes" or "1 per hour"') from None
        return rate

    def trusted_proxies() -> str:
        proxies, where = values.get("web", "trusted_proxies")
        proxies = "" if proxies is None or str(proxies).strip().lower() == "none" else str(proxies)
        from ipaddress import ip_network

        for host in filter(None, (h.strip() for h in proxies.split(","))):
            try:
                ip_network(host, strict=False)
            except ValueError:
                raise ConfigError(where, f"{host!r} is not an IP address or network",
                                  'list proxies like "127.0.0.1, 10.0.0.0/8", or "none"') from None
        return proxies

    checked = values.checked
    return WebSettings(
        max_body=checked(lambda: values.number("web", "max_body", WebSettings.max_body),
                         WebSettings.max_body),
        trusted_proxies=checked(trusted_proxies, WebSettings.trusted_proxies),
        subscribe_rate=checked(lambda: rate("subscribe_rate", WebSettings.subscribe_rate),
                               WebSettings.subscribe_rate),
        confirm_rate=checked(lambda: rate("confirm_rate", WebSettings.confirm_rate),
                             WebSettings.confirm_rate))


def _secret(value: str | None) -> str | None:
    if value is not None:
        check_secret(value)
    return value


def check_cron(expression: str, timezone: str) -> str | None:
    """Why `expression` is not a valid 5-field cron expression, or None when it is."""
    from apscheduler.triggers.cron import CronTrigger

    fields = expression.split()
    if len(fields) != 5:
        return f"has {len(fields)} fields, not 5 (minute hour day month weekday)"
    for index, name in enumerate(CRON_FIELDS):
        try:
            CronTrigger(**{name: fields[index]}, timezone=timezone)
        except ValueError:
            return f"{name.replace('_', ' ')} {fields[index]}"
    return None


def _schedule_settings(values: _Values) -> ScheduleSettings:
    text, checked = values.text, values.checked

    def timezone() -> str:
        zone = text("schedule", "timezone") or ScheduleSettings.timezone
        if zone == ScheduleSettings.timezone:  # the default is tested: no zoneinfo import for it
            return zone
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(values.get("schedule", "timezone")[1], f"{zone!r} is not a time zone",
                              "use a name like UTC or Europe/Paris") from None
        return zone

    def cron(zone: str) -> str:
        expression = text("schedule", "cron") or ScheduleSettings.cron
        # The default is tested (and the time zone checked): no APScheduler import for it.
        problem = check_cron(expression, zone) if expression != ScheduleSettings.cron else None
        if problem:
            raise ConfigError(values.get("schedule", "cron")[1],
                              f'"{expression}" is not a valid cron expression ({problem})',
                              f'use five fields, e.g. "{ScheduleSettings.cron}" for 08:00 every day')
        return expression

    zone = checked(timezone, ScheduleSettings.timezone)
    grace = ScheduleSettings.misfire_grace
    return ScheduleSettings(
        cron=checked(lambda: cron(zone), ScheduleSettings.cron), timezone=zone,
        misfire_grace=checked(lambda: values.number("schedule", "misfire_grace", grace), grace))


def _sources(values: _Values, raw: object, label: str,
             locations: bool) -> tuple[SourceSettings, ...]:
    """The sources; with `locations`, a file or folder that does not exist is a problem too
    (`digest config check` reports it; a run fails just that source)."""
    if not isinstance(raw, list):
        values.problems.append(ConfigError(
            f"{label}: sources", "must be a list of tables",
            'write each as [[sources]] with name = "..." and location = "..."'))
        return ()
    found: list[SourceSettings] = []
    names: set[str] = set()
    for index, table in enumerate(raw, 1):
        where = f"{label}: sources[{index}]"
        source: SourceSettings | None = values.checked(partial(_source, table, where), None)
        # The name and the path are checked as written even when the table has other
        # problems, so one `config check` names them all.
        fields = table if isinstance(table, dict) else {}
        name, location = fields.get("name"), fields.get("location")
        if isinstance(name, str) and name.strip():
            if name in names:
                values.problems.append(ConfigError(f"{where}.name", f"{name!r} is used twice",
                                                   "give each source its own name"))
            names.add(name)
        if (locations and isinstance(location, str) and location.strip() and "://" not in location
                and not Path(location).exists()):
            values.problems.append(ConfigError(f"{where}.location",
                                               f"{location!r}: no such file or folder",
                                               "create it, or fix the path"))
        if source is not None:
            found.append(source)
    return tuple(found)


def _source(table: object, where: str) -> SourceSettings:
    """One [[sources]] table; each of its problems reported, not just the first."""
    if not isinstance(table, dict):
        raise ConfigError(where, "must be a table", "write it as [[sources]]")
    problems = [ConfigError(f"{where}.{key}", "unknown setting", "a source takes: name, location, format")
                for key in sorted(set(table) - {"name", "location", "format"})]
    name, location = table.get("name"), table.get("location")
    if not isinstance(name, str) or not name.strip():
        problems.append(ConfigError(f"{where}.name", "missing", 'give every source a name = "..."'))
    if not isinstance(location, str) or not location.strip():
        problems.append(ConfigError(f"{where}.location", "missing",
                                    "set a file, a folder or an http(s) URL"))
    elif "://" in location and (scheme := urlsplit(location).scheme.lower()) not in ("http", "https"):
        problems.append(ConfigError(f"{where}.location", f"{location!r}: {scheme}:// is not supported",
                                    "use a file, a folder or an http(s) URL"))
    fmt = table.get("format", SourceSettings.format)
    if fmt not in SOURCE_FORMATS:
        problems.append(ConfigError(f"{where}.format", f"{fmt!r} is not a format",
                                    f"use one of: {', '.join(SOURCE_FORMATS)}"))
    raise_all(problems)
    return SourceSettings(name=str(name), location=str(location), format=str(fmt))
