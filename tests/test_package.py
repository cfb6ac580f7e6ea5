"""The templates ship inside the wheel: an installed copy renders without the checkout."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from conftest import EXAMPLES, ROOT


def test_installed_wheel_renders_outside_the_checkout(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(wheels), str(ROOT)], check=True)
    (wheel,) = wheels.glob("paper_digest-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for template in ("digest.html", "digest.md", "email.html", "email.txt", "index.html",
                     "base.html", "_paper.html", "_style.css", "_dark.css"):
        assert f"digest/templates/{template}" in names, template
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target",
                    str(site), str(wheel)], check=True)
    work = tmp_path / "work"
    work.mkdir()
    script = ("import digest, sys; assert digest.__file__.startswith(sys.argv[1]), digest.__file__; "
              "from digest.cli.main import main; main(['ingest', sys.argv[2]])")
    done = subprocess.run([sys.executable, "-c", script, str(site), str(EXAMPLES)], cwd=work,
                          env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    page = (work / "out/digests/2026-03-13.html").read_text()
    assert "HyperMesh⋅Flow" in page and "<style>" in page  # TeX as Unicode
