"""One daemon cycle on a given registry, and how it ended, as a value (or, for a follower,
the registry read it does instead).

`CycleRunner.run` runs `run_cycle` and maps what stopped it to an outcome: `ok`, `partial`
(some scopes failed and were left frozen), `error` (registry unreachable, a concurrent writer,
a bug; nothing written) or `fenced` (this replica lost the leadership: stopped before it wrote,
or the registry's fence refused the apply). The mapping from errors to outcomes, and the log
lines that say it, live here and nowhere else. Across cycles the runner remembers, per scope,
its account once known and its last successful fetch, which `/status` and the metrics show.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from discovery.aws.rds_proxy import ProxySource
from discovery.core.config import Config
from discovery.core.model import Scope, ScopeResult
from discovery.core.scopes import expand_scopes
from discovery.core.summary import CycleReport, CycleSummary, summarize, summarize_unfinished
from discovery.daemon.backend import GuardedRegistry
from discovery.output.logs import cycle_context, scope_context
from discovery.reconcile.cycle import AccountLister, GoneState, run_cycle
from discovery.registry.base import PartialApply, RegistryConflict, RegistryError

log = logging.getLogger(__name__)

RESULT_OK = "ok"
RESULT_PARTIAL = "partial"
RESULT_ERROR = "error"
RESULT_FENCED = "fenced"
# A withheld-changes log line names this many resources, then says how many more.
LOG_NAMES_LIMIT = 5


@dataclass(frozen=True, kw_only=True)
class CycleOutcome:
    cycle_id: str
    started_at: float
    finished_at: float
    result: str  # ok | partial | error | fenced (see rdsproxy_discovery_cycles_total)
    error: str
    report: CycleReport | None  # None when the cycle stopped before its plan was applied
    summary: CycleSummary


class RunningCycle:
    """The cycle under way, and the one thing the daemon may do to it: stop it, but only
    before it has handed anything to the registry."""

    def __init__(self, *, cycle_id: str, registry: GuardedRegistry) -> None:
        self.id = cycle_id
        self.t0 = time.monotonic()
        self.task = asyncio.current_task()
        self._registry = registry
        self._applies = registry.applies  # when the cycle started
        self.abortable = False
        self.abort_reason = ""  # why the daemon stopped it (the leadership lost)

    def abort(self, why: str) -> bool:
        """Stop the cycle if it has not handed anything to the registry yet.

        An apply already under way is left alone: the registry's fence refuses it inside its
        transaction, and it must not be abandoned half-way.
        """
        task = self.task
        if (
            task is None
            or task.done()
            or task is asyncio.current_task()
            or not self.abortable
            or self._registry.applies != self._applies
        ):
            return False
        self.abort_reason = why
        task.cancel()
        return True


class CycleRunner:
    """Runs the daemon's cycles, one at a time, on the registry it is handed."""

    def __init__(
        self,
        *,
        source: ProxySource,
        clock: Callable[[], float] = time.time,
        lister: AccountLister | None = None,
        gone_state: Callable[[Config], GoneState] | None = None,
        dry_run: bool = False,
    ) -> None:
        self._source = source
        self._dry_run = dry_run  # plan and report every cycle, never apply
        self._clock = clock
        self._lister = lister  # organization accounts / enabled regions, cached across cycles
        self._gone_state = gone_state
        self._accounts: dict[Scope, str] = {}
        self._success: dict[Scope, float] = {}
        self.current: RunningCycle | None = None  # the cycle under way
        self.last: RunningCycle | None = None  # the cycle under way or the last one

    async def run(
        self,
        *,
        config: Config,
        registry: GuardedRegistry,
        still_leading: Callable[[], Awaitable[bool]],
        stopping: Callable[[], bool],
    ) -> CycleOutcome:
        """One cycle. Raises CancelledError only when the daemon is stopping."""
        cycle = RunningCycle(cycle_id=uuid.uuid4().hex[:12], registry=registry)
        self.current = self.last = cycle
        try:
            with cycle_context(cycle.id):
                return await self._run(cycle, config, registry, still_leading, stopping)
        finally:
            self.current = None

    async def _run(
        self,
        cycle: RunningCycle,
        config: Config,
        registry: GuardedRegistry,
        still_leading: Callable[[], Awaitable[bool]],
        stopping: Callable[[], bool],
    ) -> CycleOutcome:
        results: list[ScopeResult] = []

        def on_scope(result: ScopeResult) -> None:
            results.append(result)
            self._observe_scope(result)

        started = self._clock()
        scopes = expand_scopes(config)  # once per cycle: the fetch, the log and the summary
        log.info(
            "cycle started: %d scope(s), discovery group %r",
            len(scopes),
            config.discovery_group,
        )
        report: CycleReport | None = None
        error = ""
        fenced = False
        group = config.discovery_group
        cycle.abortable = True
        try:
            report = await run_cycle(
                config=config,
                source=self._source,
                registry=registry,
                scopes=scopes,
                on_scope=on_scope,
                lister=self._lister,
                gone_state=self._gone_state(config) if self._gone_state else None,
                clock=self._clock,
                dry_run=self._dry_run,
                cycle_id=cycle.id,
            )
        except asyncio.CancelledError:
            cycle.abortable = False
            why = cycle.abort_reason
            if stopping() or not why:
                log.warning(
                    "cycle cancelled after %.1fs: the daemon is stopping; %s",
                    time.monotonic() - cycle.t0,
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
                f"this replica lost the leadership of discovery group {group!r} "
                f"during the cycle ({why}); the cycle was stopped before it wrote anything"
            )
            log.warning("cycle fenced: %s", error)
        except RegistryConflict as exc:
            cycle.abortable = False
            if await still_leading():
                error = (
                    "another writer changed the registry during the cycle; nothing was written "
                    f"and the next cycle re-reads it ({exc})"
                )
                log.warning("cycle stopped: %s", error)
            else:
                fenced = True
                error = (
                    f"this replica is no longer the leader of discovery group {group!r}: the "
                    "registry refused the apply inside its transaction and nothing was written "
                    f"({exc})"
                )
                log.warning("cycle fenced: %s", error)
        except PartialApply as exc:
            error = f"registry apply incomplete: {exc}"
            log.error("cycle stopped: %s", error)
        except RegistryError as exc:
            error = f"registry unreachable: {exc}"
            log.error("cycle stopped: %s", error)
        except Exception as exc:  # a bug: say so loudly, keep the daemon (and its metrics) up
            error = f"unexpected error: {type(exc).__name__}: {exc}"
            log.exception("cycle stopped by an unexpected error; the next cycle runs as planned")
        cycle.abortable = False
        duration = time.monotonic() - cycle.t0
        outcome = CycleOutcome(
            cycle_id=cycle.id,
            started_at=started,
            finished_at=started + duration,
            result=RESULT_FENCED if fenced else cycle_result(report),
            error=error,
            report=report,
            summary=self._summary(scopes, report, results),
        )
        log_outcome(outcome, duration)
        return outcome

    async def follow(self, registry: GuardedRegistry) -> bool:
        """A follower's scheduled run, instead of a cycle: one registry read. True if it
        answered."""
        was = registry.reachable
        try:
            await registry.list_resources()
        except RegistryError as exc:
            if was is not False:
                log.error("registry unreachable (this replica follows): %s", exc)
            return False
        if was is False:
            log.info("registry reachable again")
        return True

    def _observe_scope(self, result: ScopeResult) -> None:
        scope = result.scope
        account = result.account_id or scope.role_account_id
        if result.ok:
            self._success[scope] = self._clock()
            if account:
                self._accounts[scope] = account
            return
        with scope_context(account=account or self._accounts.get(scope, ""), region=scope.region):
            log.warning(
                "scope failed; what it could have produced is left as it is: %s", result.error
            )

    def _summary(
        self,
        scopes: Sequence[Scope],
        report: CycleReport | None,
        results: list[ScopeResult],
    ) -> CycleSummary:
        # When AWS has not said a scope's account this time: its role's, else the one learnt.
        accounts = {s: s.role_account_id or self._accounts.get(s, "") for s in scopes}
        if report is not None:
            return summarize(report, accounts=accounts, last_success=self._success)
        return summarize_unfinished(
            results, order=scopes, accounts=accounts, last_success=self._success
        )


