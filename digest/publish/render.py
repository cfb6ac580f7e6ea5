"""Render digests, the archive page and the email body from stored data. Pure: (data) -> text.

Templates live in the top-level `templates/` folder (shipped inside the wheel as
`digest/templates`); a user folder, when given, is searched first, so overriding one
template keeps the others.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator, Sequence
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, NamedTuple

import css_inline
from jinja2 import (
    ChoiceLoader,
    Environment,
    FileSystemLoader,
    StrictUndefined,
    select_autoescape,
)

from digest import __version__
from digest.capture import MONTH_NAMES
from digest.models import DigestInfo, StoredPaper
from digest.publish.latex import tex_to_unicode
from digest.publish.links import Link, paper_links, title_link
from digest.publish.site import EmailBody, Site, long_date
from digest.publish.templating import lighten
from digest.text import (
    linkify,
    mark,
    md_escape,
    md_escape_block,
    one_line,
    plural,
    reflow_html,
    shorten,
    star,
    teaser,
    wrap,
)

# Gmail clips messages over 102 KB; keep the body well under that so the per-subscriber
# parts added at delivery (greeting, unsubscribe footer, MIME headers) still fit.
EMAIL_BUDGET = 90_000
# Email cards show the abstract's first two sentences, cut to this many characters.
EMAIL_SHORT_ABSTRACT = 300


class PaperView(NamedTuple):
    """A paper made ready for templates: cleaned text, display strings, safe links only.

    A named tuple, not a dataclass: a digest makes one per paper, and a tuple is made in one
    C call (a frozen dataclass sets each field through `object.__setattr__`, a third of the
    cost of a view), and of strings only (no links) it is not tracked by the garbage collector.
    """

    position: int
    title: str  # TeX math and escapes turned into Unicode (`MedS³`): what HTML, email and feeds show
    abstract: str
    url: str  # the paper's page, else a title search (`url_is_search`): every title leads somewhere
    links: tuple[Link, ...]  # `arXiv`, `PDF`, then the abstract's links by kind (`Code`, `Dataset`…)
    meta: str  # `Oct 31, 2024 · Microsoft · 4 comments`: only what is known
    key: str
    source: str = ""  # the source that listed it (a digest of several sources groups by it)
    # As captured, `$…$` math kept: the Markdown digest's readers (GitHub) render it themselves.
    title_tex: str = ""
    abstract_tex: str = ""
    url_is_search: bool = False
    authors: str = ""  # `Ada Lovelace, Alan Turing, Grace Hopper +4`


def paper_view(stored: StoredPaper) -> PaperView:
    """Build the template view of a stored paper."""
    paper = stored.paper
    meta = []
    if paper.published:
        day = paper.published
        meta.append(f"{MONTH_NAMES[day.month - 1]} {day.day}, {day.year}")
    if paper.org_name:
        meta.append(one_line(paper.org_name))
    elif paper.author_count and not paper.authors:
        meta.append(plural(paper.author_count, "author"))
    if stored.comments:
        meta.append(plural(stored.comments, "comment"))
    if stored.upvotes is not None:
        meta.append(plural(stored.upvotes, "upvote"))
    title, abstract = one_line(paper.title), one_line(paper.abstract)
    target = title_link(paper, title)
    return PaperView(
        position=stored.position, title=tex_to_unicode(title), abstract=tex_to_unicode(abstract),
        url=target.url, url_is_search=target.search, links=paper_links(paper, target.url),
        meta=" · ".join(meta), key=stored.key, source=stored.source,
        title_tex=title, abstract_tex=abstract, authors=author_line(paper.authors),
    )


AUTHORS_SHOWN = 3


def author_line(authors: Sequence[str], shown: int = AUTHORS_SHOWN) -> str:
    """The first `shown` names, then `+N` for the rest."""
    names = [one_line(a) for a in authors if a.strip()]
    line = ", ".join(names[:shown])
    return f"{line} +{len(names) - shown}" if len(names) > shown else line


def default_templates() -> Path:
    """The bundled templates: inside the installed package, else the checkout's `templates/`."""
    packaged = resources.files("digest") / "templates"
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parents[2] / "templates"


