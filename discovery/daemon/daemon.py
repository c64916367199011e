"""`discovery run`: the cycle of `scan`, on a schedule, observable, and safe to stop or reload.

- Schedule: one APScheduler (3.x, AsyncIOScheduler) interval job. The first cycle runs at once,
  then every `poll_interval` plus a random 0..`poll_jitter`. Never two cycles at once: a run that
  comes due while a cycle is still going is skipped and counted, not queued.
- Leadership (see `discovery.registry.leader`): only the leader of the discovery group runs
  cycles. Every scheduled run first checks (leader) or tries to take (follower) the leadership;
  between runs an election loop does the same every `election_interval` (at most 10 s, at most
  half the poll interval), so a follower takes over within one poll interval of the leader's
  death and runs its first cycle at once. A leader that finds its lock gone stops its cycle before
  it writes (result `fenced`), and the registry's fence refuses an apply that was already under
  way. A follower only reads the registry once per poll interval, to know it can reach it.
  With SQLite the daemon is always the leader (`AlwaysLeader`).
- One AWS source (assumed sessions and clients reused across cycles) and one registry and
  elector for the daemon's life; a reload that changes `registry` or `discovery_group` swaps
  them between two cycles (the old elector released, the new one started).
- Stop (SIGTERM/SIGINT): a cycle's AWS fetches are cancelled at once; an apply already handed to
  the registry runs to its end (commit or rollback) before the leadership is released and the
  process exits.
- Reload (SIGHUP): the new config is validated in full first. A bad one is rejected with one
  log line and the running one stays; a good one applies from the next cycle.
- What an operator sees: `/metrics`, `/healthz`, `/readyz` and `/status` (see
  `discovery.daemon.server`), and log lines tagged with the cycle id and scope (see
  `discovery.output.logs`).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, JobSubmissionEvent
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from discovery import __version__
from discovery.aws.source import AWSSettings, AWSSource, ProxySource
from discovery.core.config import Config, ConfigError, load_config, parse_listen
from discovery.core.model import Changes, Scope, ScopeResult, StoredResource
from discovery.daemon.server import build_app, start_server
from discovery.output.logs import Redactor, cycle_context, scope_context
from discovery.output.metrics import SUCCESS_RESULTS, Metrics, ScopeSample
from discovery.reconcile.cycle import CycleReport, expand_scopes, run_cycle
from discovery.registry.base import Registry, RegistryConflict, RegistryError
from discovery.registry.leader import AlwaysLeader, Leadership
from discovery.wiring import open_leadership

log = logging.getLogger(__name__)

JOB_ID = "discovery-cycle"
EXIT_OK = 0
EXIT_RUNTIME = 1
# /status lists at most this many withheld changes (all of them are counted); a region of
# thousands of proxies that fails would otherwise make every status read megabytes long.
STATUS_WITHHELD_LIMIT = 1000
# A withheld-changes log line names this many resources, then says how many more.
LOG_NAMES_LIMIT = 5

# A follower tries to take over, and a leader checks that it still leads, this often at most.
ELECTION_INTERVAL_MAX_S = 10.0
# A replica that lost the leadership waits this many election intervals before it tries to take
# it back: its own connection is the suspect one, so a healthy follower gets a try first.
HOLD_OFF_INTERVALS = 1.5
# Stopping waits this long for an election step under way (a check, a connect) to end by itself.
ELECTION_STOP_WAIT_S = 2.0
RESULT_FENCED = "fenced"


class RegistryOpener(Protocol):
    """Opens the registry of a config; with a PostgreSQL registry, fenced on `leadership`."""

    def __call__(
        self, config: Config, config_path: Path, /, *, leadership: Leadership
    ) -> Registry: ...


LeadershipOpener = Callable[[Config, Path], Leadership]


def default_leadership(config: Config, config_path: Path) -> Leadership:
    return open_leadership(config, config_path)


def election_interval(config: Config) -> float:
    """Seconds between two election steps: half the poll interval, at most 10 s.

    Half, so that a follower notices a dead leader and starts its own cycle well within one
    poll interval; at most 10 s, so that with a poll interval of hours a dead leader is still
    replaced (and a leader that lost its lock still stops) within seconds.
    """
    return min(config.poll_interval / 2, ELECTION_INTERVAL_MAX_S)


# --- the registry as the daemon's cycles see it ------------------------------------------------


class GuardedRegistry:
    """A `Registry` whose started applies always finish, and which remembers if it answered.

    An apply, once handed to the backend, is shielded from cancellation: stopping the daemon
    cancels a cycle's fetches at once but never abandons a transaction half-way, and `drain()`
    waits for it to commit or roll back. Every call also records whether the registry answered,
    for `/readyz` and `discovery_registry_up`.
    """

    def __init__(self, inner: Registry) -> None:
        self.inner = inner
        self.reachable: bool | None = None  # None: not tried yet
        self.error = ""
        self.applies = 0  # applies handed to the backend so far
        self._apply: asyncio.Future[None] | None = None

    @property
    def applying(self) -> bool:
        return self._apply is not None and not self._apply.done()

    async def list_resources(self) -> list[StoredResource]:
        try:
            rows = await self.inner.list_resources()
        except RegistryError as exc:
            self._answered(exc)
            raise
        self._answered(None)
        return rows

    async def apply(self, changes: Changes) -> None:
        self.applies += 1
        task = asyncio.ensure_future(self.inner.apply(changes))
        self._apply = task
        task.add_done_callback(self._apply_done)
        await asyncio.shield(task)

    def _apply_done(self, task: asyncio.Future[None]) -> None:
        if task.cancelled():
            return
        # Retrieving the exception here also keeps a drained apply's error from being reported
        # as "never retrieved" when its cycle was cancelled.
        exc = task.exception()
        if exc is None or isinstance(exc, RegistryError):
            self._answered(exc)

    def _answered(self, exc: BaseException | None) -> None:
        if exc is None or isinstance(exc, RegistryConflict):  # a conflict is an answer
            self.reachable, self.error = True, ""
        else:
            self.reachable, self.error = False, str(exc)

    async def drain(self) -> None:
        if self._apply is not None and not self._apply.done():
            await asyncio.wait([self._apply])

    async def close(self) -> None:
        await self.drain()
        await self.inner.close()


@dataclass(frozen=True)
class Backend:
    """A registry and the elector its applies are fenced on: opened, swapped, closed together."""

    registry: GuardedRegistry
    leadership: Leadership

    async def close(self) -> None:
        """Release the leadership (after the registry's apply has drained), close the registry."""
        await self.registry.drain()
        try:
            await self.leadership.release()
        except Exception as exc:  # the session ends with the process anyway
            log.warning("could not release the leadership cleanly: %s", exc)
        await self.registry.close()


# --- what a cycle leaves behind ------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ScopeStatus:
    matcher: int
    region: str
    account_id: str  # "" when neither the role ARN nor AWS has told it yet
    assume_role_arn: str
    ok: bool
    error: str
    resources: int
    skipped: tuple[str, ...]  # reason codes
    last_success: float | None


@dataclass(frozen=True, kw_only=True)
class CycleOutcome:
    cycle_id: str
    started_at: float
    finished_at: float
    result: str  # ok | partial | error | fenced (see discovery_cycles_total)
    error: str
    report: CycleReport | None  # None when the cycle stopped before its plan was applied
    scopes: tuple[ScopeStatus, ...]


def cycle_result(report: CycleReport | None) -> str:
    if report is None:
        return "error"
    return "partial" if report.failed_scopes else "ok"


def owned_after(report: CycleReport) -> int:
    plan = report.plan
    if not report.applied:
        return plan.owned
    return plan.owned + len(plan.create) - len(plan.delete)


def iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return (
        datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    )


def _count(codes: Iterable[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for code in codes:
        counts[code] = counts.get(code, 0) + 1
    return dict(sorted(counts.items()))


def cycle_document(outcome: CycleOutcome) -> dict[str, Any]:
    """The last cycle as `/status` shows it: no resource bodies, no external ids."""
    doc: dict[str, Any] = {
        "id": outcome.cycle_id,
        "started_at": iso(outcome.started_at),
        "finished_at": iso(outcome.finished_at),
        "duration_seconds": round(outcome.finished_at - outcome.started_at, 3),
        "result": outcome.result,
        "error": outcome.error,
    }
    report = outcome.report
    scopes = outcome.scopes
    counts: dict[str, Any] = {
        "scopes": len(scopes),
        "scopes_failed": sum(1 for s in scopes if not s.ok),
        "discovered": sum(s.resources for s in scopes),
        "skipped": sum(len(s.skipped) for s in scopes),
    }
    if report is not None:
        plan = report.plan
        applied = report.applied
        counts.update(
            created=len(plan.create) if applied else 0,
            updated=len(plan.update) if applied else 0,
            deleted=len(plan.delete) if applied else 0,
            unchanged=plan.unchanged,
            withheld=len(plan.withheld),
            conflicts=plan.conflicts,
            owned=owned_after(report),
        )
        doc["applied"] = applied
        doc["delete_guard_tripped"] = plan.guard_tripped
    doc["counts"] = counts
    doc["scopes"] = [
        {
            "matcher": s.matcher,
            "account_id": s.account_id,
            "region": s.region,
            "assume_role_arn": s.assume_role_arn,
            "status": "ok" if s.ok else "failed",
            "error": s.error,
            "resources": s.resources,
            "skipped": len(s.skipped),
            "skipped_by_reason": _count(s.skipped),
            "last_success_at": iso(s.last_success),
        }
        for s in scopes
    ]
    if report is not None:
        withheld = report.plan.withheld
        doc["withheld_by_reason"] = _count(w.code for w in withheld)
        doc["withheld"] = [
            {"name": w.name, "action": w.action, "reason": w.reason, "code": w.code}
            for w in withheld[:STATUS_WITHHELD_LIMIT]
        ]
        doc["withheld_truncated"] = len(withheld) > STATUS_WITHHELD_LIMIT
    return doc


def make_trigger(config: Config) -> IntervalTrigger:
    """Every poll_interval, each run delayed by a fresh random 0..jitter seconds.

    APScheduler's interval trigger adds the jitter to the previous (jittered) run time, so the
    gap between two runs is poll_interval + U(0, jitter) and daemons started together drift
    apart instead of meeting again every interval.
    """
    jitter = config.poll_jitter_seconds
    return IntervalTrigger(seconds=config.poll_interval, jitter=jitter or None, timezone=UTC)


# --- the daemon ----------------------------------------------------------------------------------


class Daemon:
    """Runs cycles on a schedule while it leads; keeps what `/healthz`, `/readyz` and `/status`
    report."""

    def __init__(
        self,
        *,
        config: Config,
        config_path: Path,
        source: ProxySource,
        registry: Registry,
        open_registry: RegistryOpener,
        metrics: Metrics,
        leadership: Leadership | None = None,
        open_leadership: LeadershipOpener = default_leadership,
        redactor: Redactor | None = None,
        listen_fixed: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._config = config
        self._config_path = config_path
        self._source = source
        self._backend = Backend(
            GuardedRegistry(registry), leadership if leadership is not None else AlwaysLeader()
        )
        self._next_backend: Backend | None = None
        self._discarded: list[Backend] = []  # opened by a reload, never used
        self._open_registry = open_registry
        self._open_leadership = open_leadership
        self._metrics = metrics
        self._redactor = redactor if redactor is not None else Redactor()
        self._redactor.add(m.external_id for m in config.aws)
        self._listen_fixed = listen_fixed  # --listen given: server.listen is not ours to follow
        self._clock = clock

        self._scheduler: AsyncIOScheduler | None = None
        self._job_task: asyncio.Task[Any] | None = None
        self._cycle_task: asyncio.Task[None] | None = None
        self._cycle_id = ""
        self._cycle_t0 = 0.0
        self._in_cycle = False  # the job is running a cycle (not a follower's registry read)
        self._stop_requested = asyncio.Event()
        self._stopping = False
        self._stopped = False

        self._started_at = clock()
        self._config_loaded_at = self._started_at
        self._completed = 0
        self._skipped = 0
        self._last: CycleOutcome | None = None
        self._last_success: float | None = None
        self._scope_accounts: dict[Scope, str] = {}
        self._scope_success: dict[Scope, float] = {}

        # Leadership. The election lock orders election steps of the election loop and of the
        # cycle job, and backend swaps, so that none of them sees another one half done.
        self._election_lock = asyncio.Lock()
        self._election_task: asyncio.Task[None] | None = None
        self._wake_election = asyncio.Event()
        self._elector_started = False
        self._elector_error = ""  # why the elector could not start
        self._election_error = ""  # the elector's last_error, as last logged
        self._leading: bool | None = None  # None: no election step yet
        self._role_since = self._started_at
        self._followed = False  # was a ready follower: stays ready through its takeover
        self._lost_at: float | None = None
        self._lost_reason = ""
        self._retry_after = 0.0  # time.monotonic() before which this replica does not try
        self._cycle_soon = False  # became leader while the job ran: a cycle right after it
        self._abortable = False  # the running cycle has handed nothing to the registry yet
        self._cycle_applies = 0  # registry.applies when the running cycle started
        self._abort_reason = ""  # why the running cycle was cancelled (leadership lost)
        metrics.poll_interval.set(config.poll_interval)
        metrics.leader.set(0)

    @property
    def config(self) -> Config:
        return self._config

    @property
    def _registry(self) -> GuardedRegistry:
        return self._backend.registry

    @property
    def _leadership(self) -> Leadership:
        return self._backend.leadership

    @property
    def _elected(self) -> bool:
        """Whether leadership is contended at all (False: SQLite, always the leader)."""
        return not isinstance(self._leadership, AlwaysLeader)

    # --- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        scheduler = AsyncIOScheduler(event_loop=asyncio.get_running_loop(), timezone=UTC)
        scheduler.add_listener(self._on_skipped, EVENT_JOB_MAX_INSTANCES)
        scheduler.add_job(
            self._scheduled_cycle,
            trigger=make_trigger(self._config),
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
        task = self._cycle_task
        if task is not None and not task.done():
            if self._registry.applying:
                log.info("waiting for cycle %s to finish its registry transaction", self._cycle_id)
            else:
                task.cancel()
            await asyncio.wait([task])
        job = self._job_task
        if job is not None and not job.done():
            # The APScheduler job ends right after its cycle; waiting for it means shutdown()
            # below has no running job to cancel (its wrapper would log that as an error).
            await asyncio.wait([job])
        await self._registry.drain()
        if scheduler is not None and scheduler.running:
            scheduler.shutdown(wait=False)
        await self._backend.close()
        if self._next_backend is not None:
            await self._next_backend.close()
        await self._close_discarded()
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
                    self._wake_election.wait(), timeout=election_interval(self._config)
                )
            self._wake_election.clear()
            if self._stopping:
                return
            try:
                async with self._election_lock:
                    if not self._job_running():
                        await self._swap_backend()
                    await self._elect(in_cycle=False)
            except Exception:  # a bug: say so, and keep electing
                log.exception("leader election step failed; the next one runs as planned")

    def _job_running(self) -> bool:
        job = self._job_task
        return job is not None and not job.done()

    async def _elect(self, *, in_cycle: bool) -> bool:
        """One election step, with `_election_lock` held: a leader checks, a follower tries."""
        leadership = self._leadership
        if not self._elector_started:
            try:
                await leadership.start()
            except RegistryError as exc:
                error = str(exc)
                if error != self._elector_error:
                    log.error(
                        "leader election cannot start: %s; this replica does not lead and "
                        "tries again every %gs",
                        error,
                        election_interval(self._config),
                    )
                self._elector_error = error
                self._observe_role(False, in_cycle=in_cycle)
                return False
            if self._elector_error:
                log.info("leader election started")
                self._election_error = ""  # said by the line above
            self._elector_started, self._elector_error = True, ""
        if not leadership.is_leader and time.monotonic() < self._retry_after:
            # Not trying yet; only reconnecting, to know (and say) whether the database answers.
            with suppress(RegistryError):
                await leadership.start()
            self._observe_role(False, in_cycle=in_cycle)
            return False
        try:
            leading = await (
                leadership.check() if leadership.is_leader else leadership.try_acquire()
            )
        except Exception:  # a bug in an elector: on doubt, never lead
            log.exception("leader election step failed; this replica does not lead meanwhile")
            leading = False
        self._observe_role(leading, in_cycle=in_cycle)
        return leading

    def _observe_role(self, leading: bool, *, in_cycle: bool) -> None:
        was = self._leading
        self._metrics.observe_leadership(leading=leading)
        error = self._leadership.last_error
        if leading != was:
            self._leading = leading
            self._role_since = self._clock()
            group = self._config.discovery_group
            if leading:
                if self._elected:
                    log.info(
                        "this replica is now the leader of discovery group %r: it runs the "
                        "cycles from now on",
                        group,
                    )
                if not in_cycle:
                    self._run_cycle_now()
            elif was:
                why = error or "its leader lock is no longer held"
                self._lost_at, self._lost_reason = self._role_since, why
                hold_off = HOLD_OFF_INTERVALS * election_interval(self._config)
                self._retry_after = time.monotonic() + hold_off
                aborted = self._abort_cycle(why)
                log.warning(
                    "this replica is no longer the leader of discovery group %r (%s): it "
                    "writes nothing from now on%s; it lets a follower take over and tries "
                    "again in %gs",
                    group,
                    why,
                    "; its running cycle is stopped" if aborted else "",
                    hold_off,
                )
            elif not error and not self._elector_error:
                log.info(
                    "discovery group %r is led by another replica: this one follows and "
                    "tries to take over every %gs",
                    group,
                    election_interval(self._config),
                )
        # The elector's trouble reaching its database, logged when it starts and when it ends
        # (the elector itself says it only at debug level, once per try); not twice when the
        # line about a failed start or a lost leadership already said it.
        said = bool(self._elector_error) or bool(was and not leading)
        if error and error != self._election_error and not said:
            log.warning(
                "leader election cannot reach its database: %s; this replica does not lead "
                "until it can",
                error,
            )
        elif not error and self._election_error:
            log.info("leader election reaches its database again")
        self._election_error = error

    def _run_cycle_now(self) -> None:
        """A new leader runs its first cycle at once instead of at its next scheduled time."""
        if self._stopping or self._scheduler is None:
            return
        if self._job_running():
            self._cycle_soon = True  # the job under way runs it when it is done (one at a time)
            return
        self._scheduler.modify_job(JOB_ID, next_run_time=datetime.now(UTC))

    def _abort_cycle(self, why: str) -> bool:
        """Stop the running cycle if it has not handed anything to the registry yet.

        An apply already under way is left alone: the registry's fence refuses it inside its
        transaction, and it must not be abandoned half-way.
        """
        task = self._cycle_task
        if (
            task is None
            or task.done()
            or task is asyncio.current_task()
            or not (self._in_cycle and self._abortable)
            or self._registry.applies != self._cycle_applies
        ):
            return False
        self._abort_reason = why
        task.cancel()
        return True

    async def _still_leading(self) -> bool:
        async with self._election_lock:
            return await self._elect(in_cycle=True)

    async def _swap_backend(self) -> None:
        """Swap in the registry and elector of a reloaded config, with no cycle running."""
        await self._close_discarded()
        new = self._next_backend
        if new is None:
            return
        old, self._backend, self._next_backend = self._backend, new, None
        self._elector_started, self._elector_error = False, ""
        self._retry_after = 0.0
        released = bool(self._leading) and not isinstance(old.leadership, AlwaysLeader)
        await old.close()  # the old elector's leadership released: a follower may take over
        if released:
            self._leading, self._role_since = False, self._clock()
            self._metrics.observe_leadership(leading=False)
        log.info(
            "now using the registry%s from the reloaded config",
            " and a new leader election (the old leadership is released)" if released else "",
        )

    async def _close_discarded(self) -> None:
        while self._discarded:
            await self._discarded.pop().close()

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
        self._skipped += 1
        self._metrics.cycles_skipped.inc()
        job = self._scheduler.get_job(JOB_ID) if self._scheduler is not None else None
        next_at = iso(job.next_run_time.timestamp()) if job and job.next_run_time else None
        with cycle_context(self._cycle_id):  # the line belongs to the cycle that overran
            log.warning(
                "cycle skipped: cycle %s is still running after %.1fs (poll_interval %gs); "
                "next run due at %s",
                self._cycle_id,
                time.monotonic() - self._cycle_t0,
                self._config.poll_interval,
                next_at,
            )

    async def _cycle(self) -> None:
        async with self._election_lock:
            await self._swap_backend()
            leading = await self._elect(in_cycle=True)
        if not leading:
            await self._follow()
            return
        self._cycle_soon = False  # this is the cycle a takeover asked for
        cycle_id = uuid.uuid4().hex[:12]
        self._cycle_id = cycle_id
        self._in_cycle = True
        try:
            with cycle_context(cycle_id):
                await self._run_cycle(cycle_id)
        finally:
            self._in_cycle = False

    async def _follow(self) -> None:
        """A follower's scheduled run: no cycle, one registry read to know that it answers."""
        registry = self._registry
        was = registry.reachable
        try:
            await registry.list_resources()
        except RegistryError as exc:
            if was is not False:
                log.error("registry unreachable (this replica follows): %s", exc)
        else:
            if was is False:
                log.info("registry reachable again")
            if self._elector_started and not self._leadership.last_error:
                self._followed = True
        if registry.reachable is not None:
            self._metrics.registry_up.set(1 if registry.reachable else 0)

    async def _run_cycle(self, cycle_id: str) -> None:
        config = self._config  # a reload during this cycle applies from the next one
        registry = self._registry
        results: list[ScopeResult] = []

        def on_scope(result: ScopeResult) -> None:
            results.append(result)
            self._observe_scope(result)

        started = self._clock()
        self._cycle_t0 = t0 = time.monotonic()
        log.info(
            "cycle started: %d scope(s), discovery group %r",
            len(expand_scopes(config)),
            config.discovery_group,
        )
        report: CycleReport | None = None
        error = ""
        fenced = False
        self._abort_reason = ""
        self._cycle_applies = registry.applies
        self._abortable = True
        try:
            report = await run_cycle(
                config=config, source=self._source, registry=registry, on_scope=on_scope
            )
        except asyncio.CancelledError:
            self._abortable = False
            why = self._abort_reason
            if self._stopping or not why:
                log.warning(
                    "cycle cancelled after %.1fs: the daemon is stopping; %s",
                    time.monotonic() - t0,
                    "its registry transaction is left to finish"
                    if registry.applying
                    else "it wrote nothing",
                )
                raise
            current = asyncio.current_task()
            if current is not None:
                current.uncancel()  # our own cancellation, handled here: the cycle is fenced
            fenced = True
            error = (
                f"this replica lost the leadership of discovery group {config.discovery_group!r} "
                f"during the cycle ({why}); the cycle was stopped before it wrote anything"
            )
            log.warning("cycle fenced: %s", error)
        except RegistryConflict as exc:
            self._abortable = False
            if await self._still_leading():
                error = (
                    "another writer changed the registry during the cycle; nothing was written "
                    f"and the next cycle re-reads it ({exc})"
                )
                log.warning("cycle stopped: %s", error)
            else:
                fenced = True
                error = (
                    "this replica is no longer the leader of discovery group "
                    f"{config.discovery_group!r}: the registry refused the apply inside its "
                    f"transaction and nothing was written ({exc})"
                )
                log.warning("cycle fenced: %s", error)
        except RegistryError as exc:
            self._abortable = False
            error = f"registry unreachable: {exc}"
            log.error("cycle stopped: %s", error)
        except Exception as exc:  # a bug: say so loudly, keep the daemon (and its metrics) up
            self._abortable = False
            error = f"unexpected error: {type(exc).__name__}: {exc}"
            log.exception("cycle stopped by an unexpected error; the next cycle runs as planned")
        self._abortable = False
        self._finish(
            cycle_id=cycle_id,
            config=config,
            started=started,
            duration=time.monotonic() - t0,
            report=report,
            results=results,
            error=error,
            fenced=fenced,
            registry=registry,
        )

    def _observe_scope(self, result: ScopeResult) -> None:
        scope = result.scope
        account = result.account_id or scope.role_account_id
        if result.ok:
            self._scope_success[scope] = self._clock()
            if account:
                self._scope_accounts[scope] = account
            return
        with scope_context(
            account=account or self._scope_accounts.get(scope, ""), region=scope.region
        ):
            log.warning(
                "scope failed; what it could have produced is left as it is: %s", result.error
            )

    def _scope_status(self, result: ScopeResult) -> ScopeStatus:
        scope = result.scope
        return ScopeStatus(
            matcher=scope.matcher_index,
            region=scope.region,
            account_id=result.account_id
            or scope.role_account_id
            or self._scope_accounts.get(scope, ""),
            assume_role_arn=scope.assume_role_arn,
            ok=result.ok,
            error=result.error,
            resources=len(result.resources),
            skipped=tuple(k.code for k in result.skipped),
            last_success=self._scope_success.get(scope),
        )

    def _finish(
        self,
        *,
        cycle_id: str,
        config: Config,
        started: float,
        duration: float,
        report: CycleReport | None,
        results: Sequence[ScopeResult],
        error: str,
        fenced: bool,
        registry: GuardedRegistry,
    ) -> None:
        result = RESULT_FENCED if fenced else cycle_result(report)
        finished = started + duration
        if report is not None:
            ordered: Sequence[ScopeResult] = report.scopes
        else:
            order = {scope: i for i, scope in enumerate(expand_scopes(config))}
            ordered = sorted(results, key=lambda r: order.get(r.scope, len(order)))
        scopes = tuple(self._scope_status(r) for r in ordered)

        metrics = self._metrics
        metrics.observe_cycle(result=result, duration=duration, finished_at=finished)
        metrics.observe_scopes(
            [
                ScopeSample(
                    account=s.account_id,
                    region=s.region,
                    up=s.ok,
                    resources=s.resources,
                    last_success=s.last_success,
                )
                for s in scopes
            ]
        )
        if report is not None:
            metrics.observe_plan(
                report.plan,
                applied=report.applied,
                owned_after=owned_after(report),
                skipped_codes=(code for s in scopes for code in s.skipped),
            )
        if registry.reachable is not None:
            metrics.registry_up.set(1 if registry.reachable else 0)
        if not self._leading:
            # Lost the leadership during the cycle (fenced, or its apply had already gone
            # through): a follower's last-cycle gauges stay empty, its counters stay counted.
            metrics.observe_leadership(leading=False)

        outcome = CycleOutcome(
            cycle_id=cycle_id,
            started_at=started,
            finished_at=finished,
            result=result,
            error=error,
            report=report,
            scopes=scopes,
        )
        self._last = outcome
        if result in SUCCESS_RESULTS:
            self._completed += 1
            self._last_success = finished
        self._log_outcome(outcome, duration)

    def _log_outcome(self, outcome: CycleOutcome, duration: float) -> None:
        report = outcome.report
        if report is None:
            log.info("cycle finished in %.2fs: %s; nothing was written", duration, outcome.result)
            return
        plan = report.plan
        if report.applied:
            for resource in plan.create:
                log.info("created %s (%s)", resource.name, resource.uri)
            for update in plan.update:
                log.info("updated %s", update.after.name)
            for stored in plan.delete:
                log.info("deleted %s", stored.resource.name)
        groups: dict[tuple[str, str, str], list[str]] = {}
        for w in plan.withheld:
            groups.setdefault((w.code, w.action, w.reason), []).append(w.name)
        for (code, action, reason), names in groups.items():
            shown = ", ".join(names[:LOG_NAMES_LIMIT])
            if len(names) > LOG_NAMES_LIMIT:
                shown += f" and {len(names) - LOG_NAMES_LIMIT} more"
            log.warning("%d %s(s) withheld [%s]: %s (%s)", len(names), action, code, reason, shown)
        applied = report.applied
        log.info(
            "cycle finished in %.2fs: %s; %d created, %d updated, %d deleted, %d unchanged, "
            "%d withheld; %d of %d scope(s) ok",
            duration,
            outcome.result,
            len(plan.create) if applied else 0,
            len(plan.update) if applied else 0,
            len(plan.delete) if applied else 0,
            plan.unchanged,
            len(plan.withheld),
            len(report.scopes) - report.failed_scopes,
            len(report.scopes),
        )

    # --- reload -----------------------------------------------------------------------------

    def reload(self) -> bool:
        """Re-read the config file (SIGHUP). True if the new config was taken."""
        if self._stopping:
            return False
        path = self._config_path
        try:
            new = load_config(path)
        except ConfigError as exc:
            return self._reject(str(exc))
        old = self._config
        next_backend: Backend | None = None
        if new.registry != old.registry or new.discovery_group != old.discovery_group:
            # A new registry or group needs a new elector (the lock is per database, schema
            # and group), and the registry is fenced on its elector: both are swapped together.
            try:
                leadership = self._open_leadership(new, path)
                if new.registry != old.registry or not isinstance(leadership, AlwaysLeader):
                    registry = self._open_registry(new, path, leadership=leadership)
                    next_backend = Backend(GuardedRegistry(registry), leadership)
            except Exception as exc:  # whatever the backend says, the running config stays
                return self._reject(f"{path}: registry: {exc}")
        self._redactor.add(m.external_id for m in new.aws)
        changed = [name for name in Config.model_fields if getattr(old, name) != getattr(new, name)]

        if next_backend is not None:
            if self._next_backend is not None:  # two reloads between cycles: the last wins
                self._discarded.append(self._next_backend)
            self._next_backend = next_backend
            self._wake_election.set()  # swapped at once if no cycle runs, else after it
        timing = (new.poll_interval, new.poll_jitter_seconds)
        if self._scheduler is not None and timing != (old.poll_interval, old.poll_jitter_seconds):
            self._scheduler.reschedule_job(JOB_ID, trigger=make_trigger(new))
        if new.server.listen != old.server.listen and not self._listen_fixed:
            log.warning(
                "server.listen changed to %s; the HTTP server moves only when the daemon restarts",
                new.server.listen,
            )
        if new.discovery_group != old.discovery_group:
            log.warning(
                "discovery_group changed from %r to %r: resources owned by %r are no longer "
                "managed by this daemon and stay in the registry as they are",
                old.discovery_group,
                new.discovery_group,
                old.discovery_group,
            )
        self._config = new
        self._config_loaded_at = self._clock()
        self._metrics.poll_interval.set(new.poll_interval)
        self._metrics.observe_reload(ok=True)
        log.info(
            "config reloaded from %s (%s); it applies from the next cycle",
            path,
            "changed: " + ", ".join(changed) if changed else "no changes",
        )
        return True

    def _reject(self, why: str) -> bool:
        self._metrics.observe_reload(ok=False)
        log.error("config reload rejected, the running config stays in effect: %s", why)
        return False

    # --- what the HTTP server reports --------------------------------------------------------

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
        """Ready: the registry answers and this replica can do its part.

        A leader is ready after its first completed cycle. A follower is ready once its elector
        reaches the database and it has read the registry: it can take over at any moment,
        and it stays ready while it does (a takeover is not an outage).
        """
        if self._stopping:
            return False, "stopping"
        registry = self._registry
        if registry.reachable is False:
            return False, self._redactor(f"registry unreachable: {registry.error}")
        if self._elector_error:
            return False, self._redactor(f"leader election cannot start: {self._elector_error}")
        error = self._leadership.last_error
        if not self._leading and error:
            return False, self._redactor(f"leader election cannot reach its database: {error}")
        if self._completed == 0 and not self._followed:
            if self._leading is False:
                return False, "following another replica; waiting for the first registry read"
            return False, "waiting for the first cycle to complete"
        if self._leading:
            return True, "ready"
        group = self._config.discovery_group
        return True, f"ready (following the leader of discovery group {group!r})"

    def status(self) -> dict[str, Any]:
        config = self._config
        ready, why = self.ready()
        job = self._scheduler.get_job(JOB_ID) if self._scheduler is not None else None
        running = self._in_cycle and self._cycle_task is not None and not self._cycle_task.done()
        doc: dict[str, Any] = {
            "discovery_group": config.discovery_group,
            "version": __version__,
            "started_at": iso(self._started_at),
            "ready": ready,
            "ready_reason": why,
            "role": "leader" if self._leading else "follower",
            "leadership": {
                # False: a registry with one writer (SQLite), always the leader.
                "elected": self._elected,
                "since": iso(self._role_since),
                "election_interval_seconds": election_interval(config),
                "last_error": self._elector_error or self._leadership.last_error,
                "last_lost_at": iso(self._lost_at),
                "last_lost_reason": self._lost_reason,
            },
            "config": {
                "path": str(self._config_path),
                "loaded_at": iso(self._config_loaded_at),
                "poll_interval_seconds": config.poll_interval,
                "poll_jitter_seconds": config.poll_jitter_seconds,
            },
            "registry": {
                "backend": config.registry.backend,
                "reachable": self._registry.reachable,
                "error": self._registry.error,
            },
            "cycles": {
                "completed": self._completed,
                "skipped": self._skipped,
                "running": self._cycle_id if running else None,
                "next_at": iso(job.next_run_time.timestamp())
                if job is not None and job.next_run_time is not None
                else None,
            },
            "last_success_at": iso(self._last_success),
            "last_cycle": cycle_document(self._last) if self._last is not None else None,
        }
        scrubbed: dict[str, Any] = self._redactor.scrub(doc)
        return scrubbed


# --- the process -------------------------------------------------------------------------------


async def run_daemon(
    *,
    config: Config,
    config_path: Path,
    listen: str,
    listen_fixed: bool,
    registry: Registry,
    open_registry: RegistryOpener,
    redactor: Redactor,
    leadership: Leadership | None = None,
    open_leadership: LeadershipOpener = default_leadership,
) -> int:
    """Serve HTTP, run cycles until SIGTERM/SIGINT, then stop cleanly. Returns the exit code.

    `registry` must be fenced on `leadership` (see `RegistryOpener`); the daemon starts the
    elector itself, and a database it cannot reach yet is retried, not fatal.
    """
    metrics = Metrics()
    host, port = parse_listen(listen)
    loop = asyncio.get_running_loop()
    # One source for the daemon's life: sessions and clients are reused across cycles, so the
    # aws_client settings take effect at start (a SIGHUP reload does not rebuild the clients).
    async with AWSSource(
        settings=AWSSettings.from_config(config.aws_client),
        on_call=metrics.observe_call,
        on_throttle=metrics.observe_throttle,
    ) as source:
        daemon = Daemon(
            config=config,
            config_path=config_path,
            source=source,
            registry=registry,
            open_registry=open_registry,
            metrics=metrics,
            leadership=leadership,
            open_leadership=open_leadership,
            redactor=redactor,
            listen_fixed=listen_fixed,
        )
        try:
            server = await start_server(build_app(daemon, metrics), host, port)
        except OSError as exc:
            log.error(
                "cannot listen on %s: %s; choose another address with --listen or server.listen",
                listen,
                exc,
            )
            await daemon.stop()
            return EXIT_RUNTIME
        log.info("listening on %s (/metrics /healthz /readyz /status)", server.url)
        stop_signals = (signal.SIGTERM, signal.SIGINT)
        for sig in stop_signals:
            loop.add_signal_handler(sig, daemon.request_stop, sig.name)
        loop.add_signal_handler(signal.SIGHUP, daemon.reload)
        try:
            await daemon.start()
            log.info(
                "discovery %s running: discovery group %r, %d scope(s), a cycle every %gs "
                "plus up to %gs of jitter",
                __version__,
                config.discovery_group,
                len(expand_scopes(config)),
                config.poll_interval,
                config.poll_jitter_seconds,
            )
            if leadership is not None and not isinstance(leadership, AlwaysLeader):
                log.info(
                    "leader election on: only the leader of discovery group %r runs cycles; "
                    "the others follow and check every %gs",
                    config.discovery_group,
                    election_interval(config),
                )
            await daemon.wait_for_stop_request()
        finally:
            for sig in (*stop_signals, signal.SIGHUP):
                loop.remove_signal_handler(sig)
            await daemon.stop()
            await server.close()
    log.info("stopped")
    return EXIT_OK
