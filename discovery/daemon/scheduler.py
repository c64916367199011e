"""The APScheduler job that runs the daemon's cycles: at once, then every interval, one at a time.

`CycleJob` owns the scheduler and the job only. What a run does (an election step, then a
cycle or a follower's registry read) is the `run` coroutine the daemon hands it; a run that
comes due while one is still going is skipped and told to `on_skipped`, never queued.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, JobSubmissionEvent
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from discovery.core.config import Config

log = logging.getLogger(__name__)

JOB_ID = "discovery-cycle"
# The job is stalled when no run has started (or been skipped as overlapping) for this many poll
# intervals plus their jitter. APScheduler keeps its times on the wall clock: a backward clock
# step would otherwise leave the next run hours or days away while /healthz stays green.
WATCHDOG_INTERVALS = 3


def make_trigger(config: Config) -> IntervalTrigger:
    """Every poll_interval, each run delayed by a fresh random 0..jitter seconds.

    APScheduler's interval trigger adds the jitter to the previous (jittered) run time, so the
    gap between two runs is poll_interval + U(0, jitter) and daemons started together drift
    apart instead of meeting again every interval.
    """
    jitter = config.poll_jitter_seconds
    return IntervalTrigger(seconds=config.poll_interval, jitter=jitter or None, timezone=UTC)


class CycleJob:
    """The one interval job, and the task of the run under way."""

    def __init__(
        self,
        *,
        run: Callable[[], Coroutine[Any, Any, None]],
        on_skipped: Callable[[float | None], None],
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._run = run
        self._on_skipped = on_skipped  # gets the time the next run is due, if known
        self.scheduler: AsyncIOScheduler | None = None
        self._job_task: asyncio.Task[Any] | None = None
        self.run_task: asyncio.Task[None] | None = None
        self._again = False  # a run asked for while one was going: it follows at once
        self._stopping = False
        self._monotonic = monotonic
        self._heartbeat = monotonic()  # when a run last started or was skipped
        self._stalled = False  # the watchdog found the job stalled since the last run

    def start(self, config: Config) -> None:
        scheduler = AsyncIOScheduler(event_loop=asyncio.get_running_loop(), timezone=UTC)
        scheduler.add_listener(self._skipped, EVENT_JOB_MAX_INSTANCES)
        scheduler.add_job(
            self._scheduled,
            trigger=make_trigger(config),
            id=JOB_ID,
            name="discovery cycle",
            # The first cycle at once (its election step first: a follower only reads the
            # registry).
            next_run_time=datetime.now(UTC),
            # Never two cycles at once: a run that comes due while one is still going is
            # skipped (and counted by on_skipped), not queued behind it.
            max_instances=1,
            # Runs missed together (loop busy, host suspended) run once, not back to back...
            coalesce=True,
            # ...and however late they are: dropping a late run would leave the registry stale
            # for one more whole interval, and a late cycle is as correct as a punctual one.
            misfire_grace_time=None,
        )
        scheduler.start()
        self.scheduler = scheduler

    @property
    def running(self) -> bool:
        """A run (its election step, then a cycle or a follower's read) is under way."""
        job = self._job_task
        return job is not None and not job.done()

    @property
    def next_at(self) -> float | None:
        job = self.scheduler.get_job(JOB_ID) if self.scheduler is not None else None
        if job is None or job.next_run_time is None:
            return None
        timestamp: float = job.next_run_time.timestamp()
        return timestamp

    def run_now(self) -> None:
        """Run at once instead of at the next scheduled time; after the run under way if any."""
        if self._stopping or self.scheduler is None:
            return
        if self.running:
            self._again = True  # the job under way runs it when it is done (one at a time)
            return
        self.scheduler.modify_job(JOB_ID, next_run_time=datetime.now(UTC))

    def ran(self) -> None:
        """The run under way is the one `run_now` asked for."""
        self._again = False

    def reschedule(self, config: Config) -> None:
        if self.scheduler is not None:
            self.scheduler.reschedule_job(JOB_ID, trigger=make_trigger(config))

    def problem(self) -> str:
        """Why the job cannot run any more, "" while it can."""
        scheduler = self.scheduler
        if scheduler is not None and not scheduler.running:
            return "the scheduler has stopped"
        if scheduler is not None and scheduler.get_job(JOB_ID) is None:
            return "the cycle job is no longer scheduled"
        return ""

    def watchdog(self, config: Config) -> str:
        """Why the job looks stalled ("" when it does not), on the monotonic clock.

        Stalled: no run started or was skipped for WATCHDOG_INTERVALS x (poll_interval +
        jitter) while none is running. The job is then re-armed to run at once; the caller
        reports the reason (`/healthz` fails) until a run has started.
        """
        if self._stopping or self.scheduler is None or self.running:
            return ""
        limit = WATCHDOG_INTERVALS * (config.poll_interval + config.poll_jitter_seconds)
        silent = self._monotonic() - self._heartbeat
        if silent <= limit:
            return ""
        why = (
            f"the scheduler is stalled: no cycle has started for {silent:.0f}s "
            f"({WATCHDOG_INTERVALS} x poll_interval {config.poll_interval:g}s); the cycle job "
            "was re-armed to run at once (did the system clock step backwards?)"
        )
        if not self._stalled:  # once per stall, not once per probe
            next_at = self.next_at
            due = datetime.fromtimestamp(next_at, UTC).isoformat() if next_at else "never"
            log.error("%s; its next run was due at %s", why, due)
        self._stalled = True
        self.run_now()
        return why

    def _beat(self) -> None:
        self._heartbeat = self._monotonic()
        self._stalled = False

    def pause(self) -> None:
        """No run starts from now on (the one under way goes on)."""
        self._stopping = True
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.pause()

    async def wait(self) -> None:
        """Wait for the job to end after its run; shutdown() then has no job to cancel (its
        wrapper would log that as an error)."""
        job = self._job_task
        if job is not None and not job.done():
            await asyncio.wait([job])

    def shutdown(self) -> None:
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.shutdown(wait=False)

    async def _scheduled(self) -> None:
        """The APScheduler job: runs one run in a task of its own and waits for it.

        The job lasts as long as the run, so max_instances=1 sees a cycle still running. The
        run is a separate task so that stop() can cancel it: APScheduler's job wrapper would
        swallow a cancellation of the job itself and log it as a failure.
        """
        if self._stopping:
            return
        self._beat()
        self._job_task = asyncio.current_task()
        while True:
            task = asyncio.create_task(self._run(), name="discovery-cycle")
            self.run_task = task
            try:
                await asyncio.wait([task])
            finally:
                if self.run_task is task:
                    self.run_task = None
            if not task.cancelled() and task.exception() is not None:
                log.error("cycle task failed", exc_info=task.exception())
            # Leadership won while this job read the registry as a follower: the first cycle
            # runs now, in this job (a second job would be skipped as overlapping).
            if not self._again or self._stopping:
                return
            self._again = False

    def _skipped(self, event: JobSubmissionEvent) -> None:
        self._beat()  # the scheduler is alive: it fired, and a cycle is still running
        self._on_skipped(self.next_at)
