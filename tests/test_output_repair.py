"""Issue 8, item 3: outputs are never half-written, and a rerun repairs them.

Template errors are found before the commit (one line: template, file, line; exit 2; store
and out/ unchanged); a SIGKILL between the commit and the outputs, or a full disk, is
repaired by running the same command again.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import EXAMPLES, counts, tree

from digest.cli.main import main

DAY1, DAY2 = EXAMPLES / "2026-03-11.txt", EXAMPLES / "2026-03-12.txt"


def first_run_of_one_capture(tmp_path: Path) -> None:
    """A `digest run` over a folder source holding one capture, in tmp_path."""
    folder = tmp_path / "captures"
    folder.mkdir()
    (folder / "2026-03-11.txt").write_bytes(DAY1.read_bytes())
    (tmp_path / "digest.toml").write_text(f'[[sources]]\nname = "c"\nlocation = "{folder}"\n')
    assert CliRunner().invoke(main, ["run", "--no-send"]).exit_code == 0


@pytest.mark.parametrize(("template", "source", "message"), [
    ("digest.md", "# {{ digest.name }}\n\n{{ no_such_name }}\n",
     "template digest.md ({templates}/digest.md, line 3): 'no_such_name' is undefined"),
    ("index.html", "<html>\n{% for d in digests %}{{ d.nope.deeper }}{% endfor %}\n",
     "template index.html ({templates}/index.html, line 2): "),
    ("email.txt", "{% if digest %}\nno end\n", "template email.txt ({templates}/email.txt, line 2): "
     "Unexpected end of template. Jinja was looking for the following tags: 'elif' or 'else' "
     "or 'endif'."),
    ("email.html", "{{ papers | length }}\n{{ 1 / 0 }}\n", "template email.html "
     "({templates}/email.html, line 2): ZeroDivisionError: division by zero"),
    ("digest.html", '{% from "_paper.html" import paper_card %}{{ paper_card(papers[0], 1, 2, 3) }}',
     "template digest.html ({templates}/digest.html, line 1): TypeError: macro 'paper_card' "
     "takes not more than 3 argument(s)"),
], ids=["undefined-name", "undefined-attribute-in-index", "syntax-error", "raised-by-the-template",
        "macro-arguments"])
def test_a_broken_template_changes_nothing(tmp_path: Path, template: str, source: str,
                                           message: str) -> None:
    db = tmp_path / "digest.sqlite3"
    first = CliRunner().invoke(main, ["ingest", str(DAY1), "--db", f"sqlite:///{db}"])
    assert first.exit_code == 0, first.output
    before_out, before_store = tree(tmp_path / "out"), counts(db)
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / template).write_text(source)
    result = CliRunner().invoke(main, ["ingest", str(DAY2), "--db", f"sqlite:///{db}",
                                       "--templates", str(templates)])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: " + message.format(templates=templates))
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.output
    assert result.stderr.rstrip().endswith(
        "— fix the template (or remove the override to use the bundled one)")
    assert tree(tmp_path / "out") == before_out and counts(db) == before_store


KILL_AFTER_COMMIT = """
import os, signal, sys
import digest.publish.output as output
def die(*args):
    print("committed", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)  # the snapshot is committed, no output is in place
output.os.replace = die
from digest.cli.main import main
sys.argv = ["digest", *sys.argv[1:]]
main()
"""


def test_a_run_killed_between_commit_and_outputs_is_repaired_by_a_rerun(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'digest.sqlite3'}"
    killed = subprocess.run([sys.executable, "-c", KILL_AFTER_COMMIT, "ingest", str(DAY1), "--db", db],
                            capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert killed.returncode == -9 and "committed" in killed.stdout, killed.stderr
    assert counts(tmp_path / "digest.sqlite3")["digests"] == 1
    assert not (tmp_path / "out/digests/2026-03-11.md").exists()
    rerun = subprocess.run([sys.executable, "-m", "digest", "ingest", str(DAY1), "--db", db],
                           capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert rerun.returncode == 0 and "already ingested" in rerun.stdout, rerun.stderr
    files = tree(tmp_path / "out")
    for suffix in (".md", ".html", ".email.html", ".email.txt"):
        assert f"digests/2026-03-11{suffix}" in files
    assert b'href="digests/2026-03-11.html"' in files["index.html"]
    assert not [name for name in files if name.endswith(".tmp")]


def test_run_rewrites_missing_and_stale_outputs_and_removes_stray_temps(tmp_path: Path) -> None:
    first_run_of_one_capture(tmp_path)
    good = tree(tmp_path / "out")
    (tmp_path / "out/digests/2026-03-11.html").unlink()
    (tmp_path / "out/digests/2026-03-11.md").write_text("half a digest")
    (tmp_path / "out/digests/.2026-03-11.md.abc123.tmp").write_text("left by a killed run")
    (tmp_path / "out/.index.html.xyz.tmp").write_text("left by a killed run")
    again = CliRunner().invoke(main, ["run", "--no-send"])
    assert again.exit_code == 0 and "rewrote the missing outputs of 2026-03-11" in again.stderr
    assert tree(tmp_path / "out") == good


def test_a_full_disk_is_one_line_and_the_rerun_completes(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "digest.sqlite3"

    def no_space(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with monkeypatch.context() as patch:  # undone alone: the working folder stays put
        patch.setattr("digest.publish.output.os.fsync", no_space)
        result = CliRunner().invoke(main, ["ingest", str(DAY1), "--db", f"sqlite:///{db}"])
    assert result.exit_code == 2
    assert result.stderr == ("error: out/digests/2026-03-11.md: no space left on device — free "
                             "space, then run digest render\n")
    assert counts(db)["snapshots"] == 0  # rendered before the commit: nothing half-done
    assert not [p for p in (tmp_path / "out").rglob("*") if p.is_file()]
    again = CliRunner().invoke(main, ["ingest", str(DAY1), "--db", f"sqlite:///{db}"])
    assert again.exit_code == 0 and "7 new" in again.stdout
    assert (tmp_path / "out/digests/2026-03-11.md").is_file()


def test_a_steady_run_renders_nothing_again_but_restores_a_changed_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The newest digest's files are checked against what its last complete publish wrote
    (hashes), and the feeds and archive against the newest digest they were written with,
    not rendered again on every cycle; a file changed or missing since is rewritten."""
    import digest.outputs

    first_run_of_one_capture(tmp_path)
    good = tree(tmp_path / "out")
    rendered: list[str] = []
    real = digest.outputs.publish_digest
    monkeypatch.setattr(digest.outputs, "publish_digest",
                        lambda settings, info, *a, **k: rendered.append(info.name) or real(
                            settings, info, *a, **k))
    sites: list[int] = []
    real_site = digest.outputs.publish_site
    monkeypatch.setattr(digest.outputs, "publish_site",
                        lambda store, settings: sites.append(1) or real_site(store, settings))
    assert CliRunner().invoke(main, ["run", "--no-send"]).exit_code == 0
    assert rendered == [] and sites == [] and tree(tmp_path / "out") == good
    (tmp_path / "out/digests/2026-03-11.email.txt").write_text("edited by hand")
    (tmp_path / "out/feed.xml").unlink()
    assert CliRunner().invoke(main, ["run", "--no-send"]).exit_code == 0
    assert rendered == ["2026-03-11"] and sites == [1] and tree(tmp_path / "out") == good


