"""Tell a snapshot's format from its bytes (and the HTTP Content-Type, when there is one)."""

from __future__ import annotations

from collections.abc import Callable

from digest.errors import ParseError
from digest.models import Listing
from digest.sources import FORMATS
from digest.sources.feeds import parse_feed
from digest.sources.hf_html import parse_hf_html
from digest.sources.hf_json import parse_hf_json

# The structured formats and their parsers; the page text ("dailypage") has its own path.
Parser = Callable[[bytes, str, list[str]], list[Listing]]
PARSERS: dict[str, Parser] = {"hf-json": parse_hf_json, "hf-html": parse_hf_html,
                              "arxiv": parse_feed, "feed": parse_feed}


def detect(data: bytes, content_type: str = "") -> str:
    """One of FORMATS, from the first bytes: JSON, a feed, an HTML page, else page text."""
    head = data[:4096].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    kind = content_type.split(";")[0].strip().lower()
    if kind.endswith("json") or head[:1] in (b"[", b"{"):
        return "hf-json"
    if head.startswith(b"<"):
        if b"<rss" in head or b"<feed" in head or b"<rdf:rdf" in head:
            return "arxiv" if b"arxiv" in head else "feed"
        if b"<html" in head or b"<!doctype html" in head:
            return "hf-html"
        if head.startswith(b"<?xml"):
            return "feed"
    return "dailypage"


def parser_for(fmt: str) -> Parser:
    """The parser of a structured format (the page text has its own path: dates, chrome)."""
    if fmt in PARSERS:
        return PARSERS[fmt]
    raise ParseError(fmt, "not a structured format", f"use one of: {', '.join(FORMATS)}")
