"""The code keeps to the style guide's checks: ruff (E, F, W, I, B, UP) and mypy --strict."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

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

# The tree reads as the pipeline, bottom to top: a module imports from its own layer or below.
LAYERS = (
    ("digest", "digest.errors", "digest.statuses", "digest.models", "digest.diff", "digest.capture",
     "digest.text", "digest.topics", "digest.report"),  # pure core: identity, what is new, dates,
                                                    # text, what a cycle did
    ("digest.sources",),                            # read and fetch
    ("digest.store",),                              # the database
    ("digest.publish",),                            # pages, Markdown, feeds, atomic output
    ("digest.config",),                             # settings, in the stages' own types
    ("digest.mail",),                               # subscribers, message, transport, delivery log
    ("digest.collect", "digest.enrich", "digest.outputs", "digest.pipeline",
     "digest.quiet", "digest.schedule"),            # orchestration
    ("digest.web", "digest.cli", "digest.__main__"),  # the two front doors
)


def _layer(module: str) -> int:
    for rank, group in enumerate(LAYERS):
        if any(module == name or (name != "digest" and module.startswith(name + ".")) for name in group):
            return rank
    raise AssertionError(f"{module} has no layer in LAYERS")


def _imports(path: Path) -> set[str]:
    """The digest modules a file imports, at run time or for type checking alike."""
    found: set[str] = set()
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "digest")
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] != "digest":
                continue
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                is_module = (ROOT / Path(*sub.split("."))).with_suffix(".py").is_file() or \
                    (ROOT / Path(*sub.split("."))).is_dir()
                found.add(sub if is_module else node.module)
    return found


@pytest.mark.parametrize("module", _modules())
def test_no_upward_import(module: str) -> None:
    """sources -> store -> publish -> mail, web and cli on top: nothing imports a later stage."""
    upward = sorted(m for m in _imports(_path(module)) if _layer(m) > _layer(module))
    assert not upward, f"{module} imports {upward} from a later stage"


def test_only_the_store_imports_the_schema() -> None:
    """Every query lives in digest/store/: no other module reaches the tables."""
    outside = [module for module in _modules() if not module.startswith("digest.store")]
    offenders = [m for m in outside
                 if {"digest.store.schema", "digest.store.schema_m001"} & _imports(_path(m))]
    assert offenders == []


def test_no_test_module_imports_another() -> None:
    """Shared test helpers live in conftest.py or helper modules, never in a test_* module."""
    found = []
    for path in sorted((ROOT / "tests").glob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            found += [f"{path.name} imports {n}" for n in names if n.split(".")[0].startswith("test_")]
    assert found == []


def _path(module: str) -> Path:
    path = ROOT / Path(*module.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def test_the_readme_tree_names_every_module() -> None:
    """The Development section's tree lists every module of the package (and docs/ when it
    exists), so it cannot fall behind the code unnoticed."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    tree = readme.split("## Development", 1)[1].split("```", 2)[1]
    modules = {p.name for p in (ROOT / "digest").rglob("*.py")} - {"__init__.py", "__main__.py"}
    assert [name for name in sorted(modules) if name not in tree] == []
    assert not (ROOT / "docs").is_dir() or "docs/" in tree


def test_a_missing_service_fails_in_ci_and_skips_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    """The suite's promise: without PostgreSQL or Chromium a laptop run skips those tests
    with the reason, and CI (which provides both) fails instead of going green."""
    from conftest import missing_service

    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="no server here"):
        missing_service("no server here")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="no server here"):
        missing_service("no server here")