def cycle_result(report: CycleReport | None) -> str:
    if report is None:
        return RESULT_ERROR
    # A confirming read that failed is like a failed scope: part of AWS could not be read.
    return RESULT_PARTIAL if report.failed_scopes or report.unconfirmed else RESULT_OK


def log_outcome(outcome: CycleOutcome, duration: float) -> None:
    """The cycle's log lines: each change written, withheld changes by reason, one summary."""
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
    summary = outcome.summary
    if report.dry_run:
        log.info(
            "cycle finished in %.2fs: %s (dry-run, nothing written); would create %d, update %d, "
            "delete %d; %d unchanged, %d withheld; %d of %d scope(s) ok",
            duration,
            outcome.result,
            summary.to_create,
            summary.to_update,
            summary.to_delete,
            summary.unchanged,
            summary.withheld,
            summary.scope_count - summary.failed,
            summary.scope_count,
        )
        return
    log.info(
        "cycle finished in %.2fs: %s; %d created, %d updated, %d deleted, %d unchanged, "
        "%d withheld; %d of %d scope(s) ok",
        duration,
        outcome.result,
        summary.created,
        summary.updated,
        summary.deleted,
        summary.unchanged,
        summary.withheld,
        summary.scope_count - summary.failed,
        summary.scope_count,
    )
