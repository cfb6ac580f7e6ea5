"""Shared fixtures: an isolated working folder, goldens, and stores on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import pytest
from http_server import FixtureServer
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from digest.models import Listing, Paper

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
EXAMPLES = ROOT / "examples" / "snapshots"
SHARED_SNAPSHOTS = ROOT.parent / "shared" / "snapshots"
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def listed(*papers: Paper) -> tuple[Listing, ...]:
    """Papers as one page lists them: ranks 1, 2, … in order, no counts."""
    return tuple(Listing(paper, rank) for rank, paper in enumerate(papers, 1))


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` and its bytes, by relative path."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def counts(db: Path) -> dict[str, int]:
    """The row counts of the SQLite store at `db`."""
    from digest.store import open_store

    store = open_store(f"sqlite:///{db}")
    try:
        return store.counts()
    finally:
        store.close()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-goldens", action="store_true",
                     help="Rewrite tests/goldens/ from the current output instead of comparing.")


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run every test in its own folder with no DIGEST_* setting leaking in from the shell."""
    for name in list(os.environ):
        if name.startswith("DIGEST_") and name != "DIGEST_TEST_PG_URL":
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    _never_reach_arxiv(monkeypatch)
    return tmp_path


# Nothing but 127.0.0.1 is ever contacted: commands run by the tests (also in subprocesses) do
# not look papers up on arXiv unless a test turns it on and points them at its own server.
NO_ARXIV = "http://127.0.0.1:9/api/query"
# The delivery tests' clock and signing key (test modules never import one another).
MAIL_NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
MAIL_SECRET = "test-secret-not-for-production-0123456789"


def _never_reach_arxiv(monkeypatch: pytest.MonkeyPatch) -> None:
    import digest.pipeline
    from digest.enrich import EnrichReport, enrich

    monkeypatch.setenv("DIGEST_ENRICH_ARXIV", "false")
    monkeypatch.setenv("DIGEST_ENRICH_API_URL", NO_ARXIV)

    def local_only(store: object, settings: Any, now: object, **options: Any) -> EnrichReport:
        if not settings.api_url.startswith("http://127.0.0.1:"):
            return EnrichReport(errors=[f"{settings.api_url}: tests never reach it"])
        return enrich(store, settings, now, **options)  # type: ignore[arg-type]

    monkeypatch.setattr(digest.pipeline, "enrich", local_only)


@pytest.fixture
def server() -> Iterator[FixtureServer]:
    """A local HTTP server on 127.0.0.1 (tests/http_server.py), routes set per test."""
    with FixtureServer() as fixture_server:
        yield fixture_server


@pytest.fixture
def update_goldens(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-goldens"))


def _pg_base_url() -> str:
    return os.environ.get("DIGEST_TEST_PG_URL", DEFAULT_PG)


@pytest.fixture(scope="session")
def pg_server() -> str:
    """The PostgreSQL server for tests; a failure in CI, a skip (with the reason) elsewhere."""
    url = _pg_base_url()
    try:
        engine = create_engine(url)
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        engine.dispose()
    except Exception as exc:  # any failure to reach the server decides skip vs fail
        missing_service(f"PostgreSQL not reachable at {url} ({type(exc).__name__}); "
                        "set DIGEST_TEST_PG_URL")
    return url


def missing_service(reason: str) -> NoReturn:
    """A service a test needs is not here: in CI (`CI=true`) that is a failure, since CI
    provides it; on a laptop the test is skipped with the reason, never silently."""
    if os.environ.get("CI") != "true":  # a laptop without the service: say so, skip
        pytest.skip(reason)
    pytest.fail(reason)  # CI provides every service: one missing is a failure


@contextmanager
def _fresh_schema(pg_server: str) -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh schema, dropped afterwards."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(pg_server)
    with admin.begin() as conn:
        conn.execute(text(f"create schema {schema}"))
    url = make_url(pg_server).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"drop schema {schema} cascade"))
        admin.dispose()


@pytest.fixture
def pg_url(pg_server: str) -> Iterator[str]:
    """A store of its own on the test server: a fresh schema, dropped after the test."""
    with _fresh_schema(pg_server) as url:
        yield url


@pytest.fixture
def other_pg_url(pg_server: str) -> Iterator[str]:
    """A second store in the same database (another schema), for tests of what they share."""
    with _fresh_schema(pg_server) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The store suite runs against both backends."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.sqlite3'}"
    return str(request.getfixturevalue("pg_url"))


def page(*entries: str, header: str = "Mar 13") -> str:
    """Build Daily Papers page text from entry blocks (each block's lines joined by blank lines)."""
    chrome = ["new", "Get trending papers in your email inbox!", "Subscribe",
              "byAK and the research community", header]
    return "\n\n".join(chrome + list(entries)) + "\n"


def entry(title: str, abstract: str | None = None, meta: str | None = "  • 3 authors",
          date: str | None = "Mar 12") -> str:
    """One entry block; `meta=None` leaves out the metadata block."""
    lines = [title, abstract or f"Abstract of {title}."]
    if meta is not None:
        lines += [meta, "·", date or ""]
    return "\n\n".join(lines)
