"""`digest schedule`: run a cycle on a cron schedule, forever, with APScheduler 3.x.

The scheduler only connects a trigger to `pipeline.run_cycle`. It coalesces missed runs
into one, never runs two at once, and lets a late run start within `misfire_grace`
seconds (APScheduler's default of 1 s silently skips a run after a pause or a sleep).
At start it catches up once: if the last completed cycle is older than the last
scheduled time (the machine was down), it runs one cycle right away. A failed cycle is
logged and the schedule goes on; SIGTERM or SIGINT stops it after the current cycle.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from types import FrameType
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger

from digest.config import Settings

if TYPE_CHECKING:
    from digest.store import Store

log = logging.getLogger(__name__)
_UTC = ZoneInfo("UTC")
JOB_ID = "digest-cycle"


class LocalCronTrigger(BaseTrigger):  # type: ignore[misc]
    """A cron schedule in a local time zone, computed on the wall clock.

    APScheduler 3.x's CronTrigger, given a zone with DST, skips a whole day after the
    spring change (a daily 00:30 job in New York does not run on the Monday after) and
    runs twice when clocks fall back (01:30 summer time, then 01:30 winter time). Here
    the cron fields are matched against naive wall-clock time (a zone without DST, so
    no gaps and no repeats), and each wall-clock fire time is then placed in the real
    zone: a time that does not exist that day (inside the spring gap) fires at the
    instant that local time would have been, and a repeated one fires once, the first.
    """

    def __init__(self, expression: str, timezone: str) -> None:
        self.zone = ZoneInfo(timezone)
        self.expression = expression
        self.cron = CronTrigger.from_crontab(expression, timezone=_UTC)

    def get_next_fire_time(self, previous_fire_time: datetime | None,
                           now: datetime) -> datetime | None:
        wall_now = _wall(now, self.zone)
        if previous_fire_time is not None:
            wall_now = max(wall_now, _wall(previous_fire_time, self.zone) + timedelta(microseconds=1))
        wall_next = self.cron.get_next_fire_time(None, wall_now.replace(tzinfo=_UTC))
        if wall_next is None:
            return None
        local: datetime = wall_next.replace(tzinfo=self.zone)  # fold=0: the first of two
        return local

    def __str__(self) -> str:
        return f"cron[{self.expression}] in {self.zone.key}"


def _wall(moment: datetime, zone: ZoneInfo) -> datetime:
    return moment.astimezone(zone).replace(tzinfo=None)


def last_scheduled(trigger: BaseTrigger, now: datetime, lookback: timedelta = timedelta(days=8)
                   ) -> datetime | None:
    """The latest fire time at or before `now` (within `lookback`)."""
    moment, previous = now - lookback, None
    found = None
    while True:
        fire = trigger.get_next_fire_time(previous, moment)
        if fire is None or fire > now:
            return found
        found, previous, moment = fire, fire, fire + timedelta(seconds=1)


def needs_catch_up(last_completed: datetime | None, trigger: BaseTrigger, now: datetime) -> bool:
    """True when a scheduled run was missed: the last completed cycle predates it."""
    scheduled = last_scheduled(trigger, now)
    return scheduled is not None and (last_completed is None or last_completed < scheduled)


def build_scheduler(settings: Settings, cycle: Callable[[], None],
                    scheduler: BaseScheduler | None = None,
                    trigger: BaseTrigger | None = None) -> BaseScheduler:
    """A scheduler with the one cycle job (a BackgroundScheduler unless one is given: the
    main thread waits for a stop, see `run_until_stopped`)."""
    scheduler = scheduler or BackgroundScheduler(timezone=ZoneInfo("UTC"))
    scheduler.add_job(
        cycle, trigger or LocalCronTrigger(settings.schedule.cron, settings.schedule.timezone),
        id=JOB_ID, coalesce=True, max_instances=1,
        misfire_grace_time=settings.schedule.misfire_grace, replace_existing=True)
    return scheduler


def announce_when_started(scheduler: BaseScheduler, trigger: BaseTrigger, settings: Settings,
                          stopping: threading.Event) -> None:
    """Once the scheduler runs: stop at once if a signal came during start-up, else log
    the next fire time."""
    from apscheduler.events import EVENT_SCHEDULER_STARTED

    def started(_event: object) -> None:
        if stopping.is_set():  # run_until_stopped shuts it down at once
            return
        upcoming = trigger.get_next_fire_time(None, datetime.now(_UTC))
        log.info("scheduled: %s (%s); next cycle at %s", settings.schedule.cron,
                 settings.schedule.timezone,
                 upcoming.isoformat(timespec="minutes") if upcoming else "never")

    scheduler.add_listener(started, EVENT_SCHEDULER_STARTED)


class StopRequest(threading.Event):
    """Set when SIGTERM or SIGINT came; `signal_name` says which came first."""

    signal_name = "a stop"


def stop_on_signals() -> StopRequest:
    """SIGTERM/SIGINT: let the current cycle finish (the catch-up one too), then stop.
    Returns the event that says a stop was asked for; `run_until_stopped` acts on it.

    The handler only notes the signal and sets the event (nothing of the event's lock is
    ever held by the main thread: it only polls `is_set`). It runs on the main thread between
    two bytecodes, maybe inside a write to stderr or a lock of the scheduler's; logging or
    shutting down from there could wait for ever, so the main thread does both itself."""
    stopping = StopRequest()

    def handler(signum: int, _frame: FrameType | None) -> None:
        if not stopping.is_set():
            stopping.signal_name = signal.Signals(signum).name
        stopping.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return stopping


def run_until_stopped(scheduler: BaseScheduler, stopping: StopRequest,
                      poll: float = 0.5) -> None:
    """Start the (background) scheduler and wait on the main thread for a stop, waking every
    `poll` seconds: a stop takes effect within that, wherever the signal landed (a main
    thread asleep in one long wait until the next cycle, hours away, heard a SIGTERM only
    when the wait ended: `digest schedule` once did not stop within 60 s). Then wait for
    the running cycle and shut down."""
    scheduler.start()
    while not stopping.is_set():
        time.sleep(poll)
    log.info("received %s: stopping after the current cycle", stopping.signal_name)
    scheduler.shutdown(wait=True)


def cycle_job(store: Store, settings: Settings) -> Callable[[], None]:
    """The scheduled job: one cycle, logged; a failure is logged and the schedule goes on."""
    from datetime import UTC

    from sqlalchemy.exc import SQLAlchemyError

    from digest.errors import DigestError
    from digest.pipeline import run_cycle

    def job() -> None:
        try:
            report = run_cycle(store, settings, datetime.now(UTC))
        except DigestError as exc:
            log.error("cycle failed: %s", exc.message)
            return
        except SQLAlchemyError as exc:
            log.error("cycle failed: store: %s", str(getattr(exc, "orig", exc)).splitlines()[0])
            return
        for name, reason in report.failures:
            log.error("source %s failed: %s", name, reason)
        for note in report.notices:  # recoveries, permanent redirects, skipped entries
            log.warning("%s", note)
        (log.info if report.ok else log.error)("%s", report.line())

    return job


def catch_up(last_completed: datetime | None, trigger: BaseTrigger, job: Callable[[], None],
             now: datetime) -> bool:
    """Run one cycle now if the machine was down at the last scheduled time."""
    if not needs_catch_up(last_completed, trigger, now):
        return False
    log.info("the last scheduled cycle did not run (last completed: %s): running one now",
             last_completed.isoformat(timespec="minutes") if last_completed else "never")
    job()
    return True
