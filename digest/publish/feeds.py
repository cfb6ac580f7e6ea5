"""RSS 2.0 and Atom feeds of newly seen papers, built with feedgen. Pure and byte-stable.

feedgen stamps `now()` into `updated`/`lastBuildDate` and prepends entries by default;
here every time comes from the data (the feed is as new as its newest entry) and entries
are appended in the order given, so rebuilding an unchanged store gives identical bytes.
"""

from __future__ import annotations

import html
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import markdown
from feedgen.feed import FeedGenerator

from digest import __version__
from digest.models import StoredPaper
from digest.publish.render import PaperView, Site, paper_view
from digest.text import clean, md_escape_block
from digest.topics import parse_topics, topic_pattern

FEED_SIZE = 200
# Topic feeds pick their papers from this many times `feed_size` of the newest.
TOPIC_FEED_WINDOW = 10
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://pypi.org/project/paper-digest/")


def paper_guid(key: str) -> str:
    """A globally unique id for a paper that never changes: a UUID derived from its key."""
    return f"urn:uuid:{uuid.uuid5(_ID_NAMESPACE, key)}"


@dataclass(frozen=True)
class FeedPlace:
    """Where a pair of feeds lives: under the base URL (`feed.xml`, `topics/x.atom`), or at
    the URLs a request named (the web app knows them even without a base URL)."""

    rss_path: str = "feed.xml"
    atom_path: str = "atom.xml"
    title_suffix: str = ""
    rss_url: str | None = None
    atom_url: str | None = None


def build_feeds(site: Site, papers: Sequence[StoredPaper],
                place: FeedPlace = FeedPlace()) -> tuple[bytes, bytes]:
    """Return (RSS 2.0, Atom) documents for `papers`, newest first as given."""
    # Each entry's HTML description once for both documents: it runs Python-Markdown.
    views = [(stored, view, _description(view)) for stored in papers
             for view in (paper_view(stored),)]
    rss_self = place.rss_url or (site.link(place.rss_path) if site.base_url else None)
    atom_self = place.atom_url or (site.link(place.atom_path) if site.base_url else None)
    rss = _generator(site, views, place, rss_self, atom_self).rss_str(pretty=True)
    atom = _generator(site, views, place, atom_self, atom_self).atom_str(pretty=True)
    return rss, atom


def topic_slug(topics: Sequence[str]) -> str:
    """`reasoning, diffusion models` → `reasoning+diffusion-models`: a file name and URL path."""
    return "+".join(re.sub(r"[^\w]+", "-", t.casefold()).strip("-") for t in topics) or "all"


def topics_from_slug(slug: str) -> tuple[str, ...]:
    """The inverse of `topic_slug`: `reasoning+diffusion-models` → (reasoning, diffusion models)."""
    return parse_topics(",".join(part.replace("-", " ") for part in re.split(r"[+,]", slug)))


def matching(papers: Sequence[StoredPaper], topics: Sequence[str], limit: int) -> list[StoredPaper]:
    """The papers whose title or abstract mentions a topic (the email topics' rule), at most `limit`."""
    pattern = topic_pattern(tuple(topics))
    if pattern is None:
        return list(papers[:limit])
    found = []
    for stored in papers:
        view = paper_view(stored)
        if pattern.search(view.title) or pattern.search(view.abstract):
            found.append(stored)
            if len(found) == limit:
                break
    return found


_MARKDOWN = markdown.Markdown(output_format="html")


def _description(view: PaperView) -> str:
    """HTML for readers: the abstract as text (escaped), then the labelled links; an entry
    whose link is a title search says so there, as the web page and email do."""
    labelled = [(link.url, link.label) for link in view.links]
    if view.url_is_search:
        labelled.insert(0, (view.url, "arXiv search (no arXiv id known)"))
    links = " · ".join(f'<a href="{html.escape(url)}">{html.escape(label)}</a>'
                       for url, label in labelled)
    return _abstract_html(view.abstract) + (f"\n<p>{links}</p>" if links else "")


def _abstract_html(abstract: str) -> str:
    """The abstract as the Markdown digest writes it (every character escaped, its URLs as
    autolinks), rendered by Python-Markdown: text stays text (`<img onerror>` included), and
    the URLs become links a reader can follow."""
    _MARKDOWN.reset()
    return str(_MARKDOWN.convert(md_escape_block(abstract)))


def _generator(site: Site, views: Sequence[tuple[StoredPaper, PaperView, str]], place: FeedPlace,
               self_url: str | None, atom_url: str | None) -> FeedGenerator:
    feed = FeedGenerator()
    feed.load_extension("dc", atom=False, rss=True)
    feed.id(atom_url or paper_guid(f"feed:{site.title}{place.title_suffix}"))
    feed.title(clean(site.title + place.title_suffix))
    feed.description(f"Research papers new on {site.source_url}, as paper-digest first saw them.")
    feed.author({"name": clean(site.title)})  # RFC 4287: a feed-level author
    if self_url:  # each document names itself, so readers can follow a move
        feed.link(href=self_url, rel="self")
    # The site, not the feed: RSS readers open the channel <link> as the home page (feedgen
    # takes the last link given for it, so this comes after the self link).
    feed.link(href=site.link("") if site.base_url else site.source_url, rel="alternate")
    feed.language("en")
    feed.generator("paper-digest", __version__, "https://pypi.org/project/paper-digest/")
    newest = max((stored.first_seen for stored, _, _ in views), default=_EPOCH)
    feed.updated(newest)
    feed.lastBuildDate(newest)
    for stored, view, description in views:
        entry = feed.add_entry(order="append")
        entry.id(paper_guid(stored.key))
        entry.title(view.title or "(untitled)")
        # Always absolute, also without a base URL: the paper's page, else its title search.
        entry.link(href=view.url, rel="alternate")
        for name in stored.paper.authors:
            entry.author({"name": clean(name)})
            entry.dc.dc_creator(clean(name))
        if stored.source:
            entry.category(term=clean(stored.source))
        # RSS readers take <description> as HTML: the abstract goes in as HTML text (an
        # `<img onerror>` in an abstract shows as text), escaped once more by the XML itself.
        entry.summary(description, type="html")
        entry.published(stored.first_seen)
        entry.updated(stored.first_seen)
    return feed
