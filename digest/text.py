"""Make untrusted text (titles, abstracts, names) safe for each output it lands in."""

from __future__ import annotations

import re
import textwrap

from markupsafe import Markup, escape

try:  # markupsafe's own C escaping, without the Python-level Markup() that escape() adds
    from markupsafe._speedups import _escape_inner
except ImportError:  # pragma: no cover - a markupsafe without its speedups

    def _escape_inner(s: str, /) -> str:
        return str(escape(s))

escape_text = _escape_inner  # `str(markupsafe.escape(text))` for a str: the C escape alone

# XML 1.0 forbids C0 controls other than tab/newline/CR, U+FFFE/U+FFFF and lone surrogates;
# feedgen (lxml) raises on them, and no reader wants them in HTML or mail either.
_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffe\uffff\ud800-\udfff]")
# Escapes that both Python-Markdown and CommonMark (markdown-it-py) render back to the character:
# a backslash before the punctuation Python-Markdown knows how to escape, an HTML entity for the
# rest (`\&` shows its backslash in Python-Markdown). Enough to stop emphasis, code, links,
# images, autolinks, raw HTML, entities and strikethrough; `(` alone is harmless once `[` and
# `]` are escaped, and leaving it keeps the Markdown readable.
_BREAKS = ("\n", "\r", "  ", "\t", "\x85", "\u2028", "\u2029", "\x1c", "\x1d", "\x1e")
_MD_ESCAPES = {**{c: "\\" + c for c in "\\`*_[]>"}, "&": "&amp;", "<": "&lt;", "~": "&#126;"}
_MD_SPECIAL = str.maketrans({
    **_MD_ESCAPES,
    # Line breaks would end a heading or list item; controls belong in no output.
    **{chr(c): " " for c in (0x0A, 0x0D, 0x0B, 0x0C, 0x85, 0x2028, 0x2029)},
    **{chr(c): None for c in [*range(0x00, 0x09), *range(0x0E, 0x20), 0x7F]},
})
# What would start a list, heading, quote or rule at the start of a line, and its escape.
_MD_LINE_START = re.compile(r"^(?:(\d+)([.)])|([-+#]))")
_SAFE_SCHEMES = ("http://", "https://")
# Only http(s) URLs become links; trailing punctuation belongs to the sentence.
URL = re.compile(r"https?://[^\s<>\"'`{}|\\^\[\]]+")
_TRAILING = ".,;:!?*'\""


def plural(count: int, noun: str) -> str:
    """`1 snapshot`, `2 snapshots`, `0 snapshots`."""
    return f"{count} {noun}" + ("" if count == 1 else "s")


# The ASCII characters that are not printable: with ASCII text (most of it), `printable` finds
# them by deleting them from the bytes, a C pass that is faster than `str.isprintable`'s
# per-character Unicode lookup (half a digest's Markdown escaping was that lookup).
_ASCII_UNPRINTABLE = bytes([*range(0x20), 0x7F])


def printable(text: str) -> bool:
    """`text.isprintable()`, faster for ASCII text."""
    if text.isascii():  # no scan: CPython knows it
        return len(text.encode().translate(None, _ASCII_UNPRINTABLE)) == len(text)
    return text.isprintable()


def clean(text: str) -> str:
    """Drop characters no output format may carry (controls, lone surrogates)."""
    if printable(text) or not _FORBIDDEN.search(text):  # one C scan, no regex
        return text
    return _FORBIDDEN.sub("", text)


def one_line(text: str) -> str:
    """Collapse all whitespace (CR/LF included) to single spaces: for titles and headers."""
    # The common case in one C scan: printable text holds nothing `clean` drops and no
    # whitespace but the plain space (no control, line or paragraph separator, no NBSP).
    if printable(text) and "  " not in text and text[:1] != " " and text[-1:] != " ":
        return text
    text = clean(text)
    if any(mark in text for mark in _BREAKS) or text[:1].isspace() or text[-1:].isspace():
        return " ".join(text.split())
    return text  # the common case, without building a list of every word


def is_safe_url(url: str) -> bool:
    """Only http(s) URLs ever become links."""
    return url.lower().startswith(_SAFE_SCHEMES)


_new_str = str.__new__


def html_escape(value: object) -> Markup:
    """`markupsafe.escape(value)`: the same Markup, made without markupsafe's Python-level
    `Markup()` for what templates show most (str, int, Markup). Every `{{ value }}` of an HTML
    template escapes through it (a dozen per paper card)."""
    kind = type(value)
    if kind is str:
        return _new_str(Markup, _escape_inner(value))  # type: ignore[arg-type]
    if kind is Markup:
        return value  # type: ignore[return-value]
    if kind is int:
        return _new_str(Markup, str(value))
    return escape(value)


def linkify(text: str, highlight: re.Pattern[str] | None = None) -> Markup:
    """Escape `text` for HTML, turn its http(s) URLs into links, and <mark> `highlight` hits."""
    if not _may_hold_url(text):  # as in `split_urls`: one escape, no pieces to join
        return mark(text, highlight)
    out: list[str] = []
    for piece, is_url in split_urls(text):
        if is_url:
            url = html_escape(piece)
            out.append(f'<a href="{url}">{url}</a>')
        else:
            out.append(mark(piece, highlight))
    return _new_str(Markup, "".join(out))


def mark(text: str, highlight: re.Pattern[str] | None = None) -> Markup:
    """Escape `text` for HTML, wrapping the matches of `highlight` in <mark>."""
    if highlight is None:
        return html_escape(text)
    out: list[str] = []
    last = 0
    for hit in highlight.finditer(text):
        out.append(html_escape(text[last : hit.start()]))
        out.append(f"<mark>{html_escape(hit.group(0))}</mark>")
        last = hit.end()
    out.append(html_escape(text[last:]))
    return _new_str(Markup, "".join(out))


