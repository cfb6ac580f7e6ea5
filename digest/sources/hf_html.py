"""The Hugging Face papers web page: it embeds the API's JSON in
`<div data-target="DailyPapers" data-props="...">`; read with a real HTML parser."""

from __future__ import annotations

from html.parser import HTMLParser

from digest.errors import ParseError
from digest.models import Paper
from digest.sources.hf_json import load_json, papers_from_items


class _PropsFinder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.props: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if self.props is None and values.get("data-target") == "DailyPapers":
            self.props = values.get("data-props")


def parse_hf_html(data: bytes | str, where: str, warnings: list[str] | None = None) -> list[Paper]:
    """Find the DailyPapers props in the page and parse them like the JSON API."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    finder = _PropsFinder()
    finder.feed(text)
    finder.close()
    if not finder.props:
        raise ParseError(where, "no DailyPapers data in this HTML page",
                         "point the source at https://huggingface.co/papers or the JSON API")
    props = load_json(finder.props, where, "the page's DailyPapers data is not JSON")
    return papers_from_items(props, where, warnings)
