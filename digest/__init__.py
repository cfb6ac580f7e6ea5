"""paper-digest: publish only the research papers you have never seen."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

__version__ = "0.1.0"

# The settings file looked for in the working folder (kept here, with `config_file`, so the
# command line and a quiet cycle can find it without loading the configuration code).
CONFIG_NAME = "digest.toml"


def config_file(config: str | None, env: Mapping[str, str]) -> tuple[Path, bool]:
    """The settings file, and whether it was named (by --config or DIGEST_CONFIG: then it
    must exist; ./digest.toml is read when it is there)."""
    from pathlib import Path

    explicit = config or env.get("DIGEST_CONFIG")
    return (Path(explicit) if explicit else Path(CONFIG_NAME)), bool(explicit)
