"""The subscriber and send commands, end to end through the command line (outbox transport)."""

from __future__ import annotations

import json
from email import message_from_bytes, policy
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from conftest import EXAMPLES

from digest.cli.main import main

NO_BASE_URL = ("warning: site.base_url: not set, so emails get relative links and no web unsubscribe "
               "or preferences link — set [site] base_url (or DIGEST_SITE_BASE_URL) to the public "
               "URL, e.g. https://papers.example.org\n")


def invoke(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False, env=env)
    return result.exit_code, result.stdout, result.stderr


def test_add_list_pause_resume_remove() -> None:
    assert invoke("subscribers", "add", "Ada@Example.ORG", "--name", "Ada L.",
                  "--topics", "reasoning,  diffusion models ,reasoning")[1] == (
        "added Ada@example.org (topics: reasoning, diffusion models)\n")
    assert invoke("subscribers", "add", "δοκιμή@παράδειγμα.δοκιμή")[1] == "added δοκιμή@παράδειγμα.δοκιμή\n"
    code, out, _ = invoke("subscribers", "list", "--json")
    assert code == 0
    assert [json.loads(line) for line in out.splitlines()] == [
        {"email": "Ada@example.org", "name": "Ada L.", "topics": ["reasoning", "diffusion models"],
         "status": "active", "list_others": False},
        {"email": "δοκιμή@παράδειγμα.δοκιμή", "name": None, "topics": [], "status": "active",
         "list_others": False},
    ]
    assert invoke("subscribers", "pause", "ada@example.org")[1] == "paused Ada@example.org\n"
    assert invoke("subscribers", "resume", "ADA@example.org")[1] == "resumed Ada@example.org\n"
    assert invoke("subscribers", "remove", "ada@example.org")[1] == "unsubscribed Ada@example.org\n"
    out = invoke("subscribers", "list")[1]
    assert out.splitlines()[-1] == "2 subscribers, 1 active"
    # Re-adding is explicit; their topics are kept unless new ones are given.
    assert invoke("subscribers", "add", "ada@example.org")[1] == (
        "re-subscribed ada@example.org (topics: reasoning, diffusion models)\n")


def test_list_others_flag_is_set_kept_and_cleared() -> None:
    """Issue 11: --list-others turns the titles-only list of the other papers on; an update
    without the flag keeps it; --no-list-others turns it off."""
    assert "--list-others" in invoke("subscribers", "add", "--help")[1]
    assert invoke("subscribers", "add", "ada@example.org", "--topics", "diffusion",
                  "--list-others")[1] == (
        "added ada@example.org (topics: diffusion) (also lists the other papers' titles)\n")
    assert json.loads(invoke("subscribers", "list", "--json")[1])["list_others"] is True
    assert "diffusion + other titles" in invoke("subscribers", "list")[1]
    invoke("subscribers", "add", "ada@example.org", "--name", "Ada")
    assert json.loads(invoke("subscribers", "list", "--json")[1])["list_others"] is True
    invoke("subscribers", "add", "ada@example.org", "--no-list-others")
    assert json.loads(invoke("subscribers", "list", "--json")[1])["list_others"] is False


def test_list_others_csv_round_trip_and_old_csvs(isolated: Path) -> None:
    invoke("subscribers", "add", "ada@example.org", "--topics", "diffusion", "--list-others")
    invoke("subscribers", "add", "bob@example.org", "--topics", "robots")
    exported = invoke("subscribers", "export")[1]
    assert exported.splitlines() == ["email,name,topics,status,list_others",
                                     "ada@example.org,,diffusion,active,yes",
                                     "bob@example.org,,robots,active,no"]
    (isolated / "again.csv").write_text(exported)
    other = ["--db", f"sqlite:///{isolated / 'b.sqlite3'}"]
    assert invoke("subscribers", "import", str(isolated / "again.csv"), *other)[1] == (
        "2 added, 0 updated, 0 skipped\n")
    assert invoke("subscribers", "export", *other)[1] == exported
    # An old CSV (no list_others column) imports, and leaves the setting as it is.
    (isolated / "old.csv").write_text("email,name,topics\nada@example.org,Ada,diffusion\n"
                                      "cy@example.org,,\n")
    assert invoke("subscribers", "import", str(isolated / "old.csv"), *other)[1] == (
        "1 added, 1 updated, 0 skipped\n")
    rows = [json.loads(line) for line in invoke("subscribers", "list", "--json", *other)[1].splitlines()]
    assert [(r["email"], r["list_others"]) for r in rows] == [
        ("ada@example.org", True), ("bob@example.org", False), ("cy@example.org", False)]
    (isolated / "bad.csv").write_text("email,list_others\ndee@example.org,maybe\n")
    code, out, err = invoke("subscribers", "import", str(isolated / "bad.csv"), *other)
    assert out == "0 added, 0 updated, 1 skipped\n"
    assert err == f"{isolated / 'bad.csv'}:2: skipped: list_others 'maybe' is not yes or no\n"


