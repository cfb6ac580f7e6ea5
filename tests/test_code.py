"""The code keeps to the style guide's checks: ruff (E, F, W, I, B, UP) and mypy --strict."""

from __future__ import annotations

import subprocess
import sys

from conftest import ROOT


def test_ruff() -> None:
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "digest", "tests", "bench"],
                          cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_mypy_strict() -> None:
    done = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
