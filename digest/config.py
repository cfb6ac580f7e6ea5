"""Settings: command line > environment > default. (The TOML file joins this order later.)"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import parseaddr
from pathlib import Path
from urllib.parse import urlsplit

from email_validator import EmailNotValidError, validate_email

from digest.errors import ConfigError
from digest.render import Site
from digest.store import DEFAULT_MAX_NEW, DEFAULT_URL

DEFAULT_OUT = "out"


SECURITY_PORTS = {"none": 25, "starttls": 587, "tls": 465}
MAKE_SECRET = "make one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'"


@dataclass(frozen=True)
class EmailSettings:
    """How mail leaves: an SMTP server, or (no host) the outbox folder."""

    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_security: str = "starttls"
    smtp_user: str | None = None
    smtp_password: str | None = field(default=None, repr=False)  # environment only
    from_name: str = "Daily Papers"
    from_address: str = "digest@paper-digest.invalid"
    secret: str | None = field(default=None, repr=False)  # environment only
    max_new: int = DEFAULT_MAX_NEW

    @property
    def domain(self) -> str:
        return self.from_address.rpartition("@")[2]

    def require_secret(self) -> str:
        """The token secret, which every non-outbox send needs."""
        if not self.secret:
            raise ConfigError("DIGEST_SECRET", "not set, and sending by SMTP needs it to sign "
                              "unsubscribe links", MAKE_SECRET)
        return self.secret


@dataclass(frozen=True)
class Settings:
    """Everything a command needs to know about where things live."""

    db_url: str = DEFAULT_URL
    out_dir: Path = Path(DEFAULT_OUT)
    templates: str | None = None
    site: Site = Site()
    feed_size: int = 200
    email: EmailSettings = EmailSettings()


def load_settings(
    db: str | None = None,
    out: str | None = None,
    templates: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Settings:
    """Resolve settings from options, then `DIGEST_*` environment variables, then defaults."""
    env = os.environ if env is None else env
    base_url = env.get("DIGEST_SITE_BASE_URL") or None
    if base_url:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError("DIGEST_SITE_BASE_URL", f"{base_url!r} is not an http(s) URL",
                              "set it like https://papers.example.org")
    feed_size_text = env.get("DIGEST_SITE_FEED_SIZE", "200")
    try:
        feed_size = int(feed_size_text)
        if feed_size < 1:
            raise ValueError
    except ValueError:
        raise ConfigError("DIGEST_SITE_FEED_SIZE", f"{feed_size_text!r} is not a positive number",
                          "set it to how many papers the feeds keep, e.g. 200") from None
    templates = templates or env.get("DIGEST_TEMPLATES") or None
    if templates and not Path(templates).is_dir():
        raise ConfigError("templates", f"folder {templates!r} does not exist",
                          "pass a folder of template overrides, or leave it unset")
    return Settings(
        db_url=db or env.get("DIGEST_DB") or DEFAULT_URL,
        out_dir=Path(out or env.get("DIGEST_OUT") or DEFAULT_OUT),
        templates=templates,
        site=Site(title=env.get("DIGEST_SITE_TITLE") or "Daily Papers",
                  base_url=base_url.rstrip("/") if base_url else None),
        feed_size=feed_size,
        email=load_email_settings(env),
    )


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    text = env.get(name)
    if not text:
        return default
    try:
        value = int(text)
        if value < 1:
            raise ValueError
    except ValueError:
        raise ConfigError(name, f"{text!r} is not a positive whole number",
                          f"set it like {name}={default}") from None
    return value


def load_email_settings(env: Mapping[str, str]) -> EmailSettings:
    """Read the DIGEST_EMAIL_* variables (and DIGEST_SECRET), checking each."""
    security = (env.get("DIGEST_EMAIL_SMTP_SECURITY") or "starttls").lower()
    if security not in SECURITY_PORTS:
        raise ConfigError("DIGEST_EMAIL_SMTP_SECURITY", f"{security!r} is not a security mode",
                          "use none, starttls or tls")
    from_name, from_address = "Daily Papers", "digest@paper-digest.invalid"
    raw_from = env.get("DIGEST_EMAIL_FROM")
    if raw_from:
        name, address = parseaddr(raw_from)
        try:
            from_address = validate_email(address, check_deliverability=False).normalized
        except EmailNotValidError:
            raise ConfigError("DIGEST_EMAIL_FROM", f"{raw_from!r} has no valid address",
                              "set it like: Daily Papers <papers@example.org>") from None
        from_name = " ".join(name.split()) or from_name
    return EmailSettings(
        smtp_host=env.get("DIGEST_EMAIL_SMTP_HOST") or None,
        smtp_port=_positive_int(env, "DIGEST_EMAIL_SMTP_PORT", SECURITY_PORTS[security]),
        smtp_security=security,
        smtp_user=env.get("DIGEST_EMAIL_SMTP_USER") or None,
        smtp_password=env.get("DIGEST_EMAIL_SMTP_PASSWORD") or None,
        from_name=from_name,
        from_address=from_address,
        secret=env.get("DIGEST_SECRET") or None,
        max_new=_positive_int(env, "DIGEST_EMAIL_MAX_NEW", DEFAULT_MAX_NEW),
    )
