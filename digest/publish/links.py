"""Where a paper's title and links lead. Pure: (paper) -> links.

The title leads to the paper itself (its page on the source, else its arXiv page) or, with no
id, to an arXiv title search that the reader can see is a search: never to the first URL of the
abstract, which is usually code or a dataset. The abstract's URLs become labelled links.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple
from urllib.parse import urlsplit

from digest.models import Paper
from digest.text import is_safe_url

ARXIV = "https://arxiv.org"
HF_PAPERS = "https://huggingface.co/papers"
_CODE_HOSTS = ("github.com", "gitlab.com", "bitbucket.org", "codeberg.org", "sourceforge.net")
_DEMO_HOSTS = (".hf.space", "gradio.live", "colab.research.google.com", "replicate.com")
# An http(s) URL whose host is lower-case letters, digits, dots and hyphens, ending where its
# path, query or fragment starts: that is the host urlsplit finds (no user, port, brackets, or
# whitespace that urlsplit would drop); `_BY_PATH` hosts are labelled by their path too.
_PLAIN_HOST = re.compile(r"https?://([a-z0-9.-]+)(?=[/?#]|\Z)")
_BY_PATH = frozenset({"huggingface.co", "www.huggingface.co"})
# What `urllib.parse.quote_plus` leaves as is (a space becomes `+`).
_QUOTED = re.compile(r"[^A-Za-z0-9_.~ -]+")


class Link(NamedTuple):
    """A link shown beside a paper: `Code`, `PDF`, … and where it goes (a named tuple, as
    `PaperView`)."""

    label: str
    url: str


@dataclass(frozen=True, slots=True)
class TitleLink:
    """Where the title points; `search` tells the reader it is a title search, not the paper."""

    url: str
    search: bool = False


def arxiv_abs(arxiv_id: str) -> str:
    return f"{ARXIV}/abs/{arxiv_id}"


def title_search(title: str) -> str:
    """An arXiv search for the exact title: the honest target for a paper with no id."""
    return f"{ARXIV}/search/?query={quote_plus(title)}&searchtype=title"


def quote_plus(text: str) -> str:
    """`urllib.parse.quote_plus(text)`, byte for byte, in a regex pass: the stdlib quotes
    byte by byte in Python, 40% of preparing a day of papers for the templates."""
    return _QUOTED.sub(_percent, text).replace(" ", "+")


def _percent(run: re.Match[str]) -> str:
    return _percent_encoded(run.group())


@lru_cache(maxsize=4096)
def _percent_encoded(run: str) -> str:
    """`: ` and the like recur in most titles: each run is encoded once."""
    return "".join(f"%{byte:02X}" for byte in run.encode())


def title_link(paper: Paper, title: str | None = None) -> TitleLink:
    """The paper's own page, else its HF page (by arXiv id), else a title search for `title`."""
    if paper.page_url and is_safe_url(paper.page_url):
        return TitleLink(paper.page_url)
    if paper.arxiv_id:
        return TitleLink(f"{HF_PAPERS}/{paper.arxiv_id}")
    return TitleLink(title_search(title or paper.title), search=True)


def paper_links(paper: Paper, title_url: str | None = None) -> tuple[Link, ...]:
    """`arXiv` (or `HF` when the title leads to arXiv) and `PDF` when the id is known, then the
    abstract's URLs labelled by what they are, each URL once and none the title points to
    (`title_url`, when the caller has it already)."""
    if not paper.arxiv_id and not paper.links:
        return ()  # most papers of a feed without ids
    links: list[Link] = []
    title_url = title_url or title_link(paper).url
    if paper.arxiv_id:
        # The title already leads to arXiv (an arXiv feed): the HF page is the other place.
        first = (Link("HF", f"{HF_PAPERS}/{paper.arxiv_id}") if title_url.startswith(f"{ARXIV}/abs/")
                 else Link("arXiv", arxiv_abs(paper.arxiv_id)))
        links += [first, Link("PDF", f"{ARXIV}/pdf/{paper.arxiv_id}")]
    seen = {title_url, *(link.url for link in links)}
    for url in paper.links:
        if is_safe_url(url) and url.rstrip("/") not in {u.rstrip("/") for u in seen}:
            seen.add(url)
            links.append(Link(link_label(url), url))
    return tuple(links)


def link_label(url: str) -> str:
    """`Code`, `Dataset`, `Model`, `Demo`, `Paper` or `Project page`, by host and path."""
    plain = _PLAIN_HOST.match(url)
    if plain is not None and plain[1] not in _BY_PATH:  # the host alone tells, urlsplit unneeded
        return _host_label(plain[1].removeprefix("www."))
    parts = urlsplit(url)
    host = (parts.hostname or "").removeprefix("www.")
    path = [p for p in parts.path.split("/") if p]
    if host == "huggingface.co":
        kind = path[0] if path else ""
        if kind == "datasets":
            return "Dataset"
        if kind == "spaces":
            return "Demo"
        if kind == "papers":
            return "Paper"
        return "Model" if len(path) == 2 else "Project page"
    return _host_label(host)


def _host_label(host: str) -> str:
    """The label of a URL on `host` (lower case, no `www.`), other than huggingface.co."""
    if host in _CODE_HOSTS:
        return "Code"
    if host.endswith(_DEMO_HOSTS) or host in {h.lstrip(".") for h in _DEMO_HOSTS}:
        return "Demo"
    if host in {"kaggle.com", "zenodo.org"} or re.search(r"(^|\.)dataset", host):
        return "Dataset"
    if host in {"arxiv.org", "doi.org", "openreview.net", "aclanthology.org"}:
        return "Paper"
    return "Project page"