def star(text: str, highlight: re.Pattern[str] | None = None) -> str:
    """Plain-text highlighting: `*word*` around each match of `highlight`."""
    if highlight is None:
        return text
    return "".join(piece if is_url else highlight.sub(lambda hit: f"*{hit.group(0)}*", piece)
                   for piece, is_url in split_urls(text))


# The same escapes as str.replace passes, `\\` and `&` first (the others add them).
_MD_REPLACES = sorted(_MD_ESCAPES.items(), key=lambda pair: pair[0] not in "\\&")


def md_translate(text: str) -> str:
    """`text.translate(_MD_SPECIAL)`, byte for byte. Text with no control or line break (one
    C scan tells) takes a C `replace` pass per special character it holds: translate with a
    dict looks every character up in Python, a fifth of a 50,000-paper Markdown digest."""
    if not printable(text):
        return text.translate(_MD_SPECIAL)
    for char, escaped in _MD_REPLACES:
        if char in text:
            text = text.replace(char, escaped)
    return text


def md_escape(text: str) -> str:
    """Escape Markdown syntax so untrusted text can never form a link or tag, and renders as written."""
    return _md_line_start(md_translate(text).strip())


def _md_line_start(escaped: str) -> str:
    """Escape what would make a line a list item, heading or rule."""
    first = escaped[:1]
    if not first or (first not in "=-+#" and not first.isdecimal()):  # isdecimal: what \d matches
        return escaped  # most lines: no regex pass
    if escaped.startswith("="):
        return "&#61;" + escaped[1:]  # Python-Markdown has no `\=`
    # `1.4 Million` → `1\.4 Million`: escape the punctuation, not the digit (`\1` stays visible).
    return _MD_LINE_START.sub(lambda m: f"{m[1]}\\{m[2]}" if m[1] else f"\\{m[3]}", escaped, count=1)


def md_escape_block(text: str) -> str:
    """Escape an abstract for Markdown, keeping its http(s) URLs as autolinks."""
    return _md_line_start("".join(f"<{piece}>" if is_url else md_translate(piece)
                                  for piece, is_url in split_urls(text)))


def shorten(text: str, limit: int) -> str:
    """Cut `text` at a word boundary to at most `limit` characters, marking the cut with '…'."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1].rsplit(" ", 1)[0].rstrip(".,;:")
    return cut + "…"


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])")


def teaser(text: str, sentences: int = 2, limit: int = 300) -> str:
    """The first `sentences` sentences, cut at a word to `limit` characters: enough to decide
    whether to read on. Splits after `.`, `?` or `!` before a capital, so `e.g. the` stays whole."""
    text = " ".join(text.split())
    parts = _SENTENCE_END.split(text, maxsplit=sentences)
    lead = " ".join(parts[:sentences])
    return shorten(lead, limit)


def wrap(text: str, width: int = 72, indent: str = "") -> str:
    """Wrap plain text for the text email without breaking URLs."""
    return textwrap.fill(
        " ".join(clean(text).split()), width=width, initial_indent=indent,
        subsequent_indent=indent, break_long_words=False, break_on_hyphens=False,
    )


def reflow_html(html: str, limit: int = 900) -> str:
    """Re-flow HTML into lines of at most about `limit` characters, joining short lines and
    breaking long ones at spaces outside tags: the same page (a line break and a space are
    the same whitespace to HTML; no template uses <pre>), but every line fits the email
    limit of 998 without base64, and a tenth as many lines to write per message."""
    out: list[str] = []
    current = ""
    for line in html.split("\n"):
        if current and len(current) + 1 + len(line) > limit:
            out.append(current)
            current = line
        else:
            current = f"{current} {line}" if current else line
        while len(current) > limit:
            cut = _text_space_before(current, limit)
            if cut is None:
                break
            out.append(current[:cut])
            current = current[cut + 1 :]
    out.append(current)
    return "\n".join(out)


def _text_space_before(line: str, limit: int) -> int | None:
    """The last space before `limit` that lies in text, not inside a tag."""
    best, in_tag = None, False
    for index, char in enumerate(line[:limit]):
        if char == "<":
            in_tag = True
        elif char == ">":
            in_tag = False
        elif char == " " and not in_tag:
            best = index
    return best if best else None


def trim_url(url: str) -> str:
    """Drop the sentence punctuation and unbalanced ')' that a URL match swallowed."""
    url = url.rstrip(_TRAILING)
    while url.endswith(")") and url.count("(") < url.count(")"):
        url = url[:-1].rstrip(_TRAILING)
    return url


def _may_hold_url(text: str) -> bool:
    """False when `text` cannot hold a URL: no `:` (one memchr pass), or no `://`."""
    return ":" in text and "://" in text


def split_urls(text: str) -> list[tuple[str, bool]]:
    """Split `text` into (piece, is_url) pairs; only http(s) URLs count as URLs."""
    if not _may_hold_url(text):  # most abstracts: skip the regex scan
        return [(text, False)]
    pieces: list[tuple[str, bool]] = []
    last = 0
    for match in URL.finditer(text):
        url = trim_url(match.group(0))
        if len(url) <= len("https://"):
            continue
        pieces.append((text[last : match.start()], False))
        pieces.append((url, True))
        last = match.start() + len(url)
    pieces.append((text[last:], False))
    return pieces


def find_links(text: str) -> tuple[str, ...]:
    """Return the distinct http(s) URLs in `text`, in order."""
    return tuple(dict.fromkeys(piece for piece, is_url in split_urls(text) if is_url))
