"""The few errors paper-digest raises on purpose; the CLI turns them into one line each."""

from __future__ import annotations


class DigestError(Exception):
    """A problem the user can fix: says what is wrong (`what`) and how to fix it (`fix`)."""

    def __init__(self, where: str, what: str, fix: str = "") -> None:
        self.where = where
        self.what = what
        self.fix = fix
        super().__init__(self.message)

    @property
    def message(self) -> str:
        text = f"{self.where}: {self.what}" if self.where else self.what
        return f"{text} — {self.fix}" if self.fix else text


class ConfigError(DigestError):
    """A setting (option, environment variable, config key) has a bad value."""


class ConfigErrors(ConfigError):
    """Several settings are wrong at once: each is reported, one line per problem."""

    def __init__(self, problems: list[ConfigError]) -> None:
        self.problems = problems
        super().__init__(problems[0].where, problems[0].what, problems[0].fix)


def raise_all(problems: list[ConfigError]) -> None:
    """Raise nothing, the one problem, or all of them together."""
    if len(problems) == 1:
        raise problems[0]
    if problems:
        raise ConfigErrors(problems)


class SourceError(DigestError):
    """A snapshot could not be read (missing file, unreadable bytes)."""


class ParseError(DigestError):
    """A snapshot was read but is not a valid Daily Papers page."""


class StoreError(DigestError):
    """The store refused an operation (bad URL, out-of-order snapshot)."""


class SubscriberError(DigestError):
    """A subscriber address, topic list or import row is invalid."""


class DeliveryError(DigestError):
    """A digest could not be delivered."""


class TemplateError(DigestError):
    """A template (bundled or override) does not compile or render."""


class OutputError(DigestError):
    """An output file could not be written (a full disk, no permission)."""
