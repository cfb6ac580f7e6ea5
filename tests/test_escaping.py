"""Untrusted text survives every reader as written (issue 8 item 6): Markdown in both
Python-Markdown and CommonMark, RSS descriptions in readers that do not sanitise."""

from __future__ import annotations

import html
import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path

import markdown
import pytest
from conftest import EXAMPLES, SHARED_SNAPSHOTS
from hypothesis import example, given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from digest.models import Paper, StoredPaper
from digest.publish.feeds import build_feeds
from digest.publish.site import Site
from digest.sources.files import read_snapshot
from digest.text import _MD_SPECIAL, md_escape, md_escape_block, md_translate, printable

NOW = datetime(2027, 1, 1, tzinfo=UTC)
_COMMONMARK = MarkdownIt("commonmark")
_TAG = re.compile(r"<[^>]+>")
HOSTILE = [
    "1.4 Million Open-Source Distilled Reasoning Dataset",
    "Q&A for LLMs: Q\\&A, &amp; and &#65;",
    "2) second, - dash, + plus, # hash, = equals",
    "= leading equals", "- leading dash", "# leading hash", "> quoted",
    "*stars* _under_ `code` ~~strike~~ [link](javascript:x) ![img](x) <b>tag</b> <and>",
    "back\\slash \\* \\[ a\\_b $\\cdot$ $^*$ {braces} (parens)!",
    "html <img src=x onerror=alert(1)> & entity &lt;",
]


def _captured_titles() -> list[str]:
    folders = [EXAMPLES] + ([SHARED_SNAPSHOTS] if SHARED_SNAPSHOTS.is_dir() else [])
    return [paper.title for folder in folders for path in sorted(Path(folder).glob("*.txt"))
            for paper in (n.paper for n in read_snapshot(path, None, NOW).listings)]


def _text(rendered: str) -> str:
    return html.unescape(_TAG.sub("", rendered)).strip()


@pytest.mark.parametrize("render", [markdown.markdown, _COMMONMARK.render],
                         ids=["python-markdown", "commonmark"])
def test_markdown_renders_back_to_the_text(render: object) -> None:
    assert callable(render)
    titles = _captured_titles()
    assert len(titles) >= 30 if SHARED_SNAPSHOTS.is_dir() else titles
    for title in [*titles, *HOSTILE]:
        assert _text(render(md_escape(title))) == title, title
        assert _text(render(f"## 3\\. {md_escape(title)}")) == f"3. {title}", title
        assert _text(render(md_escape_block(title))) == title, title
        out = render(md_escape(title))
        assert "<img" not in out and "<b>" not in out and "<a " not in out and "<code" not in out


def test_rss_description_is_html_text() -> None:
    hostile = "We show <img src=x onerror=alert(1)> & more."
    stored = StoredPaper(key="title:x", paper=Paper(title="<b>T</b>", abstract=hostile),
                         first_seen=NOW, digest="2026-03-13", position=1)
    rss, atom = build_feeds(Site(base_url="https://d.example"), [stored])
    description = ET.fromstring(rss).find("channel/item/description")
    assert description is not None and description.text is not None
    # What a reader gets after XML parsing is HTML; as HTML it is the abstract as text.
    assert "<img" not in description.text
    abstract = description.text.split("</p>")[0]  # then the labelled links
    assert html.unescape(_TAG.sub("", abstract)) == hostile
    summary = ET.fromstring(atom).find("{http://www.w3.org/2005/Atom}entry/{http://www.w3.org/2005/Atom}summary")
    assert summary is not None and summary.get("type") == "html" and "<img" not in (summary.text or "")


def test_feed_abstracts_link_their_urls_and_keep_their_text() -> None:
    """Python-Markdown renders the abstract as the Markdown digest writes it: its URLs become
    links, and everything else (markup, emphasis marks, entities) stays the text it was."""
    abstract = "Code at https://github.com/ex/repo. We use <b>x</b>, *stars*, a_b and &amp;."
    stored = StoredPaper(key="title:x", paper=Paper(title="T", abstract=abstract),
                         first_seen=NOW, digest="2026-03-13", position=1)
    rss, _ = build_feeds(Site(base_url="https://d.example"), [stored])
    description = ET.fromstring(rss).find("channel/item/description")
    assert description is not None and description.text is not None
    first = description.text.split("</p>")[0]
    assert '<a href="https://github.com/ex/repo">https://github.com/ex/repo</a>' in first
    assert "<b>" not in first and "<em>" not in first
    assert html.unescape(_TAG.sub("", first)) == abstract


@settings(max_examples=1000, deadline=None)
@given(st.text(st.sampled_from([*"ab \\`*_[]>&<~#;=1.-+()é³", "\t", "\n", "\r", "\x00", "\x0b",
                                "\x0c", "\x1f", "\x7f", "\x85", "\u00a0", "\u2028", "\u2029"])))
@example("a\\*b & <c> ~d~ [e](f) `g` _h_")
def test_markdown_escaping_by_replace_is_translate_byte_for_byte(text: str) -> None:
    """Issue 12: the replace passes for printable text escape exactly as the translate table
    (a backslash or `&` first: the other escapes add them)."""
    assert md_translate(text) == text.translate(_MD_SPECIAL)


@settings(max_examples=1000, deadline=None)
@given(st.one_of(st.text(), st.text(st.characters(max_codepoint=0x7F)),
                 st.text(st.sampled_from([*"a \t\n", *map(chr, range(0x20)), "\x7f", "\x80", "é"]))))
def test_printable_is_isprintable(text: str) -> None:
    """The ASCII shortcut of `printable` answers as `str.isprintable` for every text."""
    assert printable(text) is text.isprintable()


@pytest.mark.parametrize(("line", "escaped"), [
    ("٣. Arabic-Indic three", "٣\\. Arabic-Indic three"), ("१) Devanagari one", "१\\) Devanagari one"),
    ("12) twelve", "12\\) twelve"), ("- dash", "\\- dash"), ("= eq", "&#61; eq"),
    ("³. superscript", "³. superscript"), ("a. letter", "a. letter"), ("", ""),
])
def test_a_line_start_is_escaped_before_any_decimal_digit(line: str, escaped: str) -> None:
    """What \\d matches (any Unicode decimal digit, not only 0-9) starts a list item."""
    assert md_escape(line) == escaped
