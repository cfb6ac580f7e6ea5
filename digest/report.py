"""What a cycle, a send and a round of arXiv look-ups did: the reports the command line
prints and the cycle log keeps. Plain values with no store or mail behind them, so a quiet
cycle (digest.quiet) reports exactly as a full one without loading either."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from digest.text import plural

if TYPE_CHECKING:
    from digest.models import DigestInfo, IngestResult


@dataclass(frozen=True)
class Problem:
    """A delivery that did not go out this run, for the operator to act on."""

    status: str  # failed, deferred or unknown
    digest: str
    email: str
    reply: str

    def line(self) -> str:
        return f"{self.status}: {self.digest} to {self.email}: {self.reply}"


@dataclass
class Summary:
    """What a send run did."""

    sent: int = 0
    skipped: int = 0
    failed: int = 0
    deferred: int = 0
    unknown: int = 0
    held: list[tuple[str, str]] = field(default_factory=list)  # (digest, reason)
    planned: list[tuple[str, int, int]] = field(default_factory=list)  # dry run: digest, send, skip
    stopped: str | None = None
    problems: list[Problem] = field(default_factory=list)  # each failed, deferred, unknown one

    @property
    def ok(self) -> bool:
        return not (self.failed or self.deferred or self.unknown or self.stopped)

    def line(self) -> str:
        parts = [f"{self.sent} sent", f"{self.skipped} skipped", f"{self.failed} failed"]
        if self.deferred:
            parts.append(f"{self.deferred} deferred (will retry)")
        if self.unknown:
            parts.append(f"{self.unknown} unknown (see --retry-unknown)")
        return ", ".join(parts)


@dataclass
class CycleReport:
    """What one `digest run` cycle did."""

    fetched: dict[str, int] = field(default_factory=dict)  # source -> new snapshots
    failures: list[tuple[str, str]] = field(default_factory=list)  # (source, reason)
    results: list[IngestResult] = field(default_factory=list)
    digest: DigestInfo | None = None
    enriched: EnrichReport | None = None
    sent: Summary | None = None
    seconds: float = 0.0
    notices: list[str] = field(default_factory=list)  # worth the operator's eye, not failures

    @property
    def new(self) -> int:
        return sum(r.new for r in self.results if r.status == "ingested")

    @property
    def ok(self) -> bool:
        return not self.failures and (self.sent is None or self.sent.ok)

    @property
    def succeeded(self) -> list[str]:
        failed = {name for name, _ in self.failures}
        return [name for name in self.fetched if name not in failed]

    def line(self) -> str:
        sent = self.sent.line() if self.sent else "not sent"
        return (f"cycle {'ok' if self.ok else 'FAILED'}: "
                f"{plural(sum(self.fetched.values()), 'snapshot')}, "
                f"{plural(self.new, 'new paper')}, {sent}, "
                f"{plural(len(self.failures), 'source')} failed, {self.seconds:.1f} s")


@dataclass
class EnrichReport:
    """What one round of look-ups did; `left` titles wait for the next round."""

    asked: int = 0
    hits: int = 0
    gained: int = 0
    left: int = 0
    requests: int = 0
    errors: list[str] = field(default_factory=list)

    def line(self) -> str:
        tail = f"; stopped: {self.errors[0]}" if self.errors else ""
        return (f"arXiv look-ups: {plural(self.asked, 'title')} in {plural(self.requests, 'request')}, "
                f"{self.hits} found, "
                f"{plural(self.gained, 'paper')} gained an id, {self.left} left for the next run{tail}")