@pytest.mark.parametrize(("args", "message"), [
    (["add", "not-an-address"], "error: not-an-address: not a valid email address (An email "
     "address must have an @-sign.) — check the spelling, e.g. ada@example.org\n"),
    (["remove", "nobody@example.org"], "error: nobody@example.org: no such subscriber — see "
     "`digest subscribers list` for the addresses on file\n"),
    (["import", "missing.csv"], "error: missing.csv: cannot read (No such file or directory) — "
     "check the path\n"),
])
def test_subscriber_errors(args: list[str], message: str) -> None:
    assert invoke("subscribers", *args) == (2, "", message)


def test_import_reports_bad_rows_keeps_good_ones_and_respects_unsubscribes(isolated: Path) -> None:
    invoke("subscribers", "add", "gone@example.org")
    invoke("subscribers", "remove", "gone@example.org")
    csv_file = isolated / "people.csv"
    csv_file.write_text("email,name,topics\n"
                        "ada@example.org,Ada,\"reasoning, diffusion\"\n"
                        "broken-address,Nobody,\n"
                        "gone@example.org,Gone,\n"
                        "bob@example.org,,\n")
    code, out, err = invoke("subscribers", "import", str(csv_file))
    assert code == 0
    assert out == "2 added, 0 updated, 2 skipped\n"
    assert err.splitlines() == [
        f"{csv_file}:3: skipped: not a valid email address (An email address must have an @-sign.)",
        f"{csv_file}:4: skipped: gone@example.org is unsubscribed here: left as it is (add it with "
        "`digest subscribers add` if they asked)",
    ]
    exported = invoke("subscribers", "export")[1]
    assert exported.splitlines() == [
        "email,name,topics,status,list_others", "gone@example.org,,,unsubscribed,no",
        'ada@example.org,Ada,"reasoning, diffusion",active,no', "bob@example.org,,,active,no"]
    # The export imports again into a fresh store unchanged.
    (isolated / "again.csv").write_text(exported)
    assert invoke("subscribers", "import", str(isolated / "again.csv"), "--db",
                  f"sqlite:///{isolated / 'b.sqlite3'}")[1] == (
                      "2 added, 0 updated, 1 kept paused or unsubscribed, 0 skipped\n")


def test_send_to_the_outbox_then_nothing_twice(isolated: Path) -> None:
    invoke("subscribers", "add", "ada@example.org", "--name", "Ada")
    invoke("ingest", str(EXAMPLES / "2026-03-11.txt"))
    assert invoke("send", "--dry-run") == (0, "would send 2026-03-11 to 1 subscriber (0 skipped)\n",
                                           NO_BASE_URL)
    assert invoke("send") == (0, "1 sent, 0 skipped, 0 failed\n", NO_BASE_URL)
    (eml,) = (isolated / "out/outbox/2026-03-11").glob("*.eml")
    message = message_from_bytes(eml.read_bytes(), policy=policy.default)
    assert message["To"] == "Ada <ada@example.org>"
    assert invoke("send") == (0, "0 sent, 0 skipped, 0 failed\n", NO_BASE_URL)
    assert invoke("send", "--dry-run") == (0, "nothing to send\n", NO_BASE_URL)


