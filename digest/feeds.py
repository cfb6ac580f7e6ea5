"""RSS 2.0 and Atom feeds of newly seen papers, built with feedgen. Pure and byte-stable.

feedgen stamps `now()` into `updated`/`lastBuildDate` and prepends entries by default;
here every time comes from the data (the feed is as new as its newest entry) and entries
are appended in the order given, so rebuilding an unchanged store gives identical bytes.
"""

from __future__ import annotations

import html
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from feedgen.feed import FeedGenerator

from digest import __version__
from digest.models import StoredPaper
from digest.render import Site, paper_view
from digest.text import clean

FEED_SIZE = 200
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://pypi.org/project/paper-digest/")


def paper_guid(key: str) -> str:
    """A globally unique id for a paper that never changes: a UUID derived from its key."""
    return f"urn:uuid:{uuid.uuid5(_ID_NAMESPACE, key)}"


def build_feeds(site: Site, papers: Sequence[StoredPaper]) -> tuple[bytes, bytes]:
    """Return (RSS 2.0, Atom) documents for `papers`, newest first as given."""
    rss = _generator(site, papers, "feed.xml").rss_str(pretty=True)
    atom = _generator(site, papers, "atom.xml").atom_str(pretty=True)
    return rss, atom


def _generator(site: Site, papers: Sequence[StoredPaper], self_path: str) -> FeedGenerator:
    feed = FeedGenerator()
    feed.id(site.link("atom.xml") if site.base_url else paper_guid("feed:" + site.title))
    feed.title(clean(site.title))
    feed.description(f"Research papers new on {site.source_url}, as paper-digest first saw them.")
    feed.link(href=site.base_url or site.source_url, rel="alternate")
    if site.base_url:  # each document names itself, so readers can follow a move
        feed.link(href=site.link(self_path), rel="self")
    feed.language("en")
    feed.generator("paper-digest", __version__, "https://pypi.org/project/paper-digest/")
    newest = max((p.first_seen for p in papers), default=_EPOCH)
    feed.updated(newest)
    feed.lastBuildDate(newest)
    for stored in papers:
        view = paper_view(stored)
        entry = feed.add_entry(order="append")
        entry.id(paper_guid(stored.key))
        entry.title(view.title or "(untitled)")
        # Always absolute, also without a base URL: the paper's page, else its title search.
        entry.link(href=view.url, rel="alternate")
        # RSS readers take <description> as HTML: the abstract goes in as HTML text (an
        # `<img onerror>` in an abstract shows as text), escaped once more by the XML itself.
        entry.summary(html.escape(view.abstract, quote=False), type="html")
        entry.published(stored.first_seen)
        entry.updated(stored.first_seen)
    return feed
