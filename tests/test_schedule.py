"""The daily schedule: one cycle per local date across DST changes, catch-up once after
downtime, a real scheduler firing a cycle, and a clean stop on SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger
from conftest import EXAMPLES

from digest.config import EmailSettings, Settings, SourceSettings
from digest.schedule import LocalCronTrigger, build_scheduler, catch_up, cycle_job, needs_catch_up
from digest.store import cycle_log, open_store


def fires(trigger: LocalCronTrigger, start: datetime, days: int) -> list[datetime]:
    out: list[datetime] = []
    previous, now = None, start
    while True:
        fire = trigger.get_next_fire_time(previous, now)
        if fire is None or fire > start + timedelta(days=days):
            return out
        out.append(fire)
        previous, now = fire, fire


@pytest.mark.parametrize("zone", ["Europe/Paris", "America/New_York", "Australia/Sydney"])
@pytest.mark.parametrize("clock", ["0 8 * * *", "30 2 * * *", "0 1 * * *", "30 0 * * *"])
@pytest.mark.parametrize("around", [date(2026, 3, 8), date(2026, 3, 29), date(2026, 10, 4),
                                    date(2026, 10, 25), date(2026, 11, 1)])
def test_one_cycle_per_local_date_across_dst_changes(zone: str, clock: str, around: date) -> None:
    tz = ZoneInfo(zone)
    start = datetime(around.year, around.month, around.day, 12, tzinfo=tz) - timedelta(days=5)
    times = fires(LocalCronTrigger(clock, zone), start, 10)
    local_dates = [f.astimezone(tz).date() for f in times]
    first = start.date() + timedelta(days=1)
    assert local_dates == [first + timedelta(days=n) for n in range(10)]  # none twice, none skipped
    assert all(b > a for a, b in zip(times, times[1:], strict=False))


def test_catch_up_once_after_downtime(tmp_path: Path) -> None:
    trigger = LocalCronTrigger("0 8 * * *", "UTC")
    now = datetime(2026, 3, 13, 12, tzinfo=UTC)
    assert needs_catch_up(None, trigger, now)
    assert needs_catch_up(datetime(2026, 3, 10, 8, tzinfo=UTC), trigger, now)
    assert not needs_catch_up(datetime(2026, 3, 13, 8, 0, 5, tzinfo=UTC), trigger, now)
    settings = _settings(tmp_path)
    store = open_store(settings.db_url)
    runs: list[int] = []
    job = cycle_job(store, settings)

    def counted() -> None:
        runs.append(1)
        job()

    assert catch_up(cycle_log.last_completed(store), trigger, counted, datetime.now(UTC))
    assert not catch_up(cycle_log.last_completed(store), trigger, counted, datetime.now(UTC))
    # One cycle over the folder: its three captures make one digest of all 13 papers.
    assert len(runs) == 1 and store.counts()["digests"] == 1 and store.counts()["papers"] == 13
    store.close()


def _settings(tmp_path: Path, cron: str = "0 8 * * *") -> Settings:
    folder = tmp_path / "captures"
    folder.mkdir(exist_ok=True)
    for name in ("2026-03-11.txt", "2026-03-12.txt", "2026-03-13.txt"):
        (folder / name).write_bytes((EXAMPLES / name).read_bytes())
    return Settings(db_url=f"sqlite:///{tmp_path / 'sched.sqlite3'}", out_dir=tmp_path / "out",
                    sources=(SourceSettings("captures", str(folder)),), email=EmailSettings())


def test_the_scheduler_fires_a_cycle(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    store = open_store(settings.db_url)
    scheduler = build_scheduler(settings, cycle_job(store, settings),
                                scheduler=BackgroundScheduler(timezone=UTC),
                                trigger=IntervalTrigger(seconds=0.2))
    job = scheduler.get_job("digest-cycle")
    assert (job.coalesce, job.max_instances, job.misfire_grace_time) == (True, 1, 3600)
    scheduler.start()
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with store.read() as tx:
                done = [c for c in tx.cycles.history() if c.status == "ok"]
            if len(done) >= 2:
                break
            time.sleep(0.1)
    finally:
        scheduler.shutdown(wait=True)
    assert len(done) >= 2  # a second cycle ran and found nothing new
    assert store.counts()["digests"] == 1
    store.close()


def test_schedule_command_catches_up_then_stops_on_sigterm(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    config = tmp_path / "digest.toml"
    config.write_text(f'[store]\nurl = "{settings.db_url}"\n[output]\ndir = "{settings.out_dir}"\n'
                      f'[schedule]\ncron = "0 8 * * *"\n[[sources]]\nname = "captures"\n'
                      f'location = "{tmp_path / "captures"}"\n')
    process = subprocess.Popen([sys.executable, "-m", "digest", "--config", str(config), "schedule"],
                               stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    assert process.stderr is not None
    lines = []
    for line in process.stderr:
        lines.append(line)
        if "next cycle at" in line:
            break
    process.send_signal(signal.SIGTERM)
    try:  # a hang is this test's failure, never the suite's
        _, rest = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        _, rest = process.communicate()
        pytest.fail("digest schedule did not stop within 60 s of SIGTERM:\n" + "".join(lines) + rest)
    log = "".join(lines) + rest
    assert process.returncode == 0, log
    assert "running one now" in log and "cycle ok: 3 snapshots, 13 new papers" in log
    assert "stopped" in rest


def test_the_stop_signal_only_notes_the_stop_and_the_main_thread_acts_within_a_poll() -> None:
    """SIGTERM arrives on the main thread between two bytecodes, maybe inside a lock of the
    scheduler's: the handler touches nothing but the stop event. The main thread, polling,
    then shuts the scheduler down itself, waiting for the running cycle; a stop noted while
    it is not woken (a signal handled late) still takes effect within the poll, where the
    main thread used to sleep in the scheduler's wait until the next cycle, hours away."""
    import threading

    from digest.schedule import run_until_stopped, stop_on_signals

    class Scheduler:
        def __init__(self) -> None:
            self.lock = threading.Lock()  # stands for the scheduler's own locks
            self.calls: list[str] = []

        def start(self) -> None:
            self.calls.append("start")

        def shutdown(self, wait: bool) -> None:
            with self.lock:
                self.calls.append(f"shutdown wait={wait}")

    scheduler = Scheduler()
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        stopping = stop_on_signals()
        handler = signal.getsignal(signal.SIGTERM)
        assert callable(handler)
        with scheduler.lock:  # the signal lands while the main thread holds it
            handler(signal.SIGTERM, None)
        assert stopping.is_set() and stopping.signal_name == "SIGTERM"
        assert scheduler.calls == []  # nothing done from inside the handler
        stopping.clear()
        threading.Timer(0.3, stopping.set).start()  # noted without waking the main thread
        started = time.monotonic()
        run_until_stopped(scheduler, stopping, poll=0.1)  # type: ignore[arg-type]
        assert time.monotonic() - started < 5
        assert scheduler.calls == ["start", "shutdown wait=True"]
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
