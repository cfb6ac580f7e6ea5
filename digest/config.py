"""Settings: command line > environment > default. (The TOML file joins this order later.)"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from digest.errors import ConfigError
from digest.render import Site
from digest.store import DEFAULT_URL

DEFAULT_OUT = "out"


@dataclass(frozen=True)
class Settings:
    """Everything a command needs to know about where things live."""

    db_url: str = DEFAULT_URL
    out_dir: Path = Path(DEFAULT_OUT)
    templates: str | None = None
    site: Site = Site()
    feed_size: int = 200


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
    )
