"""Every paper has a link that leads to the paper, or to a search that says it is one (issue 11 §1)."""

from __future__ import annotations

import re
import urllib.parse
from datetime import UTC, datetime

import pytest
from conftest import SHARED_SNAPSHOTS
from hypothesis import example, given, settings
from hypothesis import strategies as st

from digest.models import DigestInfo, Paper, StoredPaper
from digest.publish.links import Link, link_label, paper_links, quote_plus, title_link
from digest.publish.render import paper_view, render_page
from digest.publish.site import Site
from digest.sources.files import read_snapshot
from digest.text import URL, clean, one_line, split_urls, trim_url

NOW = datetime(2027, 1, 1, tzinfo=UTC)


def test_an_arxiv_id_gives_the_hf_page_and_arxiv_and_pdf_links() -> None:
    paper = Paper(title="T", abstract="Code: https://github.com/a/b.", arxiv_id="2501.01234",
                  links=("https://github.com/a/b", "https://huggingface.co/papers/2501.01234"))
    assert title_link(paper).url == "https://huggingface.co/papers/2501.01234"
    assert not title_link(paper).search
    assert paper_links(paper) == (Link("arXiv", "https://arxiv.org/abs/2501.01234"),
                                  Link("PDF", "https://arxiv.org/pdf/2501.01234"),
                                  Link("Code", "https://github.com/a/b"))  # the HF page once, as the title


def test_an_arxiv_source_links_its_abs_page() -> None:
    paper = Paper(title="T", abstract="", arxiv_id="2501.01234",
                  page_url="https://arxiv.org/abs/2501.01234v2")
    assert title_link(paper).url == "https://arxiv.org/abs/2501.01234v2"
    assert [link.label for link in paper_links(paper)] == ["HF", "PDF"]


def test_no_id_links_a_labelled_title_search_never_the_first_abstract_url() -> None:
    paper = Paper(title="Fast & Slow: R$^2$", abstract="See https://github.com/x/y",
                  links=("https://github.com/x/y",))
    target = title_link(paper)
    assert target.search
    assert target.url == ("https://arxiv.org/search/?query=Fast+%26+Slow%3A+R%24%5E2%24"
                          "&searchtype=title")
    assert paper_links(paper) == (Link("Code", "https://github.com/x/y"),)
    stored = StoredPaper(key=paper.key, paper=paper, first_seen=NOW, digest="2026-03-13", position=1)
    view = paper_view(stored)
    page = "".join(render_page(Site(), DigestInfo("2026-03-13", NOW, 1), [view]))
    assert "(arXiv search)</span>" in page and 'href="https://github.com/x/y">Code</a>' in page


@pytest.mark.parametrize(("url", "label"), [
    ("https://github.com/org/repo", "Code"),
    ("https://gitlab.com/org/repo", "Code"),
    ("https://huggingface.co/datasets/org/data", "Dataset"),
    ("https://huggingface.co/org/model-7b", "Model"),
    ("https://huggingface.co/spaces/org/demo", "Demo"),
    ("https://org-demo.hf.space", "Demo"),
    ("https://arxiv.org/abs/2501.00001", "Paper"),
    ("https://org.github.io/project", "Project page"),
    ("https://example.org", "Project page"),
])
def test_labels(url: str, label: str) -> None:
    assert link_label(url) == label


def test_links_are_never_duplicated() -> None:
    paper = Paper(title="T", abstract="",
                  links=("https://github.com/a/b", "https://github.com/a/b/", "javascript:alert(1)"))
    assert paper_links(paper) == (Link("Code", "https://github.com/a/b"),)


@pytest.mark.skipif(not SHARED_SNAPSHOTS.is_dir(), reason="../shared/snapshots not present")
def test_every_title_of_the_real_captures_leads_somewhere() -> None:
    """Report: the share of papers whose title links to the paper or to a labelled search."""
    papers = [p for path in sorted(SHARED_SNAPSHOTS.glob("*.txt"))
              for p in (n.paper for n in read_snapshot(path, None, NOW).listings)]
    views = [paper_view(StoredPaper(key=p.key, paper=p, first_seen=NOW, digest=None)) for p in papers]
    linked = [v for v in views if v.url.startswith("https://") and (v.url_is_search or "arxiv" in v.url
                                                                    or "huggingface.co/papers" in v.url)]
    assert len(papers) > 0 and len(linked) == len(papers)


