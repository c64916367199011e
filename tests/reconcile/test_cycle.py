"""The reconcile cycle in process: `run_cycle` on a real `MemoryRegistry` and a fake AWS source.

No subprocess, no emulator: the fake source answers each scope from a dict (or fails it), so
every case reads as fleet → cycle → what the registry holds. The expectations come from
DESIGN §6: converge, freeze what a failed scope could have produced, guard mass deletes, and
never touch what another owner holds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from discovery.aws.calls import FetchError
from discovery.aws.rds_proxy import FetchedScope
from discovery.core.config import Config, config_from_mapping
from discovery.core.confirm import Answer, Check
from discovery.core.model import (
    LABEL_DISCOVERY_GROUP,
    LABEL_ORIGIN,
    AWSInfo,
    Proxy,
    ProxyEndpoint,
    Resource,
    Scope,
    ScopeResult,
)
from discovery.core.plan import REASON_CONFLICT, REASON_GUARD, REASON_SCOPE_FAILED
from discovery.core.scopes import expand_scopes
from discovery.core.summary import CycleReport
from discovery.reconcile.cycle import run_cycle
from discovery.registry.memory import MemoryRegistry

GROUP = "prod"
ACCOUNT_A = "111111111111"
ACCOUNT_B = "222222222222"
ROLE_A = f"arn:aws:iam::{ACCOUNT_A}:role/discovery"
ROLE_B = f"arn:aws:iam::{ACCOUNT_B}:role/discovery"
EAST = "us-east-1"
WEST = "eu-west-1"
AREAS = ((ACCOUNT_A, EAST), (ACCOUNT_A, WEST), (ACCOUNT_B, EAST))


def make_config(*, tags: Mapping[str, Any] | None = None, **safety: Any) -> Config:
    """Three scopes: account A in two regions, account B in one."""
    selector = {"tags": dict(tags)} if tags is not None else {}
    return config_from_mapping(
        {
            "discovery_group": GROUP,
            "aws": [
                {"types": ["rdsproxy"], "regions": [EAST, WEST], "assume_role_arn": ROLE_A}
                | selector,
                {"types": ["rdsproxy"], "regions": [EAST], "assume_role_arn": ROLE_B} | selector,
            ],
            "safety": safety,
        }
    )


def make_proxy(
    name: str, account: str = ACCOUNT_A, region: str = EAST, *, env: str = "prod"
) -> Proxy:
    host = f"{name}.proxy-cabc.{region}.rds.amazonaws.com"
    return Proxy(
        name=name,
        arn=f"arn:aws:rds:{region}:{account}:db-proxy:prx-{name}",
        endpoint=host,
        engine_family="POSTGRESQL",
        status="available",
        require_tls=True,
        vpc_id="vpc-1",
        tags={"env": env},
        endpoints=(
            ProxyEndpoint(
                name="default",
                proxy_name=name,
                endpoint=host,
                status="available",
                target_role="READ_WRITE",
                is_default=True,
            ),
        ),
    )


def resource_name(name: str, account: str = ACCOUNT_A, region: str = EAST) -> str:
    return f"{name}-rdsproxy-{region}-{account}"


class FakeSource:
    """A `ProxySource` over a dict: (account, region) → proxies, with scopes that can fail."""

    def __init__(self, proxies: Iterable[Proxy] = ()) -> None:
        self.fleet: dict[tuple[str, str], dict[str, Proxy]] = {}
        self.failing: set[tuple[str, str]] = set()
        self.fetched: list[Scope] = []
        for proxy in proxies:
            self.put(proxy)

    @staticmethod
    def _area(proxy: Proxy) -> tuple[str, str]:
        _, _, _, region, account, *_ = proxy.arn.split(":")
        return account, region

    def put(self, proxy: Proxy) -> None:
        self.fleet.setdefault(self._area(proxy), {})[proxy.name] = proxy

    def remove(self, proxy: Proxy) -> None:
        del self.fleet[self._area(proxy)][proxy.name]

    async def fetch(self, scope: Scope) -> FetchedScope:
        self.fetched.append(scope)
        area = (scope.role_account_id, scope.region)
        if area in self.failing:
            raise FetchError(
                f"rds:DescribeDBProxies denied in {area[0]}/{area[1]}", account_id=area[0]
            )
        proxies = tuple(self.fleet.get(area, {}).values())
        return FetchedScope(account_id=area[0], proxies=proxies)

    async def confirm(self, scope: Scope, check: Check) -> Answer:
        """The targeted reads, answered from the fleet as it is."""
        proxies = self.fleet.get((scope.role_account_id, scope.region), {})
        proxy = proxies.get(check.proxy_name)
        if check.kind == "tags":
            found = [p for p in proxies.values() if p.arn == check.arn]
            return Answer(tags=dict(found[0].tags)) if found else Answer(error="not found")
        if check.kind == "endpoint":
            names = {e.name for e in proxy.endpoints} if proxy is not None else set()
            return Answer(exists=check.endpoint_name in names)
        return Answer(exists=proxy is not None and proxy.arn.endswith(check.resource_id))


async def cycle(
    source: FakeSource, registry: MemoryRegistry, config: Config | None = None, **kwargs: Any
) -> CycleReport:
    return await run_cycle(
        config=config or make_config(), source=source, registry=registry, **kwargs
    )


async def held(registry: MemoryRegistry) -> dict[str, Resource]:
    return {stored.resource.name: stored.resource for stored in await registry.list_resources()}


def foreign(name: str, labels: Mapping[str, str]) -> Resource:
    return Resource(
        name=name,
        description="registered by hand",
        labels=dict(labels),
        protocol="postgres",
        uri="db.internal:5432",
        aws=AWSInfo(region=EAST, account_id=ACCOUNT_A, rdsproxy_name=name, rdsproxy_resource_id=""),
    )


def fleet_of_one_per_scope() -> list[Proxy]:
    return [make_proxy(f"p{i}", account, region) for i, (account, region) in enumerate(AREAS)]


# --- Converging -------------------------------------------------------------------------------


async def test_first_cycle_creates_and_the_next_plan_is_empty() -> None:
    source, registry = FakeSource(fleet_of_one_per_scope()), MemoryRegistry()

    first = await cycle(source, registry)

    expected = {resource_name(f"p{i}", a, r) for i, (a, r) in enumerate(AREAS)}
    assert {r.name for r in first.plan.create} == expected
    assert first.applied and first.failed_scopes == 0
    assert set(await held(registry)) == expected

    second = await cycle(source, registry)

    assert not second.plan.changes
    assert second.plan.unchanged == 3 and second.plan.withheld == ()
    assert not second.applied
    assert len(registry.applied) == 1


async def test_a_changed_proxy_is_updated() -> None:
    orders = make_proxy("orders")
    source, registry = FakeSource([orders, make_proxy("billing")]), MemoryRegistry()
    await cycle(source, registry)

    source.put(replace(orders, tags={"env": "staging"}))
    report = await cycle(source, registry)

    (update,) = report.plan.update
    assert update.before.resource.labels["env"] == "prod"
    assert update.after.labels["env"] == "staging"
    assert report.plan.create == () and report.plan.delete == ()
    assert (await held(registry))[resource_name("orders")].labels["env"] == "staging"
    assert not (await cycle(source, registry)).plan.changes


async def test_a_vanished_proxy_is_deleted() -> None:
    gone = make_proxy("gone")
    source = FakeSource([gone, make_proxy("kept-1"), make_proxy("kept-2")])
    registry = MemoryRegistry()
    await cycle(source, registry)

    source.remove(gone)
    report = await cycle(source, registry)

    assert [s.resource.name for s in report.plan.delete] == [resource_name("gone")]
    assert not report.plan.guard_tripped
    assert set(await held(registry)) == {resource_name("kept-1"), resource_name("kept-2")}
    assert not (await cycle(source, registry)).plan.changes


async def test_the_matcher_selector_decides_what_is_registered() -> None:
    source = FakeSource([make_proxy("orders"), make_proxy("web", env="staging")])
    registry = MemoryRegistry()

    report = await cycle(source, registry, make_config(tags={"env": "prod"}))

    assert set(await held(registry)) == {resource_name("orders")}
    skipped = [s for result in report.scopes for s in result.skipped]
    assert [(s.name, s.code) for s in skipped] == [("web", "no-match")]


# --- A failed scope ---------------------------------------------------------------------------


async def test_a_failed_scope_freezes_its_area_and_the_others_converge() -> None:
    changed, vanished = make_proxy("changed"), make_proxy("vanished")
    source = FakeSource([changed, vanished, make_proxy("west", ACCOUNT_A, WEST)])
    registry = MemoryRegistry()
    await cycle(source, registry)
    before = await registry.list_resources()

    # Everything in A/us-east-1 moves while that scope cannot be read ...
    source.put(replace(changed, tags={"env": "staging"}))
    source.remove(vanished)
    source.put(make_proxy("new-in-failed-area"))
    source.failing.add((ACCOUNT_A, EAST))
    # ... and the other scopes change too.
    source.put(make_proxy("new-west", ACCOUNT_A, WEST))
    source.put(make_proxy("new-b", ACCOUNT_B, EAST))
    report = await cycle(source, registry)

    (failed,) = [r for r in report.scopes if not r.ok]
    assert (failed.scope.role_account_id, failed.scope.region) == (ACCOUNT_A, EAST)
    assert failed.account_id == ACCOUNT_A and "denied" in failed.error
    assert report.failed_scopes == 1
    # Nothing in the failed area is created, updated or deleted ...
    after = {s.resource.name: s for s in await registry.list_resources()}
    for stored in before:
        if stored.resource.aws.region == EAST:
            assert after[stored.resource.name] == stored
    assert resource_name("new-in-failed-area") not in after
    # (A failed scope produces nothing, so what it held looks vanished: frozen, not deleted.)
    withheld = {w.name: (w.action, w.code) for w in report.plan.withheld}
    assert withheld == {
        resource_name("changed"): ("delete", REASON_SCOPE_FAILED),
        resource_name("vanished"): ("delete", REASON_SCOPE_FAILED),
    }
    # ... while the scopes that answered still converge.
    assert {r.name for r in report.plan.create} == {
        resource_name("new-west", ACCOUNT_A, WEST),
        resource_name("new-b", ACCOUNT_B, EAST),
    }

    source.failing.clear()
    healed = await cycle(source, registry)

    assert [r.name for r in healed.plan.create] == [resource_name("new-in-failed-area")]
    assert [u.after.name for u in healed.plan.update] == [resource_name("changed")]
    assert [s.resource.name for s in healed.plan.delete] == [resource_name("vanished")]
    assert not (await cycle(source, registry)).plan.changes


# --- The delete guard -------------------------------------------------------------------------


async def test_the_delete_guard_withholds_and_force_overrides() -> None:
    proxies = [make_proxy(f"db{i}", ACCOUNT_B) for i in range(5)]
    source, registry = FakeSource([*proxies, make_proxy("stays")]), MemoryRegistry()
    await cycle(source, registry)
    for proxy in proxies:
        source.remove(proxy)

    guarded = await cycle(source, registry)

    assert guarded.plan.guard_tripped
    assert guarded.plan.delete == ()
    assert {w.name for w in guarded.plan.withheld if w.code == REASON_GUARD} == {
        resource_name(p.name, ACCOUNT_B) for p in proxies
    }
    assert len(await held(registry)) == 6

    forced = await cycle(source, registry, force=True)

    assert not forced.plan.guard_tripped
    assert len(forced.plan.delete) == 5
    assert set(await held(registry)) == {resource_name("stays")}


# --- What others own --------------------------------------------------------------------------


async def test_foreign_resources_are_never_touched() -> None:
    other_group = foreign(
        resource_name("other", ACCOUNT_A, EAST),
        {LABEL_ORIGIN: "cloud", LABEL_DISCOVERY_GROUP: "staging"},
    )
    no_origin = foreign("hand-made", {LABEL_DISCOVERY_GROUP: GROUP})
    registry = MemoryRegistry(initial=[other_group, no_origin])
    before = await registry.list_resources()
    source = FakeSource([make_proxy("orders")])

    report = await cycle(source, registry)
    # Even a cycle that would delete everything it owns leaves them alone.
    source.remove(make_proxy("orders"))
    emptied = await cycle(source, registry, force=True)

    assert report.plan.owned == 0 and emptied.plan.owned == 1
    assert [s.resource.name for s in emptied.plan.delete] == [resource_name("orders")]
    assert await registry.list_resources() == before


async def test_a_name_held_by_a_foreign_resource_is_a_conflict() -> None:
    squatter = foreign(resource_name("orders"), {"owner": "dba-team"})
    registry = MemoryRegistry(initial=[squatter])
    before = await registry.list_resources()

    report = await cycle(FakeSource([make_proxy("orders"), make_proxy("billing")]), registry)

    assert report.plan.conflicts == 1
    (conflict,) = [w for w in report.plan.withheld if w.code == REASON_CONFLICT]
    assert (conflict.name, conflict.action) == (resource_name("orders"), "create")
    assert [r.name for r in report.plan.create] == [resource_name("billing")]
    assert (await held(registry))[resource_name("orders")] == squatter
    assert [s for s in await registry.list_resources() if s.resource == squatter] == before


# --- Dry run and scopes -----------------------------------------------------------------------


async def test_dry_run_plans_but_writes_nothing() -> None:
    registry = MemoryRegistry()

    report = await cycle(FakeSource(fleet_of_one_per_scope()), registry, dry_run=True)

    assert report.dry_run and not report.applied
    assert len(report.plan.create) == 3
    assert registry.applied == [] and await registry.list_resources() == []


async def test_run_cycle_fetches_the_scopes_it_is_given_with_their_own_selector() -> None:
    config = make_config(tags={"env": "prod"})
    (scope, *_) = expand_scopes(config)
    staging_only = replace(scope, selector=(("env", ("staging",)),))
    source = FakeSource([make_proxy("orders"), make_proxy("web", env="staging")])
    registry = MemoryRegistry()
    seen: list[ScopeResult] = []

    report = await cycle(source, registry, config, scopes=[staging_only], on_scope=seen.append)

    assert source.fetched == [staging_only]
    assert [r.scope for r in report.scopes] == [staging_only] == [r.scope for r in seen]
    assert set(await held(registry)) == {resource_name("web")}


def test_expand_scopes_carries_each_matcher_selector_role_and_group() -> None:
    scopes = expand_scopes(make_config(tags={"env": ["prod", "dev"]}))

    assert [(s.matcher_index, s.region, s.assume_role_arn) for s in scopes] == [
        (0, EAST, ROLE_A),
        (0, WEST, ROLE_A),
        (1, EAST, ROLE_B),
    ]
    assert {s.selector for s in scopes} == {(("env", ("prod", "dev")),)}
    assert {s.discovery_group for s in scopes} == {GROUP}
    assert len(set(scopes)) == 3  # hashable, and distinct per (matcher, region)


# --- Invariant ------------------------------------------------------------------------------

NAMES = st.sets(st.sampled_from(["a", "b", "c", "d", "e", "f"]), max_size=6)
FLEETS = st.tuples(NAMES, NAMES, NAMES)  # one set of proxy names per area in AREAS


def fleet_source(fleet: tuple[set[str], ...], env: str) -> FakeSource:
    return FakeSource(
        make_proxy(name, account, region, env=env)
        for names, (account, region) in zip(fleet, AREAS, strict=True)
        for name in names
    )


@settings(max_examples=40, deadline=None)
@given(first=FLEETS, second=FLEETS, env=st.sampled_from(["prod", "dev"]))
def test_apply_then_replan_is_empty(
    first: tuple[set[str], ...], second: tuple[set[str], ...], env: str
) -> None:
    async def scenario() -> None:
        registry = MemoryRegistry()
        await cycle(fleet_source(first, "prod"), registry)
        # Any fleet after any other: once applied (force: past the guard), nothing is left.
        source = fleet_source(second, env)
        await cycle(source, registry, force=True)
        replan = await cycle(source, registry)
        assert not replan.plan.changes and replan.plan.withheld == ()
        assert replan.plan.unchanged == sum(len(names) for names in second)

    asyncio.run(scenario())
