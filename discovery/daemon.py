"""`discovery run`: the cycle of `scan`, on a schedule, observable, and safe to stop or reload.

- Schedule: one APScheduler (3.x, AsyncIOScheduler) interval job. The first cycle runs at once,
  then every `poll_interval` plus a random 0..`poll_jitter`. Never two cycles at once: a run that
  comes due while a cycle is still going is skipped and counted, not queued.
- One AWS source (assumed sessions and clients reused across cycles) and one registry for the
  daemon's life; a reload that changes `registry` swaps it between two cycles.
- Stop (SIGTERM/SIGINT): a cycle's AWS fetches are cancelled at once; an apply already handed to
  the registry runs to its end (commit or rollback) before the process exits.
- Reload (SIGHUP): the new config is validated in full first. A bad one is rejected with one
  log line and the running one stays; a good one applies from the next cycle.
- What an operator sees: `/metrics`, `/healthz`, `/readyz` and `/status` (see `discovery.server`),
  and log lines tagged with the cycle id and scope (see `discovery.logs`).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, JobSubmissionEvent
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from discovery import __version__
from discovery.aws import AWSSource, ProxySource
from discovery.config import Config, ConfigError, load_config, parse_listen
from discovery.cycle import CycleReport, expand_scopes, run_cycle
from discovery.logs import Redactor, cycle_context, scope_context
from discovery.metrics import Metrics, ScopeSample
from discovery.model import Changes, Scope, ScopeResult, StoredResource
from discovery.registry.base import Registry, RegistryConflict, RegistryError
from discovery.server import build_app, start_server

log = logging.getLogger(__name__)

JOB_ID = "discovery-cycle"
EXIT_OK = 0
EXIT_RUNTIME = 1
# /status lists at most this many withheld changes (all of them are counted); a region of
# thousands of proxies that fails would otherwise make every status read megabytes long.
STATUS_WITHHELD_LIMIT = 1000
# A withheld-changes log line names this many resources, then says how many more.
LOG_NAMES_LIMIT = 5

RegistryOpener = Callable[[Config, Path], Registry]


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
    result: str  # ok | partial | error (see discovery_cycles_total)
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
    """Runs cycles on a schedule and keeps what `/healthz`, `/readyz` and `/status` report."""

    def __init__(
        self,
        *,
        config: Config,
        config_path: Path,
        source: ProxySource,
        registry: Registry,
        open_registry: RegistryOpener,
        metrics: Metrics,
        redactor: Redactor | None = None,
        listen_fixed: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._config = config
        self._config_path = config_path
        self._source = source
        self._registry = GuardedRegistry(registry)
        self._next_registry: GuardedRegistry | None = None
        self._discarded: list[GuardedRegistry] = []  # opened by a reload, never used
        self._open_registry = open_registry
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
        metrics.poll_interval.set(config.poll_interval)

    @property
    def config(self) -> Config:
        return self._config

    # --- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        scheduler = AsyncIOScheduler(event_loop=asyncio.get_running_loop(), timezone=UTC)
        scheduler.add_listener(self._on_skipped, EVENT_JOB_MAX_INSTANCES)
        scheduler.add_job(
            self._scheduled_cycle,
            trigger=make_trigger(self._config),
            id=JOB_ID,
            name="discovery cycle",
            next_run_time=datetime.now(UTC),  # the first cycle at once
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
        """Stop scheduling; cancel a cycle's fetches, but let a started apply finish first."""
        if self._stopped:
            return
        self._stopping = True
        scheduler = self._scheduler
        if scheduler is not None and scheduler.running:
            scheduler.pause()
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
        await self._registry.close()
        if self._next_registry is not None:
            await self._next_registry.close()
        await self._close_discarded()
        self._stopped = True

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
        task = asyncio.create_task(self._cycle(), name="discovery-cycle")
        self._cycle_task = task
        try:
            await asyncio.wait([task])
        finally:
            if self._cycle_task is task:
                self._cycle_task = None
        if not task.cancelled() and task.exception() is not None:
            log.error("cycle task failed", exc_info=task.exception())

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
        cycle_id = uuid.uuid4().hex[:12]
        self._cycle_id = cycle_id
        with cycle_context(cycle_id):
            await self._run_cycle(cycle_id)

    async def _run_cycle(self, cycle_id: str) -> None:
        config = self._config  # a reload during this cycle applies from the next one
        registry = await self._registry_for_cycle()
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
        try:
            report = await run_cycle(
                config=config, source=self._source, registry=registry, on_scope=on_scope
            )
        except asyncio.CancelledError:
            log.warning(
                "cycle cancelled after %.1fs: the daemon is stopping; %s",
                time.monotonic() - t0,
                "its registry transaction is left to finish"
                if registry.applying
                else "it wrote nothing",
            )
            raise
        except RegistryConflict as exc:
            error = (
                "another writer changed the registry during the cycle; nothing was written and "
                f"the next cycle re-reads it ({exc})"
            )
            log.warning("cycle stopped: %s", error)
        except RegistryError as exc:
            error = f"registry unreachable: {exc}"
            log.error("cycle stopped: %s", error)
        except Exception as exc:  # a bug: say so loudly, keep the daemon (and its metrics) up
            error = f"unexpected error: {type(exc).__name__}: {exc}"
            log.exception("cycle stopped by an unexpected error; the next cycle runs as planned")
        self._finish(
            cycle_id=cycle_id,
            config=config,
            started=started,
            duration=time.monotonic() - t0,
            report=report,
            results=results,
            error=error,
            registry=registry,
        )

    async def _registry_for_cycle(self) -> GuardedRegistry:
        """Swap in a registry from a reloaded config; between cycles, so never mid-apply."""
        await self._close_discarded()
        if self._next_registry is not None:
            old, self._registry, self._next_registry = self._registry, self._next_registry, None
            await old.close()
            log.info("now using the registry from the reloaded config")
        return self._registry

    async def _close_discarded(self) -> None:
        while self._discarded:
            await self._discarded.pop().close()

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
        registry: GuardedRegistry,
    ) -> None:
        result = cycle_result(report)
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
        if result != "error":
            self._completed += 1
            self._last_success = finished
        self._log_outcome(outcome, duration)

    def _log_outcome(self, outcome: CycleOutcome, duration: float) -> None:
        report = outcome.report
        if report is None:
            log.info("cycle finished in %.2fs: error; nothing was written", duration)
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
        next_registry: GuardedRegistry | None = None
        if new.registry != old.registry:
            try:
                next_registry = GuardedRegistry(self._open_registry(new, path))
            except Exception as exc:  # whatever the backend says, the running config stays
                return self._reject(f"{path}: registry: {exc}")
        self._redactor.add(m.external_id for m in new.aws)
        changed = [name for name in Config.model_fields if getattr(old, name) != getattr(new, name)]

        if next_registry is not None:
            if self._next_registry is not None:  # two reloads between cycles: the last wins
                self._discarded.append(self._next_registry)
            self._next_registry = next_registry
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
        return True, "ok"

    def ready(self) -> tuple[bool, str]:
        if self._stopping:
            return False, "stopping"
        if self._registry.reachable is False:
            return False, self._redactor(f"registry unreachable: {self._registry.error}")
        if self._completed == 0:
            return False, "waiting for the first cycle to complete"
        return True, "ready"

    def status(self) -> dict[str, Any]:
        config = self._config
        ready, why = self.ready()
        job = self._scheduler.get_job(JOB_ID) if self._scheduler is not None else None
        running = self._cycle_task is not None and not self._cycle_task.done()
        doc: dict[str, Any] = {
            "discovery_group": config.discovery_group,
            "version": __version__,
            "started_at": iso(self._started_at),
            "ready": ready,
            "ready_reason": why,
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
) -> int:
    """Serve HTTP, run cycles until SIGTERM/SIGINT, then stop cleanly. Returns the exit code."""
    metrics = Metrics()
    host, port = parse_listen(listen)
    loop = asyncio.get_running_loop()
    async with AWSSource(
        on_call=metrics.observe_call, on_throttle=metrics.observe_throttle
    ) as source:
        daemon = Daemon(
            config=config,
            config_path=config_path,
            source=source,
            registry=registry,
            open_registry=open_registry,
            metrics=metrics,
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
            await daemon.wait_for_stop_request()
        finally:
            for sig in (*stop_signals, signal.SIGHUP):
                loop.remove_signal_handler(sig)
            await daemon.stop()
            await server.close()
    log.info("stopped")
    return EXIT_OK
