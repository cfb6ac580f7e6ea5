"""Make untrusted text (titles, abstracts, names) safe for each output it lands in."""

from __future__ import annotations

import re
import textwrap

from markupsafe import Markup, escape

from digest.sources.dailypage import split_urls

# XML 1.0 forbids C0 controls other than tab/newline/CR, U+FFFE/U+FFFF and lone surrogates;
# feedgen (lxml) raises on them, and no reader wants them in HTML or mail either.
_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffe\uffff\ud800-\udfff]")
# Enough to stop emphasis, links, images, autolinks, raw HTML and entities; `(` alone is
# harmless once `[` and `]` are escaped, and leaving it keeps the Markdown readable.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>&~])")
_SAFE_SCHEMES = ("http://", "https://")


def clean(text: str) -> str:
    """Drop characters no output format may carry (controls, lone surrogates)."""
    return _FORBIDDEN.sub("", text) if _FORBIDDEN.search(text) else text


def one_line(text: str) -> str:
    """Collapse all whitespace (CR/LF included) to single spaces: for titles and headers."""
    return " ".join(clean(text).split())


def is_safe_url(url: str) -> bool:
    """Only http(s) URLs ever become links."""
    return url.lower().startswith(_SAFE_SCHEMES)


def linkify(text: str) -> Markup:
    """Escape `text` for HTML and turn its http(s) URLs into links."""
    return Markup("".join(
        f'<a href="{escape(piece)}">{escape(piece)}</a>' if is_url else str(escape(piece))
        for piece, is_url in split_urls(clean(text))
    ))


def md_escape(text: str) -> str:
    """Backslash-escape Markdown syntax so untrusted text can never form a link or tag."""
    escaped = _MD_SPECIAL.sub(r"\\\1", one_line(text))
    if escaped[:1] in "-=+#" or re.match(r"\d+[.)]", escaped):
        escaped = "\\" + escaped
    return escaped


def md_escape_block(text: str) -> str:
    """Escape an abstract for Markdown, keeping its http(s) URLs as autolinks."""
    out = "".join(f"<{piece}>" if is_url else _MD_SPECIAL.sub(r"\\\1", piece)
                  for piece, is_url in split_urls(one_line(text)))
    return out


def shorten(text: str, limit: int) -> str:
    """Cut `text` at a word boundary to at most `limit` characters, marking the cut with '…'."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1].rsplit(" ", 1)[0].rstrip(".,;:")
    return cut + "…"


def wrap(text: str, width: int = 72, indent: str = "") -> str:
    """Wrap plain text for the text email without breaking URLs."""
    return textwrap.fill(
        " ".join(clean(text).split()), width=width, initial_indent=indent,
        subsequent_indent=indent, break_long_words=False, break_on_hyphens=False,
    )
