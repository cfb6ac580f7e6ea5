"""The command line: output lines, --json, exact error lines, exit codes, help everywhere."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import EXAMPLES, FIXTURES, entry, page
from http_server import FixtureServer, Route

from digest.cli.main import main
from digest.store import open_store


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def counts(db: str = "sqlite:///digest.sqlite3") -> dict[str, int]:
    store = open_store(db)
    try:
        return store.counts()
    finally:
        store.close()


def test_ingest_examples_prints_one_line_per_snapshot(isolated: Path) -> None:
    code, out, err = invoke("ingest", str(EXAMPLES))
    assert code == 0, err
    assert out.splitlines() == [
        "2026-03-11  7 papers  7 new  → out/digests/2026-03-11.md",
        "2026-03-12  5 papers  3 new  → out/digests/2026-03-12.md",
        "2026-03-13  5 papers  3 new  → out/digests/2026-03-13.md",
    ]
    assert (isolated / "digest.sqlite3").is_file()
    for name in ("feed.xml", "atom.xml", "index.html", "digests/2026-03-13.email.html",
                 "digests/2026-03-13.email.txt", "digests/2026-03-13.html"):
        assert (isolated / "out" / name).is_file(), name
    code, out, _ = invoke("ingest", str(EXAMPLES / "2026-03-12.txt"))
    assert code == 0
    assert out == f"2026-03-12  5 papers  already ingested  ({EXAMPLES / '2026-03-12.txt'})\n"


def test_ingest_json(isolated: Path) -> None:
    files = [str(EXAMPLES / "2026-03-12.txt"), str(EXAMPLES / "2026-03-11.txt")]
    code, out, _ = invoke("ingest", "--json", *files)
    assert code == 0
    lines = [json.loads(line) for line in out.splitlines()]
    assert lines[0] == {"path": files[1], "captured_at": "2026-03-11", "papers": 7, "new": 7,
                        "digest": "out/digests/2026-03-11.md", "status": "ingested"}
    assert [line["captured_at"] for line in lines] == ["2026-03-11", "2026-03-12"]
    code, out, _ = invoke("ingest", "--json", files[0])
    assert json.loads(out) == {"path": files[0], "captured_at": "2026-03-12", "papers": 5,
                               "new": 0, "digest": None, "status": "already ingested",
                               "first_ingest": {"new": 3, "digest": "out/digests/2026-03-12.md"}}


def test_db_and_out_from_options_and_environment(isolated: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIGEST_DB", f"sqlite:///{isolated / 'env.sqlite3'}")
    monkeypatch.setenv("DIGEST_OUT", str(isolated / "envout"))
    assert invoke("ingest", str(EXAMPLES / "2026-03-11.txt"))[0] == 0
    assert (isolated / "env.sqlite3").is_file() and (isolated / "envout" / "feed.xml").is_file()
    code, _, _ = invoke("ingest", "--db", f"sqlite:///{isolated / 'opt.sqlite3'}", "--out", "o2",
                        str(EXAMPLES / "2026-03-11.txt"))
    assert code == 0 and (isolated / "opt.sqlite3").is_file() and (isolated / "o2/feed.xml").is_file()


def test_captured_at_option(isolated: Path) -> None:
    path = isolated / "capture.txt"
    path.write_text(page(entry("T")))
    code, out, err = invoke("ingest", "--captured-at", "2026-03-13", str(path))
    assert code == 0 and out.startswith("2026-03-13  1 paper  1 new") and err == ""


def test_inferred_date_warns_on_stderr(isolated: Path) -> None:
    path = isolated / "capture.txt"
    path.write_text(page(entry("T")))
    code, out, err = invoke("ingest", str(path))
    today = date.today()
    expected = date(today.year if (today.month, today.day) >= (3, 13) else today.year - 1, 3, 13)
    assert code == 0 and out.startswith(f"{expected}  ")
    assert err.startswith(f"warning: {path}: capture date inferred as {expected}")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.txt"], "error: missing.txt: no such file — check the path"),
        ([str(FIXTURES / "pages/not-a-page.txt")],
         f"error: {FIXTURES / 'pages/not-a-page.txt'}: not a Daily Papers page (no page date like "
         "'Mar 13' in its first lines) — pass a text capture of https://huggingface.co/papers"),
        ([str(FIXTURES / "pages/truncated.txt")],
         f"error: {FIXTURES / 'pages/truncated.txt'}:11: truncated entry: 'Second title with no "
         "abstract' has no abstract — re-capture the page or remove the incomplete entry"),
        (["--captured-at", "13/03/2026", str(EXAMPLES / "2026-03-11.txt")],
         "error: --captured-at: '13/03/2026' is not a date — use YYYY-MM-DD, e.g. --captured-at 2026-03-13"),
        (["--db", "nonsense", str(EXAMPLES / "2026-03-11.txt")],
         "error: nonsense: not a database URL — use sqlite:///digest.sqlite3 or "
         "postgresql+psycopg://user@host/db"),
    ],
)
def test_errors_are_one_line_exit_2_and_change_nothing(isolated: Path, args: list[str],
                                                       message: str) -> None:
    assert invoke("ingest", str(EXAMPLES / "2026-03-11.txt"))[0] == 0
    before = counts()
    feed = (isolated / "out/feed.xml").read_bytes()
    code, out, err = invoke("ingest", *args)
    assert (code, out, err) == (2, "", message + "\n")
    assert counts() == before
    assert (isolated / "out/feed.xml").read_bytes() == feed


def test_one_bad_file_among_good_ones_ingests_none(isolated: Path) -> None:
    code, _, err = invoke("ingest", str(EXAMPLES), str(FIXTURES / "pages/truncated.txt"))
    assert code == 2 and "truncated entry" in err
    assert counts() == {"snapshots": 0, "papers": 0, "sightings": 0, "digests": 0}
    assert not (isolated / "out/digests").exists()


def test_out_of_order_snapshot_is_refused(isolated: Path) -> None:
    invoke("ingest", str(EXAMPLES / "2026-03-12.txt"))
    code, out, err = invoke("ingest", str(EXAMPLES / "2026-03-11.txt"))
    assert code == 2 and out == ""
    assert err == (f"error: {EXAMPLES / '2026-03-11.txt'}: captured 2026-03-11 00:00 but the store "
                   "already holds a snapshot from 2026-03-12 00:00; snapshots must be ingested in "
                   "capture order — check its date (file name or --captured-at); older captures "
                   "go in before newer ones, or into a store of their own\n")


def test_unreachable_postgres_is_one_line(isolated: Path) -> None:
    code, out, err = invoke("history", "--db", "postgresql+psycopg://nobody@127.0.0.1:1/none")
    assert code == 2 and out == "" and len(err.splitlines()) == 1
    assert err.startswith("error: postgresql+psycopg://nobody@127.0.0.1:1/none: cannot open the store")


def test_counts_of_one_are_singular(isolated: Path) -> None:
    """`1 snapshot`, `1 source failed`: the cycle line and the history totals."""
    from digest.pipeline import CycleReport

    report = CycleReport(fetched={"hf": 1}, failures=[("feed", "timed out")], seconds=0.5)
    assert report.line() == "cycle FAILED: 1 snapshot, 0 new papers, not sent, 1 source failed, 0.5 s"
    report = CycleReport(fetched={"hf": 2, "feed": 0})
    assert report.line() == "cycle ok: 2 snapshots, 0 new papers, not sent, 0 sources failed, 0.0 s"
    invoke("ingest", str(EXAMPLES / "2026-03-11.txt"))
    code, out, _ = invoke("history")
    assert code == 0 and out.splitlines()[-1] == "1 snapshot, 1 digest, 7 papers"


def test_render_and_history(isolated: Path) -> None:
    invoke("ingest", str(EXAMPLES))
    (isolated / "out/digests/2026-03-12.md").unlink()
    code, out, _ = invoke("render")
    assert code == 0 and out == "rendered 3 digests, feeds and index into out/\n"
    assert (isolated / "out/digests/2026-03-12.md").is_file()
    code, out, _ = invoke("history")
    assert code == 0
    assert out.splitlines()[1].split()[:5] == ["2026-03-11", "00:00", "7", "7", "2026-03-11"]
    assert out.splitlines()[-1] == "3 snapshots, 3 digests, 13 papers"
    code, out, _ = invoke("history", "--json")
    assert [json.loads(line)["new"] for line in out.splitlines()] == [7, 3, 3]


def test_every_command_has_help_with_an_example() -> None:
    assert "Example" in invoke("--help")[1]
    for name, command in main.commands.items():
        code, out, _ = invoke(name, "--help")
        assert code == 0 and "Example" in out and command.help, name
    assert invoke("-h")[0] == 0
    assert "paper-digest, version" in invoke("--version")[1]


def test_python_dash_m_works(isolated: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "digest", "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "digest ingest" in done.stdout


# What a help text must not load: the store, templates, HTTP, the web app, mail validation.
_HEAVY = ("sqlalchemy", "jinja2", "httpx", "starlette", "uvicorn", "feedgen", "feedparser", "feedparser_rs",
          "email_validator", "apscheduler", "css_inline", "markdown")


@pytest.mark.parametrize("args", [["--help"], ["ingest", "-h"], ["run", "--help"],
                                  ["subscribers", "add", "-h"], ["config", "check", "-h"],
                                  ["init", "-h"], ["--version"]])
def test_help_loads_click_alone(args: list[str]) -> None:
    """`digest --help` answers at once: no heavy module is imported to print a help text."""
    probe = ("import sys, runpy\n"
             f"sys.argv = ['digest', *{args!r}]\n"
             "try:\n    runpy.run_module('digest', run_name='__main__')\n"
             "except SystemExit as stop:\n    assert stop.code in (0, None), stop.code\n"
             f"print(sorted(m for m in {_HEAVY!r} if m in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "[]", f"digest {' '.join(args)} imported {done.stdout}"


# What a cycle with nothing new never needs: it renders, parses and schedules nothing.
_STEADY_UNUSED = ("feedgen", "markdown", "lxml", "feedparser", "feedparser_rs", "limits", "apscheduler",
                  "sqlalchemy.dialects.postgresql", "digest.store.schema_m001")


def _steady_run_modules(kind: str, tmp_path: Path, server: FixtureServer) -> list[str]:
    """Run `digest run` twice on one feed (a file, or over http with an ETag) in a fresh
    interpreter; the modules the second run, which finds nothing new, loaded."""
    feed = (FIXTURES / "sources" / "journal.rss").read_bytes()
    if kind == "file":
        location = str(tmp_path / "journal.rss")
        Path(location).write_bytes(feed)
    else:
        server.routes["/journal"] = Route(feed, "application/rss+xml", etag='"v1"')
        location = server.url("/journal")
    config = tmp_path / "digest.toml"
    config.write_text(f'[store]\nurl = "sqlite:///{tmp_path / "d.sqlite3"}"\n'
                      f'[output]\ndir = "{tmp_path / "out"}"\n'
                      f'[[sources]]\nname = "journal"\nlocation = "{location}"\nformat = "feed"\n')
    command = [sys.executable, "-c", "import sys, runpy\n"
               f"sys.argv = ['digest', '--config', {str(config)!r}, 'run']\n"
               "try:\n    runpy.run_module('digest', run_name='__main__')\n"
               "except SystemExit as stop:\n    assert stop.code in (0, None), stop.code\n"
               "import json\nprint(json.dumps(sorted(sys.modules)))\n"]
    first = subprocess.run(command, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    assert "journal: 1 new snapshot" in first.stdout
    steady = subprocess.run(command, capture_output=True, text=True)
    assert steady.returncode == 0, steady.stderr
    assert "journal: 0 new snapshots" in steady.stdout
    if kind == "http":
        assert [hit.status for hit in server.hits] == [200, 304]
    loaded: list[str] = json.loads(steady.stdout.splitlines()[-1])
    return loaded


@pytest.mark.parametrize("kind", ["file", "http"])
def test_a_steady_run_loads_no_renderer_parser_or_scheduler(kind: str, tmp_path: Path,
                                                            server: FixtureServer) -> None:
    """Issue 12: a cron job that finds nothing new pays for start-up, so a steady cycle
    imports only what it uses (and a file source no HTTP client)."""
    loaded = _steady_run_modules(kind, tmp_path, server)
    assert [m for m in _STEADY_UNUSED if m in loaded] == []


@pytest.mark.parametrize("kind", ["file", "http"])
def test_a_quiet_run_loads_no_store_layer_http_client_or_template_engine(
        kind: str, tmp_path: Path, server: FixtureServer) -> None:
    """Issue 12: the second run is quiet (digest.quiet): the stdlib's sqlite3 and socket
    do its work, so SQLAlchemy (0.3 s), httpx and Jinja2 are never imported."""
    loaded = _steady_run_modules(kind, tmp_path, server)
    heavy = ("sqlalchemy", "httpx", "jinja2", "css_inline", "email_validator", "digest.pipeline",
             "digest.store.core")
    assert [m for m in heavy if m in loaded] == []
    assert "digest.quiet" in loaded


def test_captured_at_with_a_folder_of_several_snapshots_is_refused() -> None:
    """A folder counts as the snapshots it holds: one date for three captures is a mistake."""
    code, _, err = invoke("ingest", "--captured-at", "2026-03-01", str(EXAMPLES))
    assert code == 2
    assert err == ("error: --captured-at: applies to one snapshot, but 3 were given — ingest "
                   "them one at a time, or put dates in the file names\n")
    assert not Path("digest.sqlite3").exists()


def test_a_folder_stands_for_its_captures_of_every_format(isolated: Path) -> None:
    """A JSON capture in a folder is ingested like a .txt one; a folder without captures
    says which endings count (the list README gives)."""
    from digest.sources.files import SNAPSHOT_SUFFIXES

    folder = isolated / "captures"
    folder.mkdir()
    (folder / "2026-03-13.json").write_bytes((FIXTURES / "sources/daily_papers.json").read_bytes())
    (folder / "notes.md").write_text("not a capture\n")
    code, out, _ = invoke("ingest", str(folder))
    assert code == 0 and out.startswith("2026-03-13  ") and len(out.splitlines()) == 1
    (isolated / "empty").mkdir()
    code, _, err = invoke("ingest", str(isolated / "empty"))
    assert code == 2 and err == (f"error: {isolated / 'empty'}: folder holds no captures (.txt, "
                                 ".json, .html, .xml, .rss, .atom) — pass snapshot files, or a "
                                 "folder that holds some\n")
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    assert ", ".join(f"`{s}`" for s in SNAPSHOT_SUFFIXES[:-1]) + f" or `{SNAPSHOT_SUFFIXES[-1]}`" in readme


def test_the_cyclic_collector_is_paused_for_the_bulk_of_an_ingest_and_back_after(
        isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 12: the collector walked a big ingest's millions of live objects again and again
    (0.8 s of 6 s at 50,000 papers); it is off while snapshots are read, ingested and
    rendered, and on again afterwards, also when the ingest fails."""
    import gc

    import digest.sources.files
    import digest.store.core

    seen: list[tuple[str, bool]] = []
    read, ingest = digest.sources.files.read_snapshot, digest.store.core.Store.ingest_cycle

    def reading(*args: object, **kwargs: object) -> object:
        seen.append(("read", gc.isenabled()))
        return read(*args, **kwargs)  # type: ignore[arg-type]

    def ingesting(self: object, *args: object, **kwargs: object) -> object:
        seen.append(("ingest", gc.isenabled()))
        return ingest(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(digest.sources.files, "read_snapshot", reading)
    monkeypatch.setattr(digest.store.core.Store, "ingest_cycle", ingesting)
    assert gc.isenabled()
    code, _, err = invoke("ingest", str(EXAMPLES / "2026-03-12.txt"))
    assert code == 0, err
    assert seen == [("read", False), ("ingest", False)]
    assert gc.isenabled()

    def failing(self: object, *args: object, **kwargs: object) -> object:
        raise OSError("disk full")

    monkeypatch.setattr(digest.store.core.Store, "ingest_cycle", failing)
    with pytest.raises(OSError):
        CliRunner().invoke(main, ["ingest", str(EXAMPLES / "2026-03-13.txt")],
                           catch_exceptions=False)
    assert gc.isenabled()