@settings(max_examples=500, deadline=None)
@given(st.text(st.characters(blacklist_categories=("Cs",))))
def test_title_search_quotes_exactly_as_quote_plus(title: str) -> None:
    """Issue 12: the regex quoting is urllib's quote_plus byte for byte (`: `, `%`, `+`, UTF-8)."""
    assert quote_plus(title) == urllib.parse.quote_plus(title)


@settings(max_examples=500, deadline=None)
@given(st.text(st.sampled_from([*"ab .-~:%+/&é³", "\t", "\n", "\r", "\x00", "\x0b", "\x1c", "\x7f",
                                "\x85", "\u00a0", "\u2028", "\u2029", "\u200b", "\ufffe"])))
@example("a  b")
@example(" a")
@example("a ")
@example("a\u00a0 b")
@example("a\x00b")
@example("a\x1cb")
def test_one_line_and_clean_keep_their_meaning_on_the_fast_path(text: str) -> None:
    """Issue 12: the printable-text shortcut gives what the full rules give."""
    cleaned = re.sub("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffe\uffff]", "", text)
    assert clean(text) == cleaned
    breaks = ("\n", "\r", "  ", "\t", "\x85", "\u2028", "\u2029")
    if any(mark in cleaned for mark in breaks) or cleaned[:1].isspace() or cleaned[-1:].isspace():
        assert one_line(text) == " ".join(cleaned.split())
    else:
        assert one_line(text) == cleaned


def _label_by_urlsplit(url: str) -> str:
    """link_label as it was before its shortcut for plain hosts: urlsplit for every URL."""
    parts = urllib.parse.urlsplit(url)
    host = (parts.hostname or "").removeprefix("www.")
    path = [p for p in parts.path.split("/") if p]
    if host in ("github.com", "gitlab.com", "bitbucket.org", "codeberg.org", "sourceforge.net"):
        return "Code"
    demo = (".hf.space", "gradio.live", "colab.research.google.com", "replicate.com")
    if host.endswith(demo) or host in {h.lstrip(".") for h in demo}:
        return "Demo"
    if host == "huggingface.co":
        kind = path[0] if path else ""
        labels = {"datasets": "Dataset", "spaces": "Demo", "papers": "Paper"}
        return labels.get(kind) or ("Model" if len(path) == 2 else "Project page")
    if host in {"kaggle.com", "zenodo.org"} or re.search(r"(^|\.)dataset", host):
        return "Dataset"
    if host in {"arxiv.org", "doi.org", "openreview.net", "aclanthology.org"}:
        return "Paper"
    return "Project page"


_HOSTS = ["github.com", "www.github.com", "GitHub.com", "gitlab.com", "x.hf.space", "hf.space",
          "gradio.live", "huggingface.co", "www.huggingface.co", "HuggingFace.co", "kaggle.com",
          "my-dataset.org", "a.datasets.io", "arxiv.org", "doi.org", "example.org", "github.com.",
          "user@github.com", "github.com:443", "[::1]", "git\thub.com", "huggingface.co:80"]


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(["http://", "https://", "HTTPS://", "https:/", " https://"]),
       st.one_of(st.sampled_from(_HOSTS), st.text(st.sampled_from("ab.-:@[]\t\nAZ09/"), max_size=12)),
       st.text(st.sampled_from("/abcd?#.=\t"), max_size=15))
@example("https://", "huggingface.co", "/datasets/x")
@example("https://", "github.com", "")
def test_a_plain_host_is_labelled_as_urlsplit_labels_it(scheme: str, host: str, rest: str) -> None:
    url = scheme + host + rest
    try:
        expected = _label_by_urlsplit(url)
    except ValueError:  # urlsplit refuses it (a bracket): so does link_label
        with pytest.raises(ValueError):
            link_label(url)
        return
    assert link_label(url) == expected


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from([*"ab :/.,)(", "http", "https://", "://", "http://x.org", "s:"]))
       .map("".join))
def test_urls_are_split_out_as_the_url_pattern_finds_them(text: str) -> None:
    """split_urls' shortcut (no `:` or no `://`: no URL) never hides a URL the pattern finds."""
    urls = [trim_url(m.group(0)) for m in URL.finditer(text)]
    assert [piece for piece, is_url in split_urls(text) if is_url] == [u for u in urls if len(u) > 8]
    assert "".join(piece for piece, _ in split_urls(text)) == text
