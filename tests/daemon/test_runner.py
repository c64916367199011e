"""The cycle runner alone: each way a cycle ends is one outcome value (ok, partial, error,
fenced), with its error text, on the in-memory registry and the in-process fakes."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from discovery.aws.calls import FetchError
from discovery.aws.rds_proxy import FetchedScope
from discovery.core.confirm import Answer, Check
from discovery.core.model import Scope
from discovery.daemon.backend import GuardedRegistry
from discovery.daemon.runner import CycleOutcome, CycleRunner
from discovery.registry.base import RegistryConflict, RegistryError
from discovery.registry.memory import MemoryRegistry
from tests.daemon.inprocess import (
    ACCOUNT,
    ROLE,
    FakeLeadership,
    FakeSource,
    FencedRegistry,
    Lock,
    a_proxy,
    make_config,
)

TWO_REGIONS = [
    {"types": ["rdsproxy"], "regions": ["us-east-1", "eu-west-1"], "assume_role_arn": ROLE}
]


class FailingRegion(FakeSource):
    """Answers every region but one, which is denied."""

    def __init__(self, region: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.region = region

    async def fetch(self, scope: Scope) -> FetchedScope:
        if scope.region == self.region:
            raise FetchError("rds:DescribeDBProxies: AccessDenied", account_id=ACCOUNT)
        return await super().fetch(scope)


async def leading() -> bool:
    return True


async def not_leading() -> bool:
    return False


async def run(
    source: FakeSource,
    registry: Any,
    *,
    still_leading: Any = leading,
    runner: CycleRunner | None = None,
    **config: Any,
) -> CycleOutcome:
    runner = runner or CycleRunner(source=source, clock=lambda: 100.0)
    return await runner.run(
        config=make_config(**config),
        registry=registry if isinstance(registry, GuardedRegistry) else GuardedRegistry(registry),
        still_leading=still_leading,
        stopping=lambda: False,
    )


async def test_ok_writes_the_plan_and_counts_it() -> None:
    registry = MemoryRegistry()
    outcome = await run(FakeSource(proxies=(a_proxy("p1"), a_proxy("p2"))), registry)
    assert (outcome.result, outcome.error) == ("ok", "")
    assert outcome.report is not None and outcome.report.applied
    summary = outcome.summary
    assert (summary.created, summary.owned, summary.discovered, summary.failed) == (2, 2, 2, 0)
    assert [s.last_success for s in summary.scopes] == [100.0]
    assert len(await registry.list_resources()) == 2


async def test_partial_leaves_the_failed_scope_frozen() -> None:
    outcome = await run(
        FailingRegion("eu-west-1", proxies=(a_proxy("p1"),)), MemoryRegistry(), aws=TWO_REGIONS
    )
    assert outcome.result == "partial" and outcome.error == ""
    [east, west] = outcome.summary.scopes
    assert (east.region, east.status, east.last_success) == ("us-east-1", "ok", 100.0)
    assert (west.region, west.status, west.account_id) == ("eu-west-1", "failed", ACCOUNT)
    assert "AccessDenied" in west.error and west.last_success is None


async def test_an_unreachable_registry_is_an_error_that_wrote_nothing() -> None:
    class Down(MemoryRegistry):
        async def list_resources(self) -> Any:
            raise RegistryError("cannot open registry /nowhere/discovery.db")

    registry = GuardedRegistry(Down())
    outcome = await run(FakeSource(proxies=(a_proxy("p1"),)), registry)
    assert outcome.result == "error"
    assert outcome.error == "registry unreachable: cannot open registry /nowhere/discovery.db"
    assert outcome.report is None and not outcome.summary.planned
    assert [s.resources for s in outcome.summary.scopes] == [1]  # what the scopes said
    assert registry.reachable is False


async def test_a_conflict_while_still_leading_is_an_error() -> None:
    class Racing(MemoryRegistry):
        async def apply(self, changes: Any) -> None:
            raise RegistryConflict("cannot create 'x': it already exists")

    outcome = await run(FakeSource(proxies=(a_proxy("p1"),)), Racing())
    assert outcome.result == "error"
    assert outcome.error.startswith("another writer changed the registry during the cycle")
    assert "it already exists" in outcome.error


async def test_an_apply_refused_by_the_fence_is_fenced() -> None:
    lock = Lock()
    leadership = FakeLeadership(lock)
    assert await leadership.try_acquire()
    registry = FencedRegistry(leadership)
    registry.steal_on_apply = True
    outcome = await run(FakeSource(proxies=(a_proxy("p1"),)), registry, still_leading=not_leading)
    assert outcome.result == "fenced" and registry.refused == 1
    assert "refused the apply inside its transaction" in outcome.error
    assert await registry.list_resources() == []


async def test_an_unexpected_error_is_an_error_naming_it() -> None:
    class Broken(MemoryRegistry):
        async def apply(self, changes: Any) -> None:
            raise ValueError("a bug")

    outcome = await run(FakeSource(proxies=(a_proxy("p1"),)), Broken())
    assert (outcome.result, outcome.error) == ("error", "unexpected error: ValueError: a bug")


async def test_aborted_before_it_writes_is_fenced_and_stopping_is_a_cancellation() -> None:
    source = FakeSource(proxies=(a_proxy("p1"),))
    source.block = asyncio.Event()
    registry = MemoryRegistry()
    runner = CycleRunner(source=source)
    cycle = asyncio.create_task(run(source, registry, runner=runner))
    await asyncio.wait_for(source.fetching.wait(), timeout=10)
    assert runner.current is not None and runner.current.abort("its lock was taken")
    outcome = await asyncio.wait_for(cycle, timeout=10)
    assert outcome.result == "fenced" and "its lock was taken" in outcome.error
    assert registry.applied == [] and runner.current is None

    # Cancelled with no abort reason: the daemon is stopping; no outcome at all.
    source.fetching.clear()
    cycle = asyncio.create_task(run(source, registry, runner=runner))
    await asyncio.wait_for(source.fetching.wait(), timeout=10)
    cycle.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cycle
    assert registry.applied == []


async def test_a_cycle_that_has_handed_its_apply_over_cannot_be_aborted() -> None:
    from tests.daemon.inprocess import SlowApplyRegistry

    registry = SlowApplyRegistry(seconds=0.3)
    source = FakeSource(proxies=(a_proxy("p1"),))
    runner = CycleRunner(source=source)
    cycle = asyncio.create_task(run(source, registry, runner=runner))
    await asyncio.wait_for(registry.applying.wait(), timeout=10)
    assert runner.current is not None and not runner.current.abort("too late")
    outcome = await asyncio.wait_for(cycle, timeout=10)
    assert outcome.result == "ok" and registry.finished == 1


async def test_a_failed_confirmation_is_partial_and_keeps_the_resource() -> None:
    class Unconfirmed(FakeSource):
        async def confirm(self, scope: Scope, check: Check) -> Answer:
            return Answer(error="rds:DescribeDBProxies failed: Throttling: Rate exceeded")

    registry = MemoryRegistry()
    source = Unconfirmed(proxies=(a_proxy("p1"), a_proxy("p2")))
    assert (await run(source, registry)).result == "ok"
    source.proxies = (a_proxy("p1"),)  # p2 left out of the listing; the read cannot confirm it

    outcome = await run(source, registry)

    assert outcome.result == "partial" and outcome.error == ""
    assert outcome.summary.withheld_by_reason == {"unconfirmed": 1}
    assert len(await registry.list_resources()) == 2


async def test_the_daemons_cycles_are_journaled_and_guarded_over_the_window() -> None:
    """The daemon's cycle is `run_cycle`: it journals under the cycle's own id, and its guard
    counts the window (issue 12, hole 3): 40 -> 29 applies, 29 -> 21 is withheld."""
    registry = GuardedRegistry(MemoryRegistry())
    outcomes = [
        await run(FakeSource(proxies=tuple(a_proxy(f"p{i:02d}") for i in range(n))), registry)
        for n in (40, 29, 21)
    ]

    assert [o.result for o in outcomes] == ["ok", "ok", "ok"]
    last = outcomes[-1].report
    assert last is not None and last.plan.guard_tripped and last.plan.delete == ()
    assert "11 already applied within safety.delete_window=1h" in last.plan.withheld[0].reason
    entries = await registry.history()
    assert [e.cycle_id for e in entries] == [outcomes[1].cycle_id, outcomes[0].cycle_id]
    assert [(len(e.created), len(e.deleted)) for e in entries] == [(0, 11), (40, 0)]
    assert {e.discovery_group for e in entries} == {"unit"}
