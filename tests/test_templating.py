"""The cheaper Jinja2 paths (digest.publish.templating) render what plain Jinja2 renders,
and a user's override templates still apply to every output."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import entry, page
from hypothesis import given
from hypothesis import strategies as st
from jinja2 import DictLoader, Environment, StrictUndefined, select_autoescape
from markupsafe import Markup, escape

from digest.config import Settings
from digest.pipeline import ingest, prepare
from digest.publish.templating import _escape_output, lighten
from digest.store import open_store
from digest.text import html_escape

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


class _Html:
    def __html__(self) -> str:
        return "<i>safe</i>"


@given(st.one_of(st.text(), st.integers(), st.booleans(), st.floats(), st.none(),
                 st.text().map(Markup), st.text().map(escape), st.just(_Html())))
def test_html_escape_is_markupsafe_escape(value: Any) -> None:
    escaped = html_escape(value)
    assert type(escaped) is Markup
    assert escaped == escape(value)


@given(st.one_of(st.text(), st.integers(), st.booleans(), st.floats(), st.none(),
                 st.text().map(Markup), st.just(_Html())))
def test_a_templates_output_escape_outputs_what_markupsafe_escape_does(value: Any) -> None:
    assert str(_escape_output(value)) == str(escape(value))


MACROS = """\
{% macro card(paper, base=None, titled=True) %}<{{ paper }}|{{ base }}|{{ titled }}>{% endmacro %}
{% macro plain() %}&{% endmacro %}
{% macro wrapped(x) %}[{{ caller(x) }}]{% endmacro %}
{% macro rest(a) %}{{ a }}{{ varargs }}{{ kwargs }}{% endmacro %}
{% macro raises(items) %}{{ items | first }}{% endmacro %}
"""
CALLS = {
    "positional": "{{ card('<p>') }}{{ card('<p>', '/b&') }}{{ card('<p>', '/b', False) }}",
    "keywords": "{{ card('<p>', titled=False) }}{{ card(paper='<p>', base='x') }}",
    "in a loop": "{% for p in ['<a>', 'b'] %}{{ card(p, loop.index) }}{{ plain() }}{% endfor %}",
    "caller": "{% call(y) wrapped('<x>') %}({{ y }}){% endcall %}",
    "varargs and kwargs": "{{ rest(1, 2, 3, k='<v>') }}{{ rest('<') }}",
    "no caller": "{{ wrapped(1) }}",
    "too many": "{{ card(1, 2, 3, 4) }}",
    "unknown keyword": "{{ card(1, nope=2) }}",
    "set block": "{% set x %}{{ card('<p>') }}{% endset %}{{ x }}{{ x | length }}",
    "as a value": "{{ card('<p>') | length }} {{ card('<p>') ~ '<' }}",
    "imported": "{% from 'macros' import card %}{{ card('<q>') }}",
    "module": "{% import 'macros' as m %}{{ m.card('<q>', '1') }}{{ m.plain() }}",
    "empty": "{{ raises([]) }}",
}


ERRORS = {"no caller": "UndefinedError", "too many": "TypeError", "unknown keyword": "TypeError",
          "empty": "UndefinedError"}


def _render(env: Environment, name: str) -> str:
    try:
        return env.get_template(name).render()
    except Exception as exc:  # the same error, with the same message
        return f"{type(exc).__name__}: {exc}"


@pytest.mark.parametrize("call", sorted(CALLS))
@pytest.mark.parametrize("suffix", [".html", ".txt"])
def test_macro_calls_render_as_plain_jinja_renders_them(call: str, suffix: str) -> None:
    """Autoescaped or not, every kind of macro call gives what Jinja2's own paths give,
    errors included."""
    sources = {"macros": MACROS, f"page{suffix}": MACROS + CALLS[call]}

    def make() -> Environment:
        return Environment(loader=DictLoader(sources), undefined=StrictUndefined,
                           autoescape=select_autoescape(enabled_extensions=("html",),
                                                        default=False))

    expected = _render(make(), f"page{suffix}")
    assert _render(lighten(make()), f"page{suffix}") == expected
    assert expected.startswith(ERRORS.get(call, "\n"))  # renders, or fails as it should


def _ingest_with(tmp_path: Path, custom: Path) -> Path:
    tmp_path.mkdir(exist_ok=True)
    store = open_store(f"sqlite:///{tmp_path / 'c.sqlite3'}")
    settings = Settings(db_url=store.url, out_dir=tmp_path / "out", templates=str(custom))
    path = tmp_path / "2026-03-13.txt"
    path.write_text(page(entry("A <b>bold</b> title", "See https://github.com/a/b for code."),
                         entry("Another title")))
    try:
        list(ingest(store, settings, prepare([path], None, NOW), NOW))
    finally:
        store.close()
    return settings.out_dir / "digests"


def test_a_users_paper_card_shapes_the_digest_page(tmp_path: Path) -> None:
    """An override of `_paper.html` alone is what the bundled digest.html calls per paper."""
    custom = tmp_path / "mytemplates"
    custom.mkdir()
    (custom / "_paper.html").write_text(
        "{% macro paper_card(paper, history_base=None, with_title=True) %}"
        "<div class=mine>{{ paper.position }}: {{ paper.title }}</div>{% endmacro %}\n"
        "{% macro title_link(paper, text) %}<b>{{ text }}</b>{% endmacro %}\n")
    digests = _ingest_with(tmp_path, custom)
    web = (digests / "2026-03-13.html").read_text()
    assert "<div class=mine>1: A &lt;b&gt;bold&lt;/b&gt; title</div>" in web
    assert "<div class=mine>2: Another title</div>" in web
    assert 'class="paper"' not in web  # the bundled card is not used
    assert "<b>A &lt;b&gt;bold&lt;/b&gt; title</b>" in (digests / "2026-03-13.email.html").read_text()


def test_a_users_digest_page_replaces_the_bundled_one(tmp_path: Path) -> None:
    custom = tmp_path / "mytemplates"
    custom.mkdir()
    (custom / "digest.html").write_text(
        "{% from '_paper.html' import paper_card %}{{ total }} papers\n"
        "{% for paper in papers %}{{ paper_card(paper, with_title=False) }}{% endfor %}")
    digests = _ingest_with(tmp_path, custom)
    web = (digests / "2026-03-13.html").read_text()
    assert web.startswith("2 papers\n<article")
    assert web.count('<article class="paper" id="p') == 2
    assert 'aria-label="The paper"' in web and 'class="paper-title"' not in web
    assert '<a href="https://github.com/a/b">https://github.com/a/b</a>' in web

