"""The `Daemon`: the APScheduler job and the election loop around the daemon's parts.

It wires an `Election` (whose events start or stop a cycle), a `CycleRunner` (one cycle, an
outcome value), a `BackendSlot` (the registry and elector, swapped between cycles on reload)
and the `CycleBook` `/status` reads, and owns only what schedules them: the job, the loop, the
stop request. See `discovery.daemon.process` for the rules they keep together.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, JobSubmissionEvent
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from discovery import __version__
from discovery.aws.source import ProxySource
from discovery.core.config import Config
from discovery.daemon.backend import Backend, BackendOpener, BackendSlot
from discovery.daemon.election import Election, election_interval
from discovery.daemon.reload import Reloader
from discovery.daemon.runner import CycleOutcome, CycleRunner
from discovery.daemon.status import CycleBook, StatusView, iso, readiness, status_document
from discovery.output.logs import Redactor, cycle_context
from discovery.output.metrics import Metrics
from discovery.registry.base import Registry, RegistryError
from discovery.registry.leader import AlwaysLeader, Leadership

log = logging.getLogger(__name__)

JOB_ID = "discovery-cycle"
# Stopping waits this long for an election step under way (a check, a connect) to end by itself.
ELECTION_STOP_WAIT_S = 2.0


def make_trigger(config: Config) -> IntervalTrigger:
    """Every poll_interval, each run delayed by a fresh random 0..jitter seconds.

    APScheduler's interval trigger adds the jitter to the previous (jittered) run time, so the
    gap between two runs is poll_interval + U(0, jitter) and daemons started together drift
    apart instead of meeting again every interval.
    """
    jitter = config.poll_jitter_seconds
    return IntervalTrigger(seconds=config.poll_interval, jitter=jitter or None, timezone=UTC)


class Daemon:
    """Runs cycles on a schedule while it leads; answers `/healthz`, `/readyz` and `/status`."""

    def __init__(
        self,
        *,
        config: Config,
        config_path: Path,
        source: ProxySource,
        registry: Registry,
        open_backend: BackendOpener,
        metrics: Metrics,
        leadership: Leadership | None = None,
        redactor: Redactor | None = None,
        listen_fixed: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._redactor = redactor if redactor is not None else Redactor()
        self._redactor.add(m.external_id for m in config.aws)
        self._metrics = metrics
        self._clock = clock
        self._started_at = clock()
        backend = Backend.of(registry, leadership if leadership is not None else AlwaysLeader())
        self._slot = BackendSlot(backend)
        self._reloader = Reloader(
            config=config,
            config_path=config_path,
            open_backend=open_backend,
            slot=self._slot,
            metrics=metrics,
            redactor=self._redactor,
            listen_fixed=listen_fixed,
            on_change=self._config_changed,
            clock=clock,
        )
        self._election = Election(
            leadership=backend.leadership, config=lambda: self.config, events=self, clock=clock
        )
        self._runner = CycleRunner(source=source, clock=clock)
        self._book = CycleBook()
        self._scheduler: AsyncIOScheduler | None = None
        self._job_task: asyncio.Task[Any] | None = None
        self._cycle_task: asyncio.Task[None] | None = None
        self._cycle_soon = False  # became leader while the job ran: a cycle right after it
        # Orders the election steps of the loop and of the job, and backend swaps, so that
        # none of them sees another one half done.
        self._election_lock = asyncio.Lock()
        self._election_task: asyncio.Task[None] | None = None
        self._wake_election = asyncio.Event()
        self._stop_requested = asyncio.Event()
        self._stopping = False
        self._stopped = False
        metrics.poll_interval.set(config.poll_interval)
        metrics.leader.set(0)

    @property
    def config(self) -> Config:
        return self._reloader.config

    # --- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        scheduler = AsyncIOScheduler(event_loop=asyncio.get_running_loop(), timezone=UTC)
        scheduler.add_listener(self._on_skipped, EVENT_JOB_MAX_INSTANCES)
        scheduler.add_job(
            self._scheduled_cycle,
            trigger=make_trigger(self.config),
            id=JOB_ID,
            name="discovery cycle",
            # The first cycle at once (its election step first: a follower only reads the
            # registry).
            next_run_time=datetime.now(UTC),
            # Never two cycles at once: a run that comes due while one is still going is
            # skipped (and counted by _on_skipped), not queued behind it.
            max_instances=1,
            # Runs missed together (loop busy, host suspended) run once, not back to back...
            coalesce=True,
            # ...and however late they are: dropping a late run would leave the registry stale
            # for one more whole interval, and a late cycle is as correct as a punctual one.
            misfire_grace_time=None,
        )
        scheduler.start()
        self._scheduler = scheduler
        self._election_task = asyncio.create_task(self._election_loop(), name="discovery-election")

    def request_stop(self, reason: str = "requested") -> None:
        """Ask the daemon to stop (signal handlers call this); `run_daemon` then stops it."""
        if self._stop_requested.is_set():
            log.info("already stopping (%s)", reason)
            return
        log.info("stopping (%s)", reason)
        self._stop_requested.set()

    async def wait_for_stop_request(self) -> None:
        await self._stop_requested.wait()

    async def stop(self) -> None:
        """Stop scheduling; cancel a cycle's fetches, but let a started apply finish first.

        The leadership is released only after that apply has drained, so a follower never
        takes over while this replica's last transaction is still open.
        """
        if self._stopped:
            return
        self._stopping = True
        scheduler = self._scheduler
        if scheduler is not None and scheduler.running:
            scheduler.pause()
        await self._stop_election()
        registry = self._slot.current.registry
        task = self._cycle_task
        if task is not None and not task.done():
            if registry.applying:
                last = self._runner.last
                log.info(
                    "waiting for cycle %s to finish its registry transaction",
                    last.id if last is not None else "",
                )
            else:
                task.cancel()
            await asyncio.wait([task])
        job = self._job_task
        if job is not None and not job.done():
            # The APScheduler job ends right after its cycle; waiting for it means shutdown()
            # below has no running job to cancel (its wrapper would log that as an error).
            await asyncio.wait([job])
        await registry.drain()
        if scheduler is not None and scheduler.running:
            scheduler.shutdown(wait=False)
        await self._slot.close()
        self._stopped = True

    async def _stop_election(self) -> None:
        task = self._election_task
        if task is None or task.done():
            return
        self._wake_election.set()  # a sleeping loop sees _stopping and ends
        # A step under way (a check, a reconnect) gets a moment to end by itself; cancelling it
        # mid-query would leave the elector's connection busy for its release.
        done, _ = await asyncio.wait([task], timeout=ELECTION_STOP_WAIT_S)
        if not done:
            task.cancel()
            await asyncio.wait([task])

    # --- leadership ---------------------------------------------------------------------------

    async def _election_loop(self) -> None:
        """Between scheduled runs: a follower tries to take over, a leader checks it still leads.

        Also swaps in the registry and elector of a reloaded config, when no cycle runs.
        """
        while not self._stopping:
            with suppress(TimeoutError):  # the interval passed: time for a step
                await asyncio.wait_for(
                    self._wake_election.wait(), timeout=election_interval(self.config)
                )
            self._wake_election.clear()
            if self._stopping:
                return
            try:
                async with self._election_lock:
                    if not self._job_running():
                        await self._swap_backend()
                    await self._elect()
            except Exception:  # a bug: say so, and keep electing
                log.exception("leader election step failed; the next one runs as planned")

    def _job_running(self) -> bool:
        job = self._job_task
        return job is not None and not job.done()

    async def _elect(self) -> bool:
        """One election step, with `_election_lock` held."""
        leading = await self._election.step()
        self._metrics.observe_leadership(leading=leading)
        return leading

    async def _still_leading(self) -> bool:
        async with self._election_lock:
            return await self._elect()

    def gained(self) -> None:
        """`ElectionEvents`: a new leader runs its first cycle at once, not at its next time."""
        if self._stopping or self._scheduler is None:
            return
        if asyncio.current_task() is self._cycle_task:
            return  # the step of the cycle's own start: this is that cycle
        if self._job_running():
            self._cycle_soon = True  # the job under way runs it when it is done (one at a time)
            return
        self._scheduler.modify_job(JOB_ID, next_run_time=datetime.now(UTC))

    def lost(self, reason: str) -> bool:
        """`ElectionEvents`: a replica that lost the lock stops a cycle that has not written."""
        cycle = self._runner.current
        return cycle is not None and cycle.abort(reason)

    async def _swap_backend(self) -> None:
        """Swap in the registry and elector of a reloaded config, with no cycle running."""
        if await self._slot.swap() is None:
            return
        # The old elector's leadership is released: a follower may take over.
        released = self._election.use(self._slot.current.leadership)
        if released:
            self._metrics.observe_leadership(leading=False)
        log.info(
            "now using the registry%s from the reloaded config",
            " and a new leader election (the old leadership is released)" if released else "",
        )

    def _config_changed(self, old: Config, new: Config) -> None:
        """A reload was taken: a new backend is swapped in at once if no cycle runs."""
        if self._slot.pending:
            self._wake_election.set()
        timing = (new.poll_interval, new.poll_jitter_seconds)
        if self._scheduler is not None and timing != (old.poll_interval, old.poll_jitter_seconds):
            self._scheduler.reschedule_job(JOB_ID, trigger=make_trigger(new))

    # --- the cycle --------------------------------------------------------------------------

    async def _scheduled_cycle(self) -> None:
        """The APScheduler job: runs one cycle in a task of its own and waits for it.

        The job lasts as long as the cycle, so max_instances=1 sees a cycle still running. The
        cycle is a separate task so that stop() can cancel it: APScheduler's job wrapper would
        swallow a cancellation of the job itself and log it as a failure.
        """
        if self._stopping:
            return
        self._job_task = asyncio.current_task()
        while True:
            task = asyncio.create_task(self._cycle(), name="discovery-cycle")
            self._cycle_task = task
            try:
                await asyncio.wait([task])
            finally:
                if self._cycle_task is task:
                    self._cycle_task = None
            if not task.cancelled() and task.exception() is not None:
                log.error("cycle task failed", exc_info=task.exception())
            # Leadership won while this job read the registry as a follower: the first cycle
            # runs now, in this job (a second job would be skipped as overlapping).
            if not self._cycle_soon or self._stopping:
                return
            self._cycle_soon = False

    def _on_skipped(self, event: JobSubmissionEvent) -> None:
        self._book.skipped += 1
        self._metrics.cycles_skipped.inc()
        job = self._scheduler.get_job(JOB_ID) if self._scheduler is not None else None
        next_at = iso(job.next_run_time.timestamp()) if job and job.next_run_time else None
        last = self._runner.last
        cycle_id = last.id if last is not None else ""
        with cycle_context(cycle_id):  # the line belongs to the cycle that overran
            log.warning(
                "cycle skipped: cycle %s is still running after %.1fs (poll_interval %gs); "
                "next run due at %s",
                cycle_id,
                time.monotonic() - last.t0 if last is not None else 0.0,
                self.config.poll_interval,
                next_at,
            )

    async def _cycle(self) -> None:
        async with self._election_lock:
            await self._swap_backend()
            leading = await self._elect()
        if not leading:
            await self._follow()
            return
        self._cycle_soon = False  # this is the cycle a takeover asked for
        registry = self._slot.current.registry
        outcome = await self._runner.run(
            config=self.config,  # a reload during this cycle applies from the next one
            registry=registry,
            still_leading=self._still_leading,
            stopping=lambda: self._stopping,
        )
        self._record(outcome)

    async def _follow(self) -> None:
        """A follower's scheduled run: no cycle, one registry read to know that it answers."""
        registry = self._slot.current.registry
        was = registry.reachable
        try:
            await registry.list_resources()
        except RegistryError as exc:
            if was is not False:
                log.error("registry unreachable (this replica follows): %s", exc)
        else:
            if was is False:
                log.info("registry reachable again")
            if self._election.reaches_database:
                self._book.followed = True
        if registry.reachable is not None:
            self._metrics.registry_up.set(1 if registry.reachable else 0)

    def _record(self, outcome: CycleOutcome) -> None:
        metrics = self._metrics
        metrics.observe_cycle(
            result=outcome.result,
            duration=outcome.finished_at - outcome.started_at,
            finished_at=outcome.finished_at,
        )
        metrics.observe_summary(outcome.summary)
        registry = self._slot.current.registry
        if registry.reachable is not None:
            metrics.registry_up.set(1 if registry.reachable else 0)
        if not self._election.leading:
            # Lost the leadership during the cycle (fenced, or its apply had already gone
            # through): a follower's last-cycle gauges stay empty, its counters stay counted.
            metrics.observe_leadership(leading=False)
        self._book.record(outcome)

    # --- reload and what the HTTP server reports ---------------------------------------------

    def reload(self) -> bool:
        """Re-read the config file (SIGHUP). True if the new config was taken."""
        if self._stopping:
            return False
        return self._reloader.reload()

    def live(self) -> tuple[bool, str]:
        scheduler = self._scheduler
        if scheduler is None or self._stopping:
            return True, "stopping" if self._stopping else "starting"
        if not scheduler.running:
            return False, "the scheduler has stopped"
        if scheduler.get_job(JOB_ID) is None:
            return False, "the cycle job is no longer scheduled"
        election = self._election_task
        if election is not None and election.done():
            return False, "the leader election loop has stopped"
        return True, "ok"

    def ready(self) -> tuple[bool, str]:
        return readiness(
            stopping=self._stopping,
            registry=self._slot.current.registry,
            election=self._election,
            book=self._book,
            group=self.config.discovery_group,
            redactor=self._redactor,
        )

    def status(self) -> dict[str, Any]:
        config = self.config
        job = self._scheduler.get_job(JOB_ID) if self._scheduler is not None else None
        running = self._runner.current
        view = StatusView(
            discovery_group=config.discovery_group,
            version=__version__,
            started_at=self._started_at,
            ready=self.ready(),
            leading=bool(self._election.leading),
            election=self._election,
            election_interval=election_interval(config),
            config_path=str(self._reloader.config_path),
            config_loaded_at=self._reloader.loaded_at,
            poll_interval=config.poll_interval,
            poll_jitter=config.poll_jitter_seconds,
            backend=config.registry.backend,
            registry=self._slot.current.registry,
            book=self._book,
            running=running.id if running is not None else None,
            next_at=job.next_run_time.timestamp()
            if job is not None and job.next_run_time is not None
            else None,
        )
        scrubbed: dict[str, Any] = self._redactor.scrub(status_document(view))
        return scrubbed