def test_preview_copy_is_outside_the_log(isolated: Path) -> None:
    invoke("ingest", str(EXAMPLES / "2026-03-11.txt"))
    code, out, _ = invoke("send", "--to", "guest@example.org", "--digest", "2026-03-11")
    assert code == 0 and out.startswith("sent 2026-03-11 to guest@example.org: 250 written to")
    assert invoke("send", "--dry-run")[1] == "nothing to send\n"
    assert invoke("send", "--to", "guest@example.org")[0] == 2
    code, _, err = invoke("send", "--to", "guest@example.org", "--digest", "2031-01-01")
    assert code == 2 and err == NO_BASE_URL + ("error: 2031-01-01: no such digest — see `digest "
                                               "history` for digest names\n")


def test_baseline_then_send_in_one_step(isolated: Path) -> None:
    invoke("subscribers", "add", "ada@example.org")
    code, out, _ = invoke("ingest", "--baseline", str(EXAMPLES / "2026-03-11.txt"))
    assert code == 0 and out == "2026-03-11  7 papers  7 new\n"
    assert not (isolated / "out/digests").exists()
    code, out, _ = invoke("ingest", "--send", str(EXAMPLES / "2026-03-12.txt"))
    assert code == 0 and out.splitlines() == [
        "2026-03-12  5 papers  3 new  → out/digests/2026-03-12.md", "1 sent, 0 skipped, 0 failed"]


def test_held_digest_is_reported_and_released(isolated: Path) -> None:
    invoke("subscribers", "add", "ada@example.org")
    code, out, err = invoke("ingest", str(EXAMPLES / "2026-03-11.txt"),
                            env={"DIGEST_EMAIL_MAX_NEW": "5"})
    assert code == 0 and err == ("held: 2026-03-11: 7 new papers is more than max_new (5) — check "
                                 "it, then: digest release 2026-03-11\n")
    code, out, _ = invoke("send")
    assert out.splitlines() == ["held: 2026-03-11: 7 new papers is more than max_new (5) — check "
                                "it, then: digest release 2026-03-11", "0 sent, 0 skipped, 0 failed"]
    assert invoke("release", "2026-03-11")[1] == "released 2026-03-11\n1 sent, 0 skipped, 0 failed\n"
    code, _, err = invoke("release", "2026-03-11")
    assert code == 2 and err.startswith("error: 2026-03-11: no held digest by that name")


@pytest.mark.parametrize(("env", "message"), [
    ({"DIGEST_EMAIL_SMTP_HOST": "127.0.0.1"}, "error: DIGEST_SECRET: not set, and sending by SMTP "
     "needs it to sign unsubscribe links — make one with: python -c 'import secrets; "
     "print(secrets.token_urlsafe(32))'\n"),
    ({"DIGEST_EMAIL_SMTP_SECURITY": "ssl3"}, "error: DIGEST_EMAIL_SMTP_SECURITY: 'ssl3' is not a "
     "security mode — use none, starttls or tls\n"),
    ({"DIGEST_EMAIL_FROM": "Papers <nope>"}, "error: DIGEST_EMAIL_FROM: 'Papers <nope>' has no "
     "valid address — set it like: Daily Papers <papers@example.org>\n"),
    ({"DIGEST_EMAIL_SMTP_PORT": "smtp"}, "error: DIGEST_EMAIL_SMTP_PORT: 'smtp' is not a positive "
     "whole number — set it like DIGEST_EMAIL_SMTP_PORT=587\n"),
])
def test_email_settings_errors(env: dict[str, str], message: str) -> None:
    assert invoke("send", env=env) == (2, "", message)


def test_every_command_and_subcommand_has_help_with_an_example() -> None:
    def walk(group: click.Group, prefix: list[str]) -> list[list[str]]:
        found = []
        for name, command in group.commands.items():
            found.append(prefix + [name])
            if isinstance(command, click.Group):
                found += walk(command, prefix + [name])
        return found

    paths = walk(main, [])
    assert ["subscribers", "import"] in paths and ["send"] in paths
    for path in paths:
        code, out, _ = invoke(*path, "--help")
        assert code == 0 and "Example" in out, path
