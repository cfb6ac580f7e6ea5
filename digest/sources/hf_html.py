"""The Hugging Face papers web pages: the daily page embeds the API's JSON in
`<div data-target="DailyPapers" data-props="...">`, and the search page (`/papers?q=…`)
embeds its results the same way under another target; read with a real HTML parser."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

from digest.errors import ParseError
from digest.models import Listing
from digest.sources.hf_json import listings_from_items, load_json


class _PropsFinder(HTMLParser):
    """Every `data-props` on the page, the DailyPapers one first."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.props: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        props = values.get("data-props")
        if props:
            if values.get("data-target") == "DailyPapers":
                self.props.insert(0, props)
            else:
                self.props.append(props)


def _paper_items(props: Any, depth: int = 0) -> list[Any] | None:
    """The first list of paper items (objects with a `paper`, or an `id` and a `title`)
    in a page's props: the daily list, or a search's results."""
    if isinstance(props, list):
        first = props[0] if props else None
        if isinstance(first, dict) and ("paper" in first or {"id", "title"} <= first.keys()):
            return props
    if depth < 3:
        children = props.values() if isinstance(props, dict) else props if isinstance(props, list) else ()
        for child in children:
            if isinstance(child, dict | list):
                found = _paper_items(child, depth + 1)
                if found is not None:
                    return found
    return None


def parse_hf_html(data: bytes | str, where: str, warnings: list[str] | None = None
                  ) -> list[Listing]:
    """Find the DailyPapers props in the page and parse them like the JSON API."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    finder = _PropsFinder()
    finder.feed(text)
    finder.close()
    for raw in finder.props:
        props = load_json(raw, where, "the page's embedded data is not JSON")
        if isinstance(props, dict) and isinstance(props.get("dailyPapers"), list):
            return listings_from_items(props, where, warnings)
        items = _paper_items(props)
        if items is not None:
            return listings_from_items(items, where, warnings)
    raise ParseError(where, "no papers data in this HTML page",
                     "point the source at https://huggingface.co/papers (or ?q=…) or the JSON API")
