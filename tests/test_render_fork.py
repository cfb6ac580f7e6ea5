"""A big digest's web page is rendered by a forked child while the ingest renders the rest
(outputs.FORK_MIN_PAPERS): the same bytes, the same one-line errors, and a child that fails
or is killed rolls the ingest back like a template error; a killed ingest takes its child
with it (no renderer left holding the run lock)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import EXAMPLES, counts, tree

from digest import outputs
from digest.cli.main import main
from digest.publish import output

DAY1, DAY2 = EXAMPLES / "2026-03-11.txt", EXAMPLES / "2026-03-12.txt"

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux") or len(os.sched_getaffinity(0)) < 2,
                                reason="the render fork needs Linux and two cores")


def ingest(folder: Path, *paths: Path, templates: Path | None = None) -> tuple[int, str]:
    extra = ["--templates", str(templates)] if templates else []
    folder.mkdir(exist_ok=True)
    result = CliRunner().invoke(main, ["ingest", *map(str, paths), "--db",
                                       f"sqlite:///{folder / 'digest.sqlite3'}", "--out",
                                       str(folder / "out"), *extra])
    return result.exit_code, result.stderr


@pytest.fixture
def forks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The children forked (the test runner may have threads left by other tests: in
    process, forking is allowed regardless; `test_no_fork_beside_another_thread` checks the
    rule itself)."""
    forked: list[int] = []
    real_fork = os.fork

    def counted_fork() -> int:
        pid = real_fork()
        if pid:
            forked.append(pid)
        return pid

    monkeypatch.setattr("digest.publish.output.os.fork", counted_fork)
    monkeypatch.setattr(outputs, "can_fork", lambda: True)
    return forked


def test_no_fork_beside_another_thread() -> None:
    """A fork copies only the calling thread: a lock another one held would stay held."""
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        assert not output.can_fork()
    finally:
        stop.set()
        other.join()


def test_the_forked_web_page_is_byte_for_byte_the_one_rendered_in_process(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, forks: list[int]) -> None:
    monkeypatch.setattr(outputs, "FORK_MIN_PAPERS", 10**9)
    assert ingest(tmp_path / "here", DAY1, DAY2) == (0, "")
    assert not forks
    monkeypatch.setattr(outputs, "FORK_MIN_PAPERS", 0)
    assert ingest(tmp_path / "forked", DAY1, DAY2) == (0, "")
    assert len(forks) == 2  # one per new digest
    assert tree(tmp_path / "forked" / "out") == tree(tmp_path / "here" / "out")


def test_a_template_error_in_the_forked_render_is_the_same_line_and_changes_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, forks: list[int]) -> None:
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "digest.html").write_text("<html>\n{% for p in papers %}{{ p.nope }}{% endfor %}\n")
    lines = {}
    for threshold in (10**9, 0):
        folder = tmp_path / str(threshold)
        assert ingest(folder, DAY1)[0] == 0
        before_out, before_store = tree(folder / "out"), counts(folder / "digest.sqlite3")
        monkeypatch.setattr(outputs, "FORK_MIN_PAPERS", threshold)
        code, lines[threshold] = ingest(folder, DAY2, templates=templates)
        monkeypatch.setattr(outputs, "FORK_MIN_PAPERS", 10**9)
        assert code == 2
        assert tree(folder / "out") == before_out and counts(folder / "digest.sqlite3") == before_store
    assert len(forks) == 1 and lines[0] == lines[10**9]
    assert lines[0].startswith("error: template digest.html (") and "'nope'" in lines[0]


# Run as `python -c SCRIPT ingest ...`: every digest forks, and the child (only it) does
# what MODE says once its temp file is open: die at once, or note its pid and hang.
CHILD = """
import os, signal, sys, time
from digest import outputs
from digest.publish import output
import digest.publish.output as output
outputs.FORK_MIN_PAPERS = 0
parent, real_fill, mode, note = os.getpid(), output._fill, sys.argv[1], sys.argv[2]
def fill(handle, temp, path, content):
    if os.getpid() != parent:
        os.write(handle, b"half a page")
        if mode == "die":
            os.kill(os.getpid(), signal.SIGKILL)
        with open(note, "w") as stream:
            stream.write(str(os.getpid()))
        time.sleep(120)
    return real_fill(handle, temp, path, content)
output._fill = fill
from digest.cli.main import main
sys.argv = ["digest", *sys.argv[3:]]
main()
"""


def run_child_script(tmp_path: Path, mode: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", CHILD, mode, str(tmp_path / "child.pid"),
                             *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=tmp_path)


def test_a_killed_render_child_rolls_the_ingest_back_and_leaves_no_temp(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'digest.sqlite3'}"
    assert ingest(tmp_path, DAY1)[0] == 0
    before_out, before_store = tree(tmp_path / "out"), counts(tmp_path / "digest.sqlite3")
    process = run_child_script(tmp_path, "die", "ingest", str(DAY2), "--db", db, "--out",
                               str(tmp_path / "out"))
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 2, stdout + stderr
    assert stderr == (f"error: {tmp_path / 'out/digests/2026-03-12.html'}: the process rendering "
                      "it ended without a report (killed by signal 9) — run the command again "
                      "(nothing was changed)\n")
    assert tree(tmp_path / "out") == before_out  # no output and no temp file
    assert counts(tmp_path / "digest.sqlite3") == before_store
    assert ingest(tmp_path, DAY2) == (0, "")
    assert (tmp_path / "out/digests/2026-03-12.html").is_file()


def test_a_killed_ingest_takes_its_render_child_with_it(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'digest.sqlite3'}"
    process = run_child_script(tmp_path, "hang", "ingest", str(DAY1), "--db", db)
    note = tmp_path / "child.pid"
    deadline = time.monotonic() + 60
    while not (note.is_file() and note.read_text()) and time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        time.sleep(0.05)
    child = int(note.read_text())
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=30)
    deadline = time.monotonic() + 10
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)
    # Nothing was committed; the rerun gets the run lock at once and makes the digest.
    rerun = subprocess.run([sys.executable, "-m", "digest", "ingest", str(DAY1), "--db", db],
                           capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert rerun.returncode == 0 and "already ingested" not in rerun.stdout, rerun.stderr
    files = tree(tmp_path / "out")
    assert b"half a page" not in files["digests/2026-03-11.html"]
    assert not [name for name in files if name.endswith(".tmp")]


def _alive(pid: int) -> bool:
    """True while `pid` runs (a zombie waiting for its reaper has ended)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status
