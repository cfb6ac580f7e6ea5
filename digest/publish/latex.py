"""Turn the LaTeX that authors put in titles and abstracts (`MedS$^3$`, `97.2\\%`) into Unicode text.

unicodeit converts math well (`^3` → `³`, `\\cdot` → `⋅`, `\\mathcal{O}` → `𝒪`) but rewrites the
whole string it is given (every `-` becomes `−`, `$` signs stay), so it only ever sees the inside
of a `$…$` segment; outside math only TeX's text escapes (`\\&`, `\\%`, …) are undone. A segment
unicodeit cannot fully convert (`\\frac{a}{b}`) stays exactly as written: never dropped, never
half-converted. pylatexenc and latex2mathml were compared and rejected (see the README).
"""

from __future__ import annotations

import re
from functools import lru_cache

import unicodeit

# `$…$` with no space just inside the dollars: `costs $5 and $10` is money, not math.
_MATH = re.compile(r"\$(?=\S)([^$\n]{1,200}?)(?<=\S)\$")
# TeX's escapes for characters it reserves; `Q&A` (no backslash) is left alone.
_TEXT_ESCAPE = re.compile(r"\\([&%#_$])")
# What unicodeit leaves when it could not convert everything (a command, a script, a group).
_LEFTOVER = re.compile(r"[\\^_{}]")


def tex_to_unicode(text: str) -> str:
    """`MedS$^3$: Prefill \\& Decode` → `MedS³: Prefill & Decode`; text without TeX is returned as is."""
    if "$" not in text and "\\" not in text:
        return text  # the common case
    out: list[str] = []
    last = 0
    for math in _MATH.finditer(text):
        out.append(_TEXT_ESCAPE.sub(r"\1", text[last : math.start()]))
        out.append(_math_to_unicode(math.group(1)) or math.group(0))
        last = math.end()
    out.append(_TEXT_ESCAPE.sub(r"\1", text[last:]))
    return "".join(out)


@lru_cache(maxsize=4096)
def _math_to_unicode(math: str) -> str | None:
    """The Unicode for one math segment, or None when some of it has no Unicode form."""
    converted: str = unicodeit.replace(math)
    converted = _TEXT_ESCAPE.sub(r"\1", converted)
    return None if _LEFTOVER.search(converted) else converted
