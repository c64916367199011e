"""`CycleSummary`: every count of a cycle, derived once, from a report or from the scopes of a
cycle that stopped before its plan."""

from __future__ import annotations

from discovery.core.model import (
    AWSInfo,
    Resource,
    Scope,
    ScopeResult,
    Skipped,
    StoredResource,
    Update,
)
from discovery.core.plan import Plan, Withheld
from discovery.core.summary import CycleReport, summarize, summarize_unfinished

ROLE = "arn:aws:iam::222222222222:role/discovery"
EAST = Scope(matcher_index=0, region="us-east-1", assume_role_arn=ROLE)
WEST = Scope(matcher_index=0, region="eu-west-1", assume_role_arn=ROLE)


def resource(name: str) -> Resource:
    return Resource(
        name=name,
        description="",
        labels={},
        protocol="postgres",
        uri="h:5432",
        aws=AWSInfo(
            region="us-east-1",
            account_id="222222222222",
            rdsproxy_name=name,
            rdsproxy_resource_id="",
        ),
    )


def skipped(code: str, name: str = "x") -> Skipped:
    return Skipped(name=name, reason=f"because {code}", code=code)


EAST_OK = ScopeResult(
    scope=EAST,
    ok=True,
    account_id="222222222222",
    resources=(resource("a"), resource("b")),
    skipped=(skipped("tls-disabled", "c"), skipped("tls-disabled", "d"), skipped("bad-tag")),
)
WEST_FAILED = ScopeResult(scope=WEST, ok=False, account_id="", error="denied")

PLAN = Plan(
    create=(resource("a"),),
    update=(
        Update(before=StoredResource(resource=resource("b"), revision=1), after=resource("b")),
    ),
    delete=(StoredResource(resource=resource("old"), revision=2),),
    unchanged=4,
    withheld=(
        Withheld(name="w1", action="delete", reason="frozen", code="scope-failed"),
        Withheld(name="w2", action="delete", reason="frozen", code="scope-failed"),
        Withheld(name="n", action="create", reason="held", code="conflict"),
    ),
    owned=7,
    guard_tripped=False,
)


def report(*, applied: bool, dry_run: bool = False) -> CycleReport:
    return CycleReport(
        discovery_group="g",
        dry_run=dry_run,
        plan=PLAN,
        scopes=(EAST_OK, WEST_FAILED),
        applied=applied,
    )


def test_an_applied_cycle_counts_what_it_wrote() -> None:
    s = summarize(report(applied=True))
    assert s.planned and s.applied and not s.dry_run
    assert (s.scope_count, s.failed, s.discovered, s.skipped) == (2, 1, 2, 3)
    assert (s.to_create, s.to_update, s.to_delete) == (1, 1, 1)
    assert (s.created, s.updated, s.deleted, s.unchanged) == (1, 1, 1, 4)
    assert (s.withheld, s.conflicts) == (3, 1)
    assert s.owned == 7 + 1 - 1  # after the apply
    assert s.withheld_by_reason == {"conflict": 1, "scope-failed": 2}
    assert s.skipped_by_reason == {"bad-tag": 1, "tls-disabled": 2}


def test_a_dry_run_plans_but_writes_nothing() -> None:
    s = summarize(report(applied=False, dry_run=True))
    assert (s.to_create, s.to_update, s.to_delete) == (1, 1, 1)
    assert (s.created, s.updated, s.deleted) == (0, 0, 0)
    assert s.owned == 7  # nothing written: what was owned before


def test_scopes_in_the_shape_every_output_shows() -> None:
    east, west = summarize(report(applied=True), last_success={EAST: 5.0}).scopes
    assert (east.matcher, east.region, east.account_id, east.assume_role_arn) == (
        0,
        "us-east-1",
        "222222222222",
        ROLE,
    )
    assert (east.status, east.resources, east.last_success) == ("ok", 2, 5.0)
    assert [k.name for k in east.skipped] == ["c", "d", "x"]
    assert east.skipped_by_reason == {"bad-tag": 1, "tls-disabled": 2}
    assert (west.status, west.error, west.account_id, west.last_success) == (
        "failed",
        "denied",
        "",
        None,
    )


def test_an_account_learnt_earlier_fills_in_what_the_result_does_not_say() -> None:
    _, west = summarize(report(applied=True), accounts={WEST: "333333333333"}).scopes
    assert west.account_id == "333333333333"
    east, _ = summarize(report(applied=True), accounts={EAST: "999999999999"}).scopes
    assert east.account_id == "222222222222"  # what AWS said this time wins


def test_a_cycle_stopped_before_its_plan_has_scopes_in_config_order_and_no_plan_counts() -> None:
    s = summarize_unfinished([WEST_FAILED, EAST_OK], order=[EAST, WEST])
    assert not s.planned and not s.applied
    assert [x.region for x in s.scopes] == ["us-east-1", "eu-west-1"]
    assert (s.discovered, s.failed, s.skipped) == (2, 1, 3)
    assert (s.created, s.unchanged, s.withheld, s.owned) == (0, 0, 0, 0)
    assert s.withheld_by_reason == {}
