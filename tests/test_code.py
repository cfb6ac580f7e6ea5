"""The code keeps to the style guide's checks: ruff (E, F, W, I, B, UP) and mypy --strict."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import ROOT


def test_ruff() -> None:
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "digest", "tests", "bench"],
                          cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_mypy_strict() -> None:
    done = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def _modules() -> list[str]:
    """Every module of the package, dotted (`digest.store.ingest`)."""
    names = []
    for path in sorted((ROOT / "digest").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


@pytest.mark.parametrize("module", [m for m in _modules() if m != "digest.__main__"])
def test_imports_alone(module: str) -> None:
    """Each module imports by itself in a fresh interpreter: no import cycle hides behind an order."""
    done = subprocess.run([sys.executable, "-c", f"import {module}"], cwd=ROOT,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr

