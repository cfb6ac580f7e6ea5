"""Issue 12: a big digest's outputs are rendered and staged in a forked child, on the second
core, while the ingest writes its rows (publish.output.stage_aside). The same files, the
same one-line errors, and nothing committed or left behind when the child fails."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import EXAMPLES

import digest.errors
import digest.outputs
import digest.publish.output
from digest.cli.main import main
from digest.store import open_store

SNAPSHOT = str(EXAMPLES / "2026-03-12.txt")


class Forks:
    """Counts the forks of this process (the child counts nothing: it never returns here)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        real = os.fork

        def fork() -> int:
            pid = real()
            if pid:
                self.count += 1
            return pid

        monkeypatch.setattr(os, "fork", fork)


@pytest.fixture
def forks(monkeypatch: pytest.MonkeyPatch) -> Forks:
    """Fork as `digest ingest` does for a big day: the examples are small, and the test
    process may hold other tests' server threads (a CLI process holds none: see
    test_a_process_with_one_thread_forks_and_one_with_more_does_not)."""
    monkeypatch.setattr(digest.publish.output, "FORK_MIN_PAPERS", 1)
    monkeypatch.setattr(digest.publish.output, "_can_fork", lambda: True)
    return Forks(monkeypatch)


def ingest(folder: Path, *args: str) -> tuple[int, str]:
    folder.mkdir(exist_ok=True)
    result = CliRunner().invoke(main, ["ingest", "--db", f"sqlite:///{folder / 'd.sqlite3'}",
                                       "--out", str(folder / "out"), *args, SNAPSHOT])
    return result.exit_code, result.stderr


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def test_outputs_staged_aside_are_the_ones_staged_here(isolated: Path, forks: Forks,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    code, err = ingest(isolated / "aside")
    assert code == 0, err
    assert forks.count == 1
    monkeypatch.setattr(digest.publish.output, "FORK_MIN_PAPERS", 10**9)
    code, err = ingest(isolated / "here")
    assert code == 0, err
    assert forks.count == 1
    aside, here = files(isolated / "aside" / "out"), files(isolated / "here" / "out")
    assert aside == here
    assert "digests/2026-03-12.html" in aside and "digests/.published.json" in aside
    assert not [name for name in aside if name.endswith(".tmp")]


def test_a_template_error_in_the_child_is_one_line_and_commits_nothing(
        isolated: Path, forks: Forks) -> None:
    templates = isolated / "mine"
    templates.mkdir()
    (templates / "digest.md").write_text("# {{ no_such_name }}\n")
    code, err = ingest(isolated, "--templates", str(templates))
    assert forks.count == 1
    assert code == 2
    assert err.startswith("error: template digest.md (") and "'no_such_name' is undefined" in err
    assert len(err.strip().splitlines()) == 1
    store = open_store(f"sqlite:///{isolated / 'd.sqlite3'}")
    try:
        assert store.history() == []
    finally:
        store.close()
    assert not [p for p in (isolated / "out").rglob("*") if p.is_file()]


def test_a_child_killed_while_staging_fails_the_ingest_and_commits_nothing(
        isolated: Path, forks: Forks, monkeypatch: pytest.MonkeyPatch) -> None:
    real, parent = digest.outputs.digest_outputs, os.getpid()

    def killed(*args: object, **kwargs: object) -> object:
        if os.getpid() != parent:  # in the child
            os.kill(os.getpid(), signal.SIGKILL)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(digest.outputs, "digest_outputs", killed)
    code, err = ingest(isolated)
    assert (code, err.strip()) == (2, "error: the process staging the outputs: it ended without "
                                      "a report (killed, or out of memory) — run the command again")
    store = open_store(f"sqlite:///{isolated / 'd.sqlite3'}")
    try:
        assert store.history() == []
    finally:
        store.close()
    monkeypatch.setattr(digest.outputs, "digest_outputs", real)
    code, err = ingest(isolated)  # and the next run does it all
    assert code == 0, err
    assert (isolated / "out" / "digests" / "2026-03-12.md").is_file()


def test_a_process_with_one_thread_forks_and_one_with_more_does_not() -> None:
    """A fork copies the calling thread only: a lock another thread holds (the web app's,
    the scheduler's) would stay held in the child. So: no fork then, the work runs here."""
    probe = ("import threading, digest.publish.output as o\n"
             "print(o._can_fork())\n"
             "stop = threading.Event(); other = threading.Thread(target=stop.wait); other.start()\n"
             "print(o._can_fork()); stop.set(); other.join()\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "False"]


def test_with_another_thread_running_the_outputs_are_staged_here(
        isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(digest.publish.output, "FORK_MIN_PAPERS", 1)
    forks = Forks(monkeypatch)
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        code, err = ingest(isolated)
    finally:
        stop.set()
        other.join()
    assert code == 0, err
    assert forks.count == 0
    assert (isolated / "out" / "digests" / "2026-03-12.html").is_file()


KILLED_PARENT = """
import os, sys, time
import digest.outputs, digest.publish.output
digest.publish.output.FORK_MIN_PAPERS = 1
real_fork, real_outputs, parent = os.fork, digest.outputs.digest_outputs, os.getpid()

def fork():
    pid = real_fork()
    if pid:
        with open("child.pid", "w") as f:
            f.write(str(pid))
    return pid

def slow(*args, **kwargs):
    if os.getpid() != parent:
        while os.path.exists("hold"):  # the test kills the parent meanwhile
            time.sleep(0.02)
    return real_outputs(*args, **kwargs)

os.fork, digest.outputs.digest_outputs = fork, slow
sys.argv = ["digest", "ingest", "--db", "sqlite:///d.sqlite3", sys.argv[1]]
from digest.cli.main import main
main()
"""


def test_a_parent_killed_while_its_child_stages_commits_nothing_and_the_next_run_sweeps(
        isolated: Path) -> None:
    """SIGKILL of `digest ingest` while the child stages: nothing is committed; the child
    finishes (it holds the run lock it inherited till then) and its temps are strays that
    the next run removes before it ingests the snapshot again."""
    import time

    Path("hold").touch()
    run = subprocess.Popen([sys.executable, "-c", KILLED_PARENT, SNAPSHOT])
    deadline = time.monotonic() + 30
    while not Path("child.pid").exists() or not Path("child.pid").read_text():
        assert time.monotonic() < deadline and run.poll() is None
        time.sleep(0.02)
    child = int(Path("child.pid").read_text())
    run.kill()
    assert run.wait() == -signal.SIGKILL
    Path("hold").unlink()  # the child goes on, stages, finds no parent, leaves
    while Path(f"/proc/{child}").exists() and "zombie" not in _state(child):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    strays = list((isolated / "out" / "digests").glob(".*.tmp"))
    assert strays  # what the child staged, never installed
    store = open_store("sqlite:///d.sqlite3")
    try:
        assert store.history() == []
    finally:
        store.close()
    result = CliRunner().invoke(main, ["ingest", "--db", "sqlite:///d.sqlite3", SNAPSHOT])
    assert result.exit_code == 0, result.output
    assert not list((isolated / "out").rglob("*.tmp"))
    assert (isolated / "out" / "digests" / "2026-03-12.md").is_file()


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text().lower()
    except OSError:
        return "zombie"


@pytest.mark.parametrize("raised", [
    digest.errors.OutputError("out/digests/x.md", "no space left on device", "free space"),
    digest.errors.StoreError("s", "a store error", "fix it"),
])
def test_the_childs_error_is_raised_here_with_its_class_and_line(
        raised: Exception, monkeypatch: pytest.MonkeyPatch) -> None:
    """A full disk in the child is the parent's OutputError, word for word."""
    monkeypatch.setattr(digest.publish.output, "_can_fork", lambda: True)

    def failing() -> list[tuple[Path, Path]]:
        raise raised

    finish = digest.publish.output.stage_aside(digest.publish.output.FORK_MIN_PAPERS, failing)
    with pytest.raises(type(raised)) as caught:
        finish()
    assert caught.value.args == raised.args


def test_a_bug_in_the_child_is_raised_here_with_its_traceback(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(digest.publish.output, "_can_fork", lambda: True)

    def buggy() -> list[tuple[Path, Path]]:
        return [(Path("a"), Path("b"))][2]  # IndexError

    finish = digest.publish.output.stage_aside(digest.publish.output.FORK_MIN_PAPERS, buggy)
    with pytest.raises(RuntimeError, match="(?s)staging the outputs failed:.*IndexError"):
        finish()
