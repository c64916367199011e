"""The `Daemon`: the daemon's parts wired together, and the election loop between runs.

An `Election` (whose events start or stop a cycle), a `CycleRunner` (one cycle, an outcome
value), a `BackendSlot` (registry and elector, swapped between cycles on reload), a `Reloader`,
the `CycleJob` that schedules the runs and the `CycleBook` that `/status` reads. The daemon
holds no state of a cycle of its own. See `discovery.daemon.process` for the rules they keep.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from discovery import __version__
from discovery.aws.rds_proxy import ProxySource
from discovery.core.config import Config
from discovery.core.coverage import resolved_accounts
from discovery.daemon.backend import Backend, BackendOpener, BackendSlot
from discovery.daemon.config_change import log_config_change
from discovery.daemon.election import Election, election_interval
from discovery.daemon.reload import Reloader
from discovery.daemon.runner import CycleOutcome, CycleRunner
from discovery.daemon.scheduler import CycleJob
from discovery.daemon.status import CycleBook, StatusCache, StatusView, iso, readiness
from discovery.output.logs import Redactor, cycle_context
from discovery.output.metrics import Metrics
from discovery.reconcile.cycle import AccountLister
from discovery.registry.account_state import account_state_for
from discovery.registry.base import Registry
from discovery.registry.leader import AlwaysLeader, Leadership

log = logging.getLogger(__name__)

# Stopping waits this long for an election step under way (a check, a connect) to end by itself.
ELECTION_STOP_WAIT_S = 2.0


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
        dry_run: bool = False,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        lister: AccountLister | None = None,
    ) -> None:
        # The caller's redactor is already seeded with this config's external ids (reloads add
        # theirs).
        self._redactor = (
            redactor
            if redactor is not None
            else Redactor(i for m in config.aws for i in m.external_ids)
        )
        self._metrics = metrics
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
        self._dry_run = dry_run  # `run --dry-run`: every cycle plans and reports, none applies
        self._runner = CycleRunner(
            source=source,
            clock=clock,
            dry_run=dry_run,
            lister=lister,
            gone_state=lambda cfg: account_state_for(cfg, config_path),
        )
        self._job = CycleJob(run=self._run, on_skipped=self._skipped, monotonic=monotonic)
        self._book = CycleBook()
        self._status = StatusCache()
        # Orders the election steps of the loop and of the job, and backend swaps, so that
        # none of them sees another one half done.
        self._election_lock = asyncio.Lock()
        self._election_task: asyncio.Task[None] | None = None
        self._preview: asyncio.Task[None] | None = None  # a reload's config-change log line
        self._wake_election = asyncio.Event()
        self._stop_requested = asyncio.Event()
        self._stopping = False
        self._stopped = False
        metrics.poll_interval.set(config.poll_interval)
        metrics.leader.set(0)

    @property
    def config(self) -> Config:
        return self._reloader.config

    @property
    def scheduler(self) -> AsyncIOScheduler | None:
        """The APScheduler scheduler, once started."""
        return self._job.scheduler

    # --- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        self._job.start(self.config)
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
        self._job.pause()
        if self._preview is not None:
            self._preview.cancel()
        await self._stop_election()
        registry = self._slot.current.registry
        task = self._job.run_task
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
        await self._job.wait()
        await registry.drain()
        self._job.shutdown()
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
            self._job.watchdog(self.config)  # a daemon nobody probes recovers too
            try:
                async with self._election_lock:
                    if not self._job.running:
                        await self._swap_backend()
                    await self._elect()
            except Exception:  # a bug: say so, and keep electing
                log.exception("leader election step failed; the next one runs as planned")

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
        if self._stopping or asyncio.current_task() is self._job.run_task:
            return  # the step that starts a run: that run is the cycle
        self._job.run_now()

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

    # --- a scheduled run --------------------------------------------------------------------

    async def _run(self) -> None:
        async with self._election_lock:
            await self._swap_backend()
            leading = await self._elect()
        registry = self._slot.current.registry
        if not leading:  # a follower: no cycle, one registry read to know that it answers
            if await self._runner.follow(registry) and self._election.reaches_database:
                self._book.followed = True
            self._observe_registry()
            return
        self._job.ran()  # this is the cycle a takeover asked for
        outcome = await self._runner.run(
            config=self.config,  # a reload during this cycle applies from the next one
            registry=registry,
            still_leading=self._still_leading,
            stopping=lambda: self._stopping,
        )
        self._record(outcome)

    def _skipped(self, next_at: float | None) -> None:
        self._book.skipped += 1
        self._metrics.cycles_skipped.inc()
        last = self._runner.last
        cycle_id = last.id if last is not None else ""
        with cycle_context(cycle_id):  # the line belongs to the cycle that overran
            log.warning(
                "cycle skipped: cycle %s is still running after %.1fs (poll_interval %gs); "
                "next run due at %s",
                cycle_id,
                time.monotonic() - last.t0 if last is not None else 0.0,
                self.config.poll_interval,
                iso(next_at),
            )

    def _observe_registry(self) -> None:
        registry = self._slot.current.registry
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
        self._observe_registry()
        if not self._election.leading:
            # Lost the leadership during the cycle (fenced, or its apply had already gone
            # through): a follower's last-cycle gauges stay empty, its counters stay counted.
            metrics.observe_leadership(leading=False)
        self._book.record(outcome)
        self._status.invalidate()

    # --- reload, and what the HTTP server reports -------------------------------------------

    def reload(self) -> bool:
        """Re-read the config file (SIGHUP). True if the new config was taken."""
        return False if self._stopping else self._reloader.reload()

    def _config_changed(self, old: Config, new: Config) -> None:
        self._status.invalidate()  # its detail level, or the redactor's ids, may have changed
        if self._slot.pending:
            self._wake_election.set()  # swapped at once if no cycle runs, else after it
        if (new.poll_interval, new.poll_jitter_seconds) != (
            old.poll_interval,
            old.poll_jitter_seconds,
        ):
            self._job.reschedule(new)
        self._preview_config_change(old, new)

    def _preview_config_change(self, old: Config, new: Config) -> None:
        """Log, from the registry, what `new` withholds as config-change deletes or orphans."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # reloaded outside the daemon's loop (a test): nothing to log to
            return
        last = self._book.last
        accounts = resolved_accounts(last.report.scopes if last and last.report else ())
        self._preview = loop.create_task(
            log_config_change(old, new, self._slot.upcoming.registry, accounts),
            name="discovery-config-change",
        )

    def live(self) -> tuple[bool, str]:
        if self._job.scheduler is None or self._stopping:
            return True, "stopping" if self._stopping else "starting"
        problem = self._job.problem()
        if problem:
            return False, problem
        election = self._election_task
        if election is not None and election.done():
            return False, "the leader election loop has stopped"
        stalled = self._job.watchdog(self.config)
        if stalled:
            return False, stalled
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
        """`/status` as a document (what `status_text` serializes)."""
        document: dict[str, Any] = json.loads(self.status_text())
        return document

    def status_text(self) -> str:
        """`/status` as JSON text: the last cycle's part from the cache, the live part anew."""
        config = self.config
        return self._status.text(
            self._view(), detail=config.server.status_detail, scrub=self._redactor.scrub
        )

    def status_page(self) -> bytes:
        """The status page (`GET /`): rendered from the same cache as `/status`."""
        config = self.config
        return self._status.page(
            self._view(), detail=config.server.status_detail, scrub=self._redactor.scrub
        )

    def _view(self) -> StatusView:
        config = self.config
        running = self._runner.current
        return StatusView(
            config=config,
            config_path=str(self._reloader.config_path),
            config_loaded_at=self._reloader.loaded_at,
            version=__version__,
            started_at=self._started_at,
            ready=self.ready(),
            election=self._election,
            registry=self._slot.current.registry,
            book=self._book,
            running=running.id if running is not None else None,
            next_at=self._job.next_at,
            dry_run=self._dry_run,
        )