def test_the_publish_manifest_notes_the_hashes_of_the_files_as_they_are(tmp_path: Path) -> None:
    """The manifest takes each file's hash as it was written (not read back): it must be the
    hash of the file on disk, after a first ingest, a second, and a repair."""
    import hashlib
    import json

    db = f"sqlite:///{tmp_path / 'digest.sqlite3'}"
    digests = tmp_path / "out" / "digests"

    def noted_matches(name: str) -> None:
        noted = json.loads((digests / ".published.json").read_text())
        assert noted["digest"] == name
        assert noted["sha256"] == {
            suffix: hashlib.sha256((digests / f"{name}{suffix}").read_bytes()).hexdigest()
            for suffix in (".md", ".html", ".email.html", ".email.txt")}

    for day in (DAY1, DAY2):
        result = CliRunner().invoke(main, ["ingest", str(day), "--db", db])
        assert result.exit_code == 0, result.output
        noted_matches(day.stem)
    (digests / "2026-03-12.html").write_text("edited by hand")
    assert CliRunner().invoke(main, ["ingest", str(DAY2), "--db", db]).exit_code == 0
    noted_matches("2026-03-12")


def test_a_hash_taken_as_written_is_not_used_for_a_file_changed_since(tmp_path: Path) -> None:
    """The hash kept from writing a file stands for it only while it is that file: an edit
    in place (same size, mtime put back) or a file put in its place is read again."""
    import hashlib
    import time

    from digest.publish.output import write_atomic, written_sha256

    path = tmp_path / "page.html"
    for content in (b"first version", "second version, a stream\n".splitlines(keepends=True)):
        write_atomic(path, content)
        assert written_sha256(path) == hashlib.sha256(path.read_bytes()).hexdigest()
    before = path.stat()
    time.sleep(0.02)
    with path.open("r+b") as stream:  # same size, then the old mtime back
        stream.write(b"S")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert written_sha256(path) is None
    write_atomic(path, b"third")
    assert written_sha256(path) == hashlib.sha256(b"third").hexdigest()
    write_atomic(path, b"third")  # already there: not written, still known
    assert written_sha256(path) == hashlib.sha256(b"third").hexdigest()
    replacement = tmp_path / "other.html"
    replacement.write_bytes(b"thirD")
    os.replace(replacement, path)
    assert written_sha256(path) is None


def test_a_changed_site_setting_reaches_the_feeds_archive_and_newest_digest_next_cycle(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The steady-cycle shortcut must not keep outputs rendered with old settings: a new
    base URL (or title, or template) is written by the next `run` and by `ingest` of a
    snapshot already in."""
    first_run_of_one_capture(tmp_path)
    assert "papers.example.org" not in (tmp_path / "out/feed.xml").read_text()
    monkeypatch.setenv("DIGEST_SITE_BASE_URL", "https://papers.example.org")
    assert CliRunner().invoke(main, ["run", "--no-send"]).exit_code == 0
    for name in ("feed.xml", "atom.xml", "index.html", "digests/2026-03-11.html"):
        assert "https://papers.example.org/" in (tmp_path / "out" / name).read_text(), name
    monkeypatch.setenv("DIGEST_SITE_TITLE", "Lab Reading List")
    result = CliRunner().invoke(main, ["ingest", str(tmp_path / "captures/2026-03-11.txt")])
    assert result.exit_code == 0 and "already ingested" in result.output
    for name in ("feed.xml", "index.html", "digests/2026-03-11.html"):
        assert "Lab Reading List" in (tmp_path / "out" / name).read_text(), name
    steady = tree(tmp_path / "out")
    assert CliRunner().invoke(main, ["run", "--no-send"]).exit_code == 0
    assert tree(tmp_path / "out") == steady
