"""What the renderers, the feeds and the mail share without a template engine: where the
site lives, the email body's two forms, the long date. Kept apart from `render` so that
settings and a steady cycle never import Jinja2."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from digest.capture import MONTH_NAMES

if TYPE_CHECKING:
    from digest.models import DigestInfo


@dataclass(frozen=True)
class Site:
    """Where the outputs will live: the title and, when public, the base URL for links."""

    title: str = "Daily Papers"
    base_url: str | None = None
    source_url: str = "https://huggingface.co/papers"
    topic_feeds: tuple[str, ...] = ()  # topic lists to write feeds for: `reasoning`, `diffusion, video`

    def link(self, path: str, relative_to: str = "") -> str:
        """An absolute link under the base URL, else a path relative to the output file."""
        if self.base_url:
            return f"{self.base_url.rstrip('/')}/{path}"
        depth = relative_to.count("/")
        return "../" * depth + path


@dataclass(frozen=True)
class EmailBody:
    """The email body in both forms, and how many papers it shows as cards."""

    html: str
    text: str
    shown: int
    total: int
    first_title: str = ""  # for the subject line


def long_date(info: DigestInfo) -> str:
    """`Mar 13, 2026`"""
    moment = info.captured_at
    return f"{MONTH_NAMES[moment.month - 1]} {moment.day}, {moment.year}"
