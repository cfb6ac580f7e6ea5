"""Topics: the phrases a subscriber or a topic feed follows, and how they match a paper."""

from __future__ import annotations

import re

from digest.text import one_line


def parse_topics(text: str | None) -> tuple[str, ...]:
    """Split `"reasoning, diffusion models"` into distinct phrases (empty: every paper)."""
    if not text:
        return ()
    phrases = (" ".join(one_line(p).split()) for p in re.split(r"[,;\n]", text))
    return tuple(dict.fromkeys(p for p in phrases if p))


def topic_pattern(topics: tuple[str, ...]) -> re.Pattern[str] | None:
    """One case-insensitive regex matching any topic as whole words; None for no topics."""
    if not topics:
        return None
    alternatives = "|".join(r"\s+".join(map(re.escape, t.split())) for t in topics)
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)
