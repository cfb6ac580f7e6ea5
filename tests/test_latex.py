"""TeX in titles and abstracts reads as Unicode text in HTML, email and feeds (issue 11 §2)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from digest.models import Paper, StoredPaper
from digest.publish.feeds import build_feeds
from digest.publish.latex import tex_to_unicode
from digest.publish.render import paper_view
from digest.publish.site import Site
from digest.topics import topic_pattern


@pytest.mark.parametrize(("tex", "text"), [
    ("MedS$^3$", "MedS³"),
    ("HyperZ$\\cdot$Z$\\cdot$W", "HyperZ⋅Z⋅W"),
    ("FaSTA$^*$", "FaSTA*"),
    ("R$^2$-Reasoner", "R²-Reasoner"),  # the hyphen outside math stays a hyphen
    ("Prefill \\& Decode", "Prefill & Decode"),
    ("97.2\\%", "97.2%"),
    ("$\\alpha$-$\\beta$", "α-β"),
    ("$\\mathcal{O}(n^2)$", "𝒪(n²)"),
    ("$x_{ij}$ and $n-1$", "xᵢⱼ and n−1"),
    # Left as written: no TeX, money, or math with no Unicode form (never dropped).
    ("Q&A <and>", "Q&A <and>"),
    ("costs $5 and $10 a day", "costs $5 and $10 a day"),
    ("$\\frac{a}{b}$ ratio", "$\\frac{a}{b}$ ratio"),
    ("$\\unknowncommand$ and $^2$", "$\\unknowncommand$ and ²"),
    ("a lone $ sign", "a lone $ sign"),
])
def test_tex_to_unicode(tex: str, text: str) -> None:
    assert tex_to_unicode(tex) == text


def _stored(title: str, abstract: str) -> StoredPaper:
    return StoredPaper(key="title:x", paper=Paper(title=title, abstract=abstract,
                                                    arxiv_id="2501.00001"),
                       first_seen=datetime(2026, 3, 13, tzinfo=UTC), digest="2026-03-13", position=1)


def test_views_convert_but_keep_the_tex_for_markdown() -> None:
    view = paper_view(_stored("MedS$^3$: Prefill \\& Decode", "We reach 97.2\\% with $\\alpha$-tuning."))
    assert view.title == "MedS³: Prefill & Decode"
    assert view.abstract == "We reach 97.2% with α-tuning."
    assert view.title_tex == "MedS$^3$: Prefill \\& Decode"


def test_topics_match_the_converted_text() -> None:
    view = paper_view(_stored("Scaling $\\alpha$-Reasoners", "Fine."))
    pattern = topic_pattern(("α-reasoners",))
    assert pattern is not None and pattern.search(view.title)


def test_feeds_carry_unicode() -> None:
    rss, atom = build_feeds(Site(base_url="https://d.example"), [_stored("MedS$^3$", "97.2\\% better")])
    for doc in (rss, atom):
        text = doc.decode()
        assert "MedS³" in text and "97.2% better" in text and "$^3$" not in text
