"""One discovery cycle: scopes → fetch (concurrent) → convert → plan → apply → report.

The imperative shell around the pure core. The same function serves `scan`, `scan --dry-run`
and the daemon; dry-run means "stop after the plan", never a flag passed into backends.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Protocol

from discovery.aws.calls import FetchError
from discovery.aws.inventory import Inventory
from discovery.aws.rds_proxy import FetchedScope, ProxySource
from discovery.core.config import Config
from discovery.core.convert import convert_proxies
from discovery.core.journal import window_deletes
from discovery.core.model import JournalStamp, Scope, ScopeResult, StoredResource
from discovery.core.organization import ListingFreezes, Listings, listing_freezes
from discovery.core.plan import Plan, make_plan
from discovery.core.scopes import expand_scopes, needs_listings
from discovery.core.summary import CycleReport
from discovery.output.logs import scope_context
from discovery.reconcile.confirming import confirm_plan
from discovery.registry.base import Registry

ScopeObserver = Callable[[ScopeResult], None]
log = logging.getLogger(__name__)


class AccountLister(Protocol):
    """Where organization accounts and enabled regions come from (cached by the source)."""

    async def listings(self, config: Config) -> Inventory: ...


class GoneState(Protocol):
    """When accounts were first seen gone from their organization, kept across runs."""

    def load(self) -> dict[str, float]: ...

    def save(self, gone: Mapping[str, float]) -> None: ...


Kept = dict[Scope, FetchedScope]


async def fetch_scope(source: ProxySource, scope: Scope, kept: Kept | None = None) -> ScopeResult:
    """Fetch one scope and convert what it holds with the matching the scope carries.

    `kept` receives what the scope fetched, for the confirmation reads of this cycle.
    """
    try:
        fetched = await source.fetch(scope)
    except FetchError as exc:
        account = exc.account_id or scope.role_account_id
        return ScopeResult(
            scope=scope, ok=False, account_id=account, error=str(exc), error_kind=exc.kind.value
        )
    if kept is not None:
        kept[scope] = fetched
    converted = convert_proxies(fetched.proxies, scope.matching)
    for warning in converted.warnings:
        log.warning("%s/%s: %s", fetched.account_id or "?", scope.region, warning)
    return ScopeResult(
        scope=scope,
        ok=True,
        account_id=fetched.account_id,
        resources=converted.resources,
        skipped=converted.skipped,
    )


async def fetch_all(
    source: ProxySource,
    scopes: Sequence[Scope],
    on_scope: ScopeObserver | None = None,
    kept: Kept | None = None,
) -> tuple[ScopeResult, ...]:
    async def one(scope: Scope) -> ScopeResult:
        # Each scope runs in its own task (gather), so this tags only its own log lines.
        with scope_context(account=scope.role_account_id, region=scope.region):
            result = await fetch_scope(source, scope, kept)
            if on_scope is not None:
                on_scope(result)
        return result

    return tuple(await asyncio.gather(*(one(s) for s in scopes)))


async def run_cycle(
    *,
    config: Config,
    source: ProxySource,
    registry: Registry,
    dry_run: bool = False,
    force: bool = False,
    accept_config_change: bool = False,
    on_scope: ScopeObserver | None = None,
    scopes: Sequence[Scope] | None = None,
    cycle_id: str = "",
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    lister: AccountLister | None = None,
    gone_state: GoneState | None = None,
    clock: Callable[[], float] = time.time,
) -> CycleReport:
    """One cycle over `scopes` (by default every scope of `config`); applies unless dry-run.

    An apply is journaled under `cycle_id` (a new id when empty) and the time `now` gives.
    A config with organization or `regions: ["*"]` matchers expands its scopes here, from
    `lister`'s listings (without a lister those matchers have no scopes and freeze what they
    registered); `gone_state` keeps the "first seen gone" clock of vanished accounts (none:
    the clock starts again every cycle, so no vanished account is ever emptied).
    """
    listed = Inventory(listings=Listings(), failures=())
    if needs_listings(config):
        if lister is not None:
            listed = await lister.listings(config)
        scopes = expand_scopes(config, listed.listings)
    elif scopes is None:
        scopes = expand_scopes(config)
    # The registry is read after the fetch, so the plan diffs against the freshest state.
    kept: Kept = {}
    results = (*await fetch_all(source, scopes, on_scope, kept), *listed.failures)
    current = await registry.list_resources()
    freezes = None
    if needs_listings(config):
        freezes = listing_freezes(
            config,
            listed.listings,
            current=current,
            gone=gone_state.load() if gone_state is not None else {},
            now=clock(),
        )
    at = now()

    async def plan_for(scope_results: Sequence[ScopeResult]) -> Plan:
        return await _plan(
            config,
            scope_results,
            current,
            registry,
            force=force,
            accept_config_change=accept_config_change,
            at=at,
            listed=freezes,
        )

    # Deletes and updates that remove a label are confirmed by targeted reads first (core.confirm).
    settled, results = await confirm_plan(
        plan=await plan_for(results), results=results, kept=kept, source=source, replan=plan_for
    )
    plan = settled.plan
    if freezes is not None and gone_state is not None and not dry_run:
        gone_state.save(freezes.gone)
    applied = False
    if not dry_run and plan.changes:
        stamp = JournalStamp(
            cycle_id=cycle_id or uuid.uuid4().hex[:12],
            discovery_group=config.discovery_group,
            at=at,
            # An accepted config change is an operator's review too: a checkpoint for the
            # window's guard, or the deletes it confirmed would hold back the next hour's.
            forced=force or accept_config_change,
        )
        await registry.apply(replace(plan.changes, journal=stamp))
        applied = True
    return CycleReport(
        discovery_group=config.discovery_group,
        dry_run=dry_run,
        plan=plan,
        scopes=results,
        applied=applied,
        unconfirmed=settled.failed,
    )


async def _plan(
    config: Config,
    results: Sequence[ScopeResult],
    current: Sequence[StoredResource],
    registry: Registry,
    *,
    force: bool,
    accept_config_change: bool,
    at: datetime,
    listed: ListingFreezes | None = None,
) -> Plan:
    """The plan, with the deletes of `safety.delete_window` counted by the guard.

    The journal is read only when this cycle has deletes the guard could still hold back, so a
    steady-state cycle costs no extra query.
    """
    safety = config.safety

    def plan_with(recent: int) -> Plan:
        return make_plan(
            scopes=results,
            current=current,
            discovery_group=config.discovery_group,
            policy=safety.policy,
            max_delete_fraction=safety.max_delete_fraction,
            force=force,
            window_deletes=recent,
            delete_window=safety.delete_window,
            listed=listed,
            accept_config_change=accept_config_change,
        )

    plan = plan_with(0)
    if force or not plan.delete or safety.delete_window <= 0:
        return plan
    entries = await registry.history(
        discovery_group=config.discovery_group,
        since=at - timedelta(seconds=safety.delete_window),
    )
    recent = window_deletes(entries)
    return plan_with(recent) if recent else plan
