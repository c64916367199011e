"""Config-change deletes (issue 12, hole 7b): an owned resource whose account-region no scope of
the current config covers any more is withheld (code `config-change`, a review code) until the
operator confirms it with `--accept-config-change` or `--force`. The rule reads only this
cycle's scopes and the registry, so a reload and a restart with the new config plan alike."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from discovery.core.coverage import (
    coverage_of,
    coverage_of_config,
    resolved_accounts,
    uncovered,
)
from discovery.core.model import Scope, ScopeResult, StoredResource
from discovery.core.plan import REASON_CONFIG_CHANGE, REVIEW_CODES, Plan, make_plan
from tests.core.test_plan import (
    A1,
    A2,
    GROUP,
    PROPERTY_SETTINGS,
    R1,
    R2,
    deleted,
    failed_scope,
    make_resource,
    ok_scope,
    registries,
    role_arn,
    scope_outcomes,
    stored,
)

EAST = [make_resource(f"east-{i}", region=R1) for i in range(3)]
WEST = [make_resource(f"west-{i}", region=R2) for i in range(5)]
REGISTRY = [stored(r) for r in (*EAST, *WEST)]


def plan_of(
    scopes: list[ScopeResult],
    current: list[StoredResource] = REGISTRY,
    *,
    accept: bool = False,
    force: bool = False,
) -> Plan:
    return make_plan(
        scopes=scopes,
        current=current,
        discovery_group=GROUP,
        force=force,
        accept_config_change=accept,
    )


def config_change(p: Plan) -> set[str]:
    return {w.name for w in p.withheld if w.code == REASON_CONFIG_CHANGE}


def test_a_dropped_region_is_withheld_as_a_config_change_for_review() -> None:
    p = plan_of([ok_scope(R1, A1, EAST)])  # the config no longer scans R2

    assert deleted(p) == set()
    assert config_change(p) == {r.name for r in WEST}
    assert REASON_CONFIG_CHANGE in REVIEW_CODES and p.needs_review
    assert not p.guard_tripped  # its own rule, not the guard's
    reason = next(w.reason for w in p.withheld if w.code == REASON_CONFIG_CHANGE)
    assert f"{A1}/{R2}" in reason and "no matcher of the config covers" in reason
    assert "--accept-config-change" in reason


def test_accepting_the_config_change_deletes_them_once_and_nothing_else() -> None:
    gone = make_resource("east-gone", region=R1)
    current = [*REGISTRY, stored(gone)]
    p = plan_of([ok_scope(R1, A1, EAST)], current, accept=True)

    assert deleted(p) == {r.name for r in WEST} | {"east-gone"}
    assert config_change(p) == set() and not p.needs_review


def test_force_applies_them_too() -> None:
    p = plan_of([ok_scope(R1, A1, EAST)], force=True)

    assert deleted(p) == {r.name for r in WEST}


def test_accepted_config_change_deletes_do_not_trip_the_guard_nor_dilute_it() -> None:
    # 4 of R1's 5 vanish: the guard holds them, though 9 resources of R2 (uncovered) would
    # have made 4/14 look harmless; accepting the config change does not lift the guard.
    east = [make_resource(f"e-{i}", region=R1) for i in range(5)]
    west = [make_resource(f"w-{i}", region=R2) for i in range(9)]
    current = [stored(r) for r in (*east, *west)]
    p = plan_of([ok_scope(R1, A1, east[:1])], current, accept=True)

    assert p.guard_tripped
    assert deleted(p) == {r.name for r in west}


def test_a_dropped_account_is_a_config_change_but_a_failed_one_stays_frozen() -> None:
    other = [stored(make_resource(f"b-{i}", account=A2)) for i in range(2)]
    current = [*REGISTRY, *other]

    dropped = plan_of([ok_scope(R1, A1, EAST), ok_scope(R2, A1, WEST)], current)
    assert config_change(dropped) == {"b-0", "b-1"}

    failed = plan_of(
        [ok_scope(R1, A1, EAST), ok_scope(R2, A1, WEST), failed_scope(R1, A2, via="role")],
        current,
        accept=True,
    )
    assert config_change(failed) == set() and deleted(failed) == set()
    assert {w.code for w in failed.withheld} == {"scope-failed"}


def test_a_scope_whose_account_is_unknown_covers_its_whole_region() -> None:
    # Default credentials whose GetCallerIdentity failed: nothing in R1 is a config change.
    p = plan_of([failed_scope(R1, None), ok_scope(R2, A1, WEST)])

    assert config_change(p) == set()
    assert {w.code for w in p.withheld} == {"scope-failed"}


def test_a_resolved_account_is_matched_not_the_role_arn() -> None:
    # No role ARN: the account is the one GetCallerIdentity answered.
    scope = ScopeResult(
        scope=Scope(matcher_index=0, region=R2), ok=True, account_id=A1, resources=tuple(WEST[1:])
    )
    p = plan_of([ok_scope(R1, A1, EAST), scope])

    assert config_change(p) == set()
    assert deleted(p) == {"west-0"}


def test_reload_preview_uses_the_accounts_a_past_cycle_resolved() -> None:
    past = [
        ScopeResult(scope=Scope(matcher_index=0, region=R1), ok=True, account_id=A1),
        ScopeResult(
            scope=Scope(matcher_index=1, region=R1, assume_role_arn=role_arn(A2)),
            ok=True,
            account_id=A2,
        ),
    ]
    accounts = resolved_accounts(past)
    new_scopes = [Scope(matcher_index=0, region=R1)]  # the role's matcher is gone
    coverage = coverage_of_config(new_scopes, accounts)
    current = [*REGISTRY, stored(make_resource("b-east", account=A2))]

    assert uncovered(current, coverage) == {
        (A1, R2): sorted(r.name for r in WEST),
        (A2, R1): ["b-east"],
    }
    # Without a past cycle the default credentials' account is unknown: the region is covered.
    assert uncovered(current, coverage_of_config(new_scopes, {})) == {
        (A1, R2): sorted(r.name for r in WEST)
    }


@PROPERTY_SETTINGS
@given(current=registries(), scopes=scope_outcomes(), force=st.booleans())
def test_property_nothing_outside_the_scopes_is_deleted_unconfirmed(
    current: list[StoredResource], scopes: list[ScopeResult], force: bool
) -> None:
    p = plan_of(scopes, current, force=force)
    coverage = coverage_of(scopes)

    if not force:
        for gone in p.delete:
            assert coverage.covers(gone.resource), gone.resource.name
    accepted = plan_of(scopes, current, accept=True)
    assert config_change(accepted) == set()
    assert deleted(accepted) >= deleted(plan_of(scopes, current))