@lru_cache(maxsize=8)
def environment(user_templates: str | None = None) -> Environment:
    """A Jinja2 environment: autoescape for HTML/XML names, strict about undefined names."""
    loaders = [FileSystemLoader(str(default_templates()))]
    if user_templates:
        loaders.insert(0, FileSystemLoader(user_templates))
    env = Environment(
        loader=ChoiceLoader(loaders),
        # Markdown and plain-text templates are not HTML; everything else is escaped.
        autoescape=select_autoescape(
            enabled_extensions=("html", "xml"), disabled_extensions=("md", "txt"), default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=False,  # a digest includes a partial per paper: no stat() per include
    )
    lighten(env)
    env.filters.update(linkify=linkify, mark=mark, star=star, md=md_escape, md_block=md_escape_block,
                       shorten=shorten, wrap=wrap, one_line=one_line, teaser=teaser)
    env.globals["version"] = __version__
    return env


def _context(site: Site, info: DigestInfo, papers: Sequence[PaperView], here: str,
             **extra: Any) -> dict[str, Any]:
    return {
        "site": site,
        "digest": info,
        "date": long_date(info),
        "papers": papers,
        "grouped": len({p.source for p in papers}) > 1,  # headings per source
        "total": info.paper_count,
        "web_url": site.link(f"digests/{info.name}.html", here),
        "feed_url": site.link("feed.xml", here),
        "atom_url": site.link("atom.xml", here),
        "index_url": site.link("index.html", here),
        **extra,
    }


def render_markdown(site: Site, info: DigestInfo, views: Sequence[PaperView],
                    templates: str | None = None) -> Iterator[str]:
    """The digest as Markdown, streamed (a backfill day may hold tens of thousands of papers)."""
    return environment(templates).get_template("digest.md").generate(
        _context(site, info, views, f"digests/{info.name}.md"))


def render_page(site: Site, info: DigestInfo, views: Sequence[PaperView],
                templates: str | None = None, history_base: str | None = None, *,
                older: str | None = None, newer: str | None = None,
                subscribe_url: str | None = None) -> Iterator[str]:
    """The digest as a web page (every new paper, full abstracts), streamed. The web app
    passes `history_base` to link each paper to its history page, the neighbouring digests'
    addresses and its subscribe form's."""
    return environment(templates).get_template("digest.html").generate(
        _context(site, info, views, f"digests/{info.name}.html", history_base=history_base,
                 older=older, newer=newer, subscribe_url=subscribe_url))


def render_index(site: Site, digests: Sequence[DigestInfo], templates: str | None = None) -> str:
    """The archive page: every digest, newest first, with counts."""
    return environment(templates).get_template("index.html").render(
        site=site, digests=digests, long_date=long_date,
        feed_url=site.link("feed.xml", "index.html"), atom_url=site.link("atom.xml", "index.html"),
    )


def render_email(site: Site, info: DigestInfo, views: Sequence[PaperView],
                 templates: str | None = None, budget: int = EMAIL_BUDGET, *,
                 topics: Sequence[str] = (), highlight: re.Pattern[str] | None = None,
                 unsubscribe_url: str | None = None,
                 preferences_url: str | None = None,
                 others: Sequence[PaperView] = ()) -> EmailBody:
    """The email body (HTML with inlined CSS, and plain text), kept under `budget` bytes.

    It opens with the numbered list of every title, then a card per paper: authors, links and
    the abstract's first two sentences, "more" leading to the full card on the web copy. A day
    too big for the budget keeps every title in the list and shows as many cards as fit.
    `views` may be a subscriber's selection (`topics`), numbered as shown, each with the words
    that matched (`highlight`); `unsubscribe_url` adds the footer link (the archive copy has none).
    `others` (a topic subscriber's setting) are the day's other new papers: after the cards, a
    titles-only list of as many as fit in what the budget leaves, each linking to the web copy.
    """
    env = environment(templates)
    here = f"digests/{info.name}.email.html"
    matched_by = {v.key: hit.group(0) for v in views
                  if highlight and (hit := highlight.search(v.title) or highlight.search(v.abstract))}

    def build(count: int, listed: int | None = None, also: int = 0) -> EmailBody:
        ctx = _context(site, info, views[:count], here, contents=views[:listed],
                       more=len(views) - count, matched=len(views), matched_by=matched_by,
                       teaser_limit=EMAIL_SHORT_ABSTRACT, topics=tuple(topics), highlight=highlight,
                       unsubscribe_url=unsubscribe_url, preferences_url=preferences_url,
                       others=others[:also], others_total=len(others))
        html = reflow_html(_inline(env.get_template("email.html").render(ctx)))
        text = env.get_template("email.txt").render(ctx)
        return EmailBody(html=html, text=text, shown=count, total=len(views),
                         first_title=views[0].title if views else "")

    # Every title in the list, and as many cards as fit; on a day so big that the list alone
    # is too long (thousands of papers), as much of the list as fits and no cards. The searches
    # gallop up from small bodies, so no body rendered is much bigger than the one sent.
    built: dict[tuple[int, int], EmailBody] = {}

    def size(count: int, listed: int) -> int:
        built[count, listed] = body = build(count, listed)
        return _size(body)

    # A like search answered before (the archive copy, then the subscribers' body with its
    # footer, of the same day) is where the answer is likely: start there.
    seen = (info.name, len(views), budget)
    near = _ANSWERS.get(seen, (None, None))
    listed = most_that_fit(len(views), lambda n: size(0, n), budget, near[0])
    if listed < len(views):
        _remember(seen, (listed, None))
        return built.get((0, listed)) or build(0, listed)
    cards = most_that_fit(len(views), lambda n: size(n, len(views)), budget, near[1])
    _remember(seen, (listed, cards))
    body = built.get((cards, len(views))) or build(cards, len(views))
    if not others:
        return body
    # The matched papers come first: the others' titles get only what the budget leaves.
    extra: dict[int, EmailBody] = {0: body}

    def size_also(n: int) -> int:
        extra[n] = build(cards, len(views), n)
        return _size(extra[n])

    also = most_that_fit(len(others), size_also, budget)
    return extra.get(also) or build(cards, len(views), also)


# Answers of recent email size searches, by (digest, papers, budget): only where the next
# like search starts probing, never what it returns (see most_that_fit's `near`).
_ANSWERS: dict[tuple[str, int, int], tuple[int | None, int | None]] = {}


def _remember(key: tuple[str, int, int], answer: tuple[int | None, int | None]) -> None:
    if len(_ANSWERS) >= 64:
        _ANSWERS.clear()
    _ANSWERS[key] = answer


def most_that_fit(high: int, size: Callable[[int], int], budget: int,
                  near: int | None = None) -> int:
    """The largest n in [0, high] with `size(n) <= budget` (size grows with n; 0 fits).

    An email grows by about the same bytes per card or title, so after two renders each
    probe goes where the line through the last two sizes meets the budget (a 2,000-title
    day: 6 renders, where galloping and bisecting took 18). From `near` (the answer of a
    like search) it first tries the neighbour: a body one footer bigger or smaller takes
    two renders. What keeps it safe: every probe stays inside the bracket known so far;
    until one is too big, none goes past 8 times a count known to fit (plus 16), so a
    50,000-paper day never renders thousands of cards to learn that a hundred fit; after
    10 probes it bisects, so sizes far from any line still take O(log high) renders. The
    answer is the same from any start.
    """
    low, top = 0, high + 1  # size(low) fits (0 by contract); size(top) does not, or top > high
    guided = near is not None and 0 < near <= high
    probe = near if near is not None and guided else min(high, 16)
    last: list[tuple[int, int]] = []  # the two latest (n, size)
    if high == 0:
        return 0
    for tries in itertools.count(1):
        measured = size(probe)
        last = [*last[-1:], (probe, measured)]
        if measured <= budget:
            low = probe
        else:
            top = probe
        if top - low <= 1:
            return low
        guess = _where_the_line_meets(last, budget) if tries < 10 else None
        if guess is None:
            if tries == 1 and guided:
                guess = low + 1 if low == probe else top - 1
            else:
                guess = 8 * low + 16 if top > high else (low + top) // 2
        if top > high:
            guess = min(guess, 8 * low + 16)
        probe = max(low + 1, min(top - 1, guess))
    raise AssertionError("unreachable")  # pragma: no cover -- the bracket shrinks every probe


def _where_the_line_meets(last: Sequence[tuple[int, int]], budget: int) -> int | None:
    """The largest n under the budget on the line through two (n, size) points; None when
    there are not two, or they do not rise."""
    if len(last) < 2:
        return None
    (n1, s1), (n2, s2) = last
    if (n2 - n1) * (s2 - s1) <= 0:
        return None
    return n1 + (budget - s1) * (n2 - n1) // (s2 - s1)


def _size(body: EmailBody) -> int:
    """The bytes the budget holds down: the larger of the two parts."""
    return max(len(body.html.encode()), len(body.text.encode()))


_INLINER = css_inline.CSSInliner(load_remote_stylesheets=False)


def _inline(html: str) -> str:
    return str(_INLINER.inline(html))
