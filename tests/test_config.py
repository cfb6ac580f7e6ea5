"""Settings from digest.toml and DIGEST_* variables: precedence, validation, check, init."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from digest.cli.main import main
from digest.config import load_settings


def invoke(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False, env=env)
    return result.exit_code, result.stdout, result.stderr


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_precedence_option_env_file_default(isolated: Path) -> None:
    write(isolated / "digest.toml", '[store]\nurl = "sqlite:///file.sqlite3"\n'
          '[site]\ntitle = "From File"\nfeed_size = 50\n[output]\ndir = "file-out"\n')
    settings = load_settings(env={})
    assert (settings.db_url, settings.site.title, settings.feed_size, str(settings.out_dir)) == (
        "sqlite:///file.sqlite3", "From File", 50, "file-out")
    env = {"DIGEST_SITE_TITLE": "From Env", "DIGEST_STORE_URL": "sqlite:///env.sqlite3",
           "DIGEST_OUT": "env-out"}
    settings = load_settings(env=env)
    assert (settings.db_url, settings.site.title, str(settings.out_dir)) == (
        "sqlite:///env.sqlite3", "From Env", "env-out")
    assert load_settings(db="sqlite:///opt.sqlite3", env=env).db_url == "sqlite:///opt.sqlite3"
    assert load_settings(env={"DIGEST_DB": "sqlite:///short.sqlite3"}).db_url == "sqlite:///short.sqlite3"
    assert load_settings(env={}, config=str(write(isolated / "other.toml", ""))).db_url == (
        "sqlite:///digest.sqlite3")


def test_sources_and_schedule_from_the_file(isolated: Path) -> None:
    write(isolated / "digest.toml", '[schedule]\ncron = "30 6 * * 1-5"\ntimezone = "Europe/Paris"\n'
          '[[sources]]\nname = "hf"\nlocation = "https://huggingface.co/api/daily_papers"\n'
          '[[sources]]\nname = "captures"\nlocation = "captures/"\nformat = "dailypage"\n')
    settings = load_settings(env={})
    assert [(s.name, s.format) for s in settings.sources] == [("hf", "auto"), ("captures", "dailypage")]
    assert (settings.schedule.cron, settings.schedule.timezone) == ("30 6 * * 1-5", "Europe/Paris")


@pytest.mark.parametrize(("toml", "env", "message"), [
    ('[schedule]\ncron = "0 25 * * *"\n', {}, 'error: digest.toml: schedule.cron: "0 25 * * *" is '
     'not a valid cron expression (hour 25) — use five fields, e.g. "0 8 * * *" for 08:00 every day'),
    ("", {"DIGEST_SCHEDULE_CRON": "0 8 * *"}, 'error: DIGEST_SCHEDULE_CRON: "0 8 * *" is not a valid '
     'cron expression (has 4 fields, not 5 (minute hour day month weekday)) — use five fields, e.g. '
     '"0 8 * * *" for 08:00 every day'),
    ('[web]\nsubscribe_rate = "5 every 10 minutes"\n', {}, "error: digest.toml: web.subscribe_rate: "
     "'5 every 10 minutes' is not a rate — write it like \"5 per 10 minutes\" or \"1 per hour\""),
    ('[schedule]\ntimezone = "Mars/Olympus"\n', {}, "error: digest.toml: schedule.timezone: "
     "'Mars/Olympus' is not a time zone — use a name like UTC or Europe/Paris"),
    ("[sitee]\ntitle = 'x'\n", {}, "error: digest.toml: unknown section [sitee] — use one of: "
     "alerts, email, enrich, fetch, output, schedule, site, sources, store, web"),
    ("[site]\ntitel = 'x'\n", {}, "error: digest.toml: site.titel: unknown setting — [site] takes: "
     "title, base_url, feed_size, topic_feeds"),
    ("[email]\nsmtp_password = 'hunter2'\n", {}, "error: digest.toml: email.smtp_password: secrets "
     "are read from the environment only — remove it and set DIGEST_EMAIL_SMTP_PASSWORD"),
    ("[site]\nfeed_size = 0\n", {}, "error: digest.toml: site.feed_size: 0 is not a positive whole "
     "number — set it like feed_size = 200 under [site]"),
    ("", {"DIGEST_SITE_FEED_SIZE": "0"}, "error: DIGEST_SITE_FEED_SIZE: '0' is not a positive whole "
     "number — set it like DIGEST_SITE_FEED_SIZE=200"),
    ("[email]\nmax_new = [1]\n", {}, "error: digest.toml: email.max_new: [1] is not a positive "
     "whole number — set it like max_new = 300 under [email]"),
    ("[email]\nretries = -1\n", {}, "error: digest.toml: email.retries: -1 is not a whole number, "
     "0 or more — set it like retries = 4 under [email]"),
    ("[site\n", {}, "error: digest.toml: not valid TOML (Expected ']' at the end of a table "
     "declaration (at line 1, column 6)) — fix the syntax at that line"),
    ("[[sources]]\nname = 'a'\n", {}, "error: digest.toml: sources[1].location: missing — set a "
     "file, a folder or an http(s) URL"),
    ("[[sources]]\nname = 'a'\nlocation = '.'\nformat = 'pdf'\n", {}, "error: digest.toml: "
     "sources[1].format: 'pdf' is not a format — use one of: auto, dailypage, hf-json, hf-html, "
     "arxiv, feed"),
    ("[alerts]\nemail = 'ops'\n", {}, "error: digest.toml: alerts.email: 'ops' is not an email "
     "address — set it like ops@example.org"),
])
def test_config_errors_are_one_line_before_anything_runs(isolated: Path, toml: str,
                                                         env: dict[str, str], message: str) -> None:
    write(isolated / "digest.toml", toml)
    code, out, err = invoke("config", "check", env=env)
    assert (code, out, err) == (2, "", message + "\n")
    code, _, err = invoke("ingest", "missing.txt", env=env)
    assert code == 2 and err == message + "\n"
    assert not (isolated / "digest.sqlite3").exists()


def test_every_bad_setting_is_reported_not_just_the_first_of_its_section(isolated: Path) -> None:
    """Two bad values in one section, an unknown key beside bad values, a duplicate source
    name beside a missing folder: one line for each, exit 2."""
    write(isolated / "e2.toml", '[email]\nsmtp_security = "ssl"\nmax_new = "lots"\n')
    code, out, err = invoke("--config", "e2.toml", "config", "check")
    assert (code, out) == (2, "") and err.splitlines() == [
        "error: e2.toml: email.smtp_security: 'ssl' is not a security mode — use none, starttls "
        "or tls",
        "error: e2.toml: email.max_new: 'lots' is not a positive whole number — set it like "
        "max_new = 300 under [email]"]
    write(isolated / "digest.toml", '[site]\ntitel = "x"\nfeed_size = 0\n[enrich]\nbudget = "a"\n'
          'batch = 0\n[[sources]]\nname = "a"\nlocation = "https://example.org/a"\n'
          '[[sources]]\nname = "a"\nlocation = "no-such-folder"\n')
    code, _, err = invoke("config", "check", env={"DIGEST_EMAIL_RETRIES": "-2"})
    assert code == 2 and [line.split(" — ")[0] for line in err.splitlines()] == [
        "error: digest.toml: site.titel: unknown setting",
        "error: digest.toml: site.feed_size: 0 is not a positive whole number",
        "error: DIGEST_EMAIL_RETRIES: '-2' is not a whole number, 0 or more",
        "error: digest.toml: enrich.budget: 'a' is not a positive whole number",
        "error: digest.toml: enrich.batch: 0 is not a positive whole number",
        "error: digest.toml: sources[2].name: 'a' is used twice",
        "error: digest.toml: sources[2].location: 'no-such-folder': no such file or folder"]
    assert not (isolated / "digest.sqlite3").exists()
    write(isolated / "digest.toml", '[[sources]]\nurl = "x"\nlocation = "ftp://x"\nformat = "pdf"\n')
    code, _, err = invoke("config", "check", env={})
    assert code == 2 and [line.split(" — ")[0] for line in err.splitlines()] == [
        "error: digest.toml: sources[1].url: unknown setting",
        "error: digest.toml: sources[1].name: missing",
        "error: digest.toml: sources[1].location: 'ftp://x': ftp:// is not supported",
        "error: digest.toml: sources[1].format: 'pdf' is not a format"]
    # A table with a problem still has its name and path checked: one round names them all.
    write(isolated / "digest.toml", '[[sources]]\nname = "a"\nlocation = "nope/missing"\n'
          'format = "xx"\nextra = 1\n[[sources]]\nname = "a"\nlocation = "."\n')
    code, _, err = invoke("config", "check", env={})
    assert code == 2 and [line.split(" — ")[0] for line in err.splitlines()] == [
        "error: digest.toml: sources[1].extra: unknown setting",
        "error: digest.toml: sources[1].format: 'xx' is not a format",
        "error: digest.toml: sources[1].location: 'nope/missing': no such file or folder",
        "error: digest.toml: sources[2].name: 'a' is used twice"]


def test_check_masks_secrets_and_init_writes_a_valid_example(isolated: Path) -> None:
    code, out, _ = invoke("init")
    assert code == 0 and (isolated / "digest.toml").is_file()
    assert invoke("init")[0] == 2  # never overwrites without --force
    code, out, _ = invoke("config", "check", env={"DIGEST_SECRET": "s3cret-value-0123456789abcdefghijklmn",
                                                   "DIGEST_EMAIL_SMTP_PASSWORD": "pw-value"})
    assert code == 0 and out.endswith("ok\n")
    assert "s3cret-value" not in out and "pw-value" not in out
    assert "DIGEST_SECRET = (set)" in out and "DIGEST_EMAIL_SMTP_PASSWORD = (set)" in out
    assert "sources[1].location = 'https://huggingface.co/api/daily_papers'" in out


def test_check_prints_the_names_the_file_uses(isolated: Path) -> None:
    """Each line is a digest.toml key (or a secret's variable, or a source's key), never an
    internal field name like db_url or from_address, nor a value that cannot be set."""
    from digest.config import KEYS

    write(isolated / "digest.toml", '[store]\nurl = "sqlite:///x.sqlite3"\n[email]\n'
          'from = "Papers <p@example.org>"\n[[sources]]\nname = "hf"\n'
          'location = "https://example.org/a"\n')
    code, out, _ = invoke("config", "check", env={})
    names = [line.split(" = ")[0] for line in out.splitlines()[1:-2]]
    assert code == 0 and names == [f"{s}.{k}" for s, k in KEYS] + [
        "DIGEST_EMAIL_SMTP_PASSWORD", "DIGEST_SECRET", "sources[1].name", "sources[1].location",
        "sources[1].format"]
    assert "store.url = 'sqlite:///x.sqlite3'" in out
    assert "email.from = 'Papers <p@example.org>'" in out and "output.dir = 'out'" in out


def test_config_option_and_variable(isolated: Path) -> None:
    write(isolated / "elsewhere.toml", "[site]\ntitle = 'Elsewhere'\n")
    assert "site.title = 'Elsewhere'" in invoke("--config", "elsewhere.toml", "config", "check")[1]
    assert "site.title = 'Elsewhere'" in invoke("config", "check",
                                                env={"DIGEST_CONFIG": "elsewhere.toml"})[1]
    code, _, err = invoke("--config", "missing.toml", "config", "check")
    assert code == 2 and err.startswith("error: missing.toml: no such file")


def test_a_missing_templates_folder_names_where_it_was_given(tmp_path: Path) -> None:
    """The option when it came from the command line, the file and key when from the file."""
    from click.testing import CliRunner

    from digest.cli.main import main

    given = CliRunner().invoke(main, ["render", "--templates", "nope"])
    assert given.exit_code == 2 and given.stderr.startswith(
        "error: --templates: folder 'nope' does not exist — ")
    (tmp_path / "digest.toml").write_text('[output]\ntemplates = "nope"\n')
    filed = CliRunner().invoke(main, ["render"])
    assert filed.exit_code == 2 and filed.stderr.startswith(
        "error: digest.toml: output.templates: folder 'nope' does not exist — ")


def test_the_init_example_holds_the_defaults(tmp_path: Path) -> None:
    from digest.cli.config import example_config
    from digest.config import Settings

    path = tmp_path / "digest.toml"
    path.write_text(example_config())
    settings, default = load_settings(config=str(path), env={}), Settings()
    assert (settings.site, settings.feed_size, settings.schedule, settings.enrich, settings.web) == (
        default.site, default.feed_size, default.schedule, default.enrich, default.web)
    assert settings.email.max_new == default.email.max_new
    assert settings.email.from_name == default.site.title == "Daily Papers"
    assert 'cron = "0 8 * * *"' in example_config()


def test_the_init_example_names_every_setting(tmp_path: Path) -> None:
    """Every key of config.KEYS is in `digest init`'s file, under its own section (commented
    where the default is best left alone), and the file with those lines uncommented loads."""
    import re

    from digest.cli.config import example_config
    from digest.config import KEYS

    settings_part = example_config().split("# One [[sources]]")[0]
    found, section = set(), None
    for line in settings_part.splitlines():
        if match := re.match(r"#? ?\[(\w+)\]", line):
            section = match[1]
        elif match := re.match(r"#? ?(\w+) = ", line):
            found.add((section, match[1]))
    assert found == set(KEYS)
    uncommented = re.sub(r"(?m)^# (\[\w+\]|\w+ = )", r"\1", settings_part)
    path = tmp_path / "all.toml"
    path.write_text(uncommented)
    (tmp_path / "my-templates").mkdir()
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tmp_path)
        settings = load_settings(config=str(path), env={})
    assert settings.fetch.deadline == 120 and settings.enrich.batch == 20
    assert settings.email.smtp_host == "smtp.example.org"


def test_the_default_rates_and_cron_are_valid() -> None:
    """Settings parse a rate or a cron expression only when one is given (a steady cycle then
    never imports `limits` or APScheduler): the defaults are checked here instead."""
    from limits import parse

    from digest.config import ScheduleSettings, WebSettings, check_cron

    for rate in (WebSettings.subscribe_rate, WebSettings.confirm_rate):
        assert parse(rate).amount >= 1
    assert check_cron(ScheduleSettings.cron, ScheduleSettings.timezone) is None
