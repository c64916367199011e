"""The plan and its safety rules, checked against DESIGN §6.

Named cases for each rule, then hypothesis properties over random registries and random scope
outcomes: a failed scope freezes what it could have produced, nothing foreign is touched, apply
then re-plan is empty, and steady state writes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from discovery.core.model import AWSInfo, Resource, Scope, ScopeResult, StoredResource
from discovery.core.plan import Plan, make_plan

GROUP = "prod"
A1 = "111111111111"
A2 = "222222222222"
R1 = "us-east-1"
R2 = "eu-west-1"

ORIGIN = "teleport.dev/origin"
DISCOVERY_GROUP = "teleport.internal/discovery-group-name"

# Who holds a resource in the registry.
OURS = "ours"
OTHER_GROUP = "other-group"
MANUAL = "manual"
GROUP_WITHOUT_ORIGIN = "group-without-origin"
OTHER_ORIGIN = "other-origin"
OWNERS = (OURS, OTHER_GROUP, MANUAL, GROUP_WITHOUT_ORIGIN, OTHER_ORIGIN)


def owner_labels(owner: str) -> dict[str, str]:
    if owner == OURS:
        return {ORIGIN: "cloud", DISCOVERY_GROUP: GROUP}
    if owner == OTHER_GROUP:
        return {ORIGIN: "cloud", DISCOVERY_GROUP: "staging"}
    if owner == GROUP_WITHOUT_ORIGIN:
        return {DISCOVERY_GROUP: GROUP}
    if owner == OTHER_ORIGIN:
        return {ORIGIN: "dynamic", DISCOVERY_GROUP: GROUP}
    return {}


def make_resource(
    name: str,
    *,
    account: str = A1,
    region: str = R1,
    variant: int = 0,
    owner: str = OURS,
    description: str | None = None,
    protocol: str = "postgres",
    uri: str | None = None,
    external_id: str = "",
    tls_server_name: str = "",
) -> Resource:
    labels = {
        "account-id": account,
        "region": region,
        "teleport.dev/cloud": "AWS",
        "engine": "POSTGRESQL",
        "variant": str(variant),
        "teleport.dev/discovery-type": "rdsproxy",
        **owner_labels(owner),
    }
    return Resource(
        name=name,
        description=description if description is not None else f"RDS Proxy in {region}",
        labels=labels,
        protocol=protocol,
        uri=uri or f"{name}.proxy-abc.{region}.rds.amazonaws.com:5432",
        aws=AWSInfo(
            region=region,
            account_id=account,
            rdsproxy_name=name,
            rdsproxy_resource_id=f"prx-{name}",
            assume_role_arn=f"arn:aws:iam::{account}:role/discovery" if external_id else "",
            external_id=external_id,
        ),
        tls_server_name=tls_server_name,
    )


def stored(resource: Resource, revision: int = 1) -> StoredResource:
    return StoredResource(resource=resource, revision=revision)


def role_arn(account: str) -> str:
    return f"arn:aws:iam::{account}:role/discovery"


def ok_scope(
    region: str = R1, account: str = A1, resources: Iterable[Resource] = (), matcher: int = 0
) -> ScopeResult:
    return ScopeResult(
        scope=Scope(matcher_index=matcher, region=region),
        ok=True,
        account_id=account,
        resources=tuple(resources),
    )


def failed_scope(
    region: str, account: str | None, *, via: str = "result", matcher: int = 0
) -> ScopeResult:
    """A failed scope; its account is known from the fetch result, the role ARN, or not at all."""
    if account is None:
        return ScopeResult(
            scope=Scope(matcher_index=matcher, region=region), ok=False, error="AccessDenied"
        )
    if via == "role":
        return ScopeResult(
            scope=Scope(matcher_index=matcher, region=region, assume_role_arn=role_arn(account)),
            ok=False,
            error="AccessDenied",
        )
    return ScopeResult(
        scope=Scope(matcher_index=matcher, region=region),
        ok=False,
        account_id=account,
        error="throttled after retries",
    )


def plan(
    scopes: Sequence[ScopeResult],
    current: Sequence[StoredResource],
    *,
    policy: str = "sync",
    max_delete_fraction: float = 0.3,
    force: bool = False,
) -> Plan:
    return make_plan(
        scopes=scopes,
        current=current,
        discovery_group=GROUP,
        policy=policy,  # type: ignore[arg-type]
        max_delete_fraction=max_delete_fraction,
        force=force,
    )


def created(p: Plan) -> set[str]:
    return {r.name for r in p.create}


def updated(p: Plan) -> set[str]:
    return {u.after.name for u in p.update}


def deleted(p: Plan) -> set[str]:
    return {s.resource.name for s in p.delete}


def withheld(p: Plan, action: str | None = None) -> set[str]:
    return {w.name for w in p.withheld if action is None or w.action == action}


def assert_every_withheld_has_a_reason(p: Plan) -> None:
    for w in p.withheld:
        assert w.name, w
        assert w.action in ("create", "update", "delete"), w
        assert w.reason.strip(), w


# --- Create, update, delete, unchanged -------------------------------------------------------


def test_create_what_is_desired_and_absent() -> None:
    new = make_resource("orders")

    p = plan([ok_scope(resources=[new])], [])

    assert p.create == (new,)
    assert (p.update, p.delete, p.unchanged, p.withheld) == ((), (), 0, ())


def test_update_what_is_desired_owned_and_different() -> None:
    before = stored(make_resource("orders", variant=0), revision=7)
    after = make_resource("orders", variant=1)

    p = plan([ok_scope(resources=[after])], [before])

    assert len(p.update) == 1
    assert p.update[0].before == before
    assert p.update[0].after == after
    assert (p.create, p.delete, p.unchanged) == ((), (), 0)


def test_delete_what_is_owned_and_no_longer_desired() -> None:
    gone = stored(make_resource("gone"))
    kept = make_resource("kept")

    p = plan([ok_scope(resources=[kept])], [gone, stored(kept)])

    assert p.delete == (gone,)
    assert p.unchanged == 1
    assert (p.create, p.update, p.withheld) == ((), (), ())


@pytest.mark.parametrize("revision", [pytest.param(1, id="rev-1"), pytest.param(99, id="rev-99")])
def test_unchanged_ignores_the_registry_revision(revision: int) -> None:
    resource = make_resource("orders")

    p = plan([ok_scope(resources=[resource])], [stored(resource, revision)])

    assert p.unchanged == 1
    assert not p.changes
    assert p.withheld == ()


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"description": "RDS Proxy endpoint in us-east-1"}, id="description"),
        pytest.param({"variant": 1}, id="labels"),
        pytest.param({"protocol": "mysql"}, id="protocol"),
        pytest.param({"uri": "elsewhere.rds.amazonaws.com:5432"}, id="uri"),
        pytest.param({"external_id": "new-external-id"}, id="spec-aws"),
        pytest.param({"tls_server_name": "proxy.rds.amazonaws.com"}, id="tls-server-name"),
    ],
)
def test_any_field_difference_is_an_update(change: dict[str, object]) -> None:
    before = stored(make_resource("orders"))
    after = make_resource("orders", **change)  # type: ignore[arg-type]

    p = plan([ok_scope(resources=[after])], [before])

    assert updated(p) == {"orders"}
    assert p.unchanged == 0


# --- Ownership ------------------------------------------------------------------------------


FOREIGN = [
    pytest.param(MANUAL, id="no-ownership-labels"),
    pytest.param(OTHER_GROUP, id="other-discovery-group"),
    pytest.param(GROUP_WITHOUT_ORIGIN, id="our-group-but-no-origin"),
    pytest.param(OTHER_ORIGIN, id="our-group-but-other-origin"),
]


@pytest.mark.parametrize("owner", FOREIGN)
def test_desired_name_held_by_foreign_resource_is_a_conflict(owner: str) -> None:
    foreign = stored(make_resource("orders", owner=owner, variant=5))
    desired = make_resource("orders")

    p = plan([ok_scope(resources=[desired])], [foreign])

    assert not p.changes
    assert withheld(p) == {"orders"}
    assert_every_withheld_has_a_reason(p)


@pytest.mark.parametrize("owner", FOREIGN)
def test_foreign_resources_are_never_deleted(owner: str) -> None:
    current = [stored(make_resource(f"foreign-{i}", owner=owner)) for i in range(6)]

    p = plan([ok_scope(resources=[])], current, force=True)

    assert not p.changes
    assert p.withheld == ()
    assert p.owned == 0


def test_other_discovery_group_is_untouched_while_ours_is_synced() -> None:
    theirs = [stored(make_resource(f"theirs-{i}", owner=OTHER_GROUP)) for i in range(3)]
    ours_gone = stored(make_resource("ours-gone"))
    ours_changed = stored(make_resource("ours-changed", variant=0))

    p = plan(
        [ok_scope(resources=[make_resource("ours-changed", variant=1)])],
        [*theirs, ours_gone, ours_changed],
    )

    assert deleted(p) == {"ours-gone"}
    assert updated(p) == {"ours-changed"}
    assert p.owned == 2


# --- Failed scopes ------------------------------------------------------------------------


def _frozen_fixture() -> tuple[list[StoredResource], list[ScopeResult]]:
    """Owned resources in three areas, each with something to create, update and delete."""
    current = []
    desired: dict[tuple[str, str], list[Resource]] = {}
    for account, region in ((A1, R1), (A2, R1), (A1, R2)):
        tag = f"{account[:2]}-{region}"
        current.append(stored(make_resource(f"gone-{tag}", account=account, region=region)))
        current.append(
            stored(make_resource(f"changed-{tag}", account=account, region=region, variant=0))
        )
        desired[(account, region)] = [
            make_resource(f"changed-{tag}", account=account, region=region, variant=1),
            make_resource(f"new-{tag}", account=account, region=region),
        ]
    scopes = [
        # A second matcher in A1/us-east-1 succeeded: what it found is still frozen.
        ok_scope(R1, A1, desired[(A1, R1)], matcher=1),
        ok_scope(R1, A2, desired[(A2, R1)]),
        ok_scope(R2, A1, desired[(A1, R2)]),
    ]
    return current, scopes


@pytest.mark.parametrize(
    "via",
    [
        pytest.param("result", id="account-from-fetch"),
        pytest.param("role", id="account-from-role-arn"),
    ],
)
def test_failed_scope_with_known_account_freezes_that_account_and_region_only(via: str) -> None:
    current, scopes = _frozen_fixture()
    scopes.append(failed_scope(R1, A1, via=via))

    p = plan(scopes, current)

    frozen = f"11-{R1}"
    assert created(p) == {f"new-22-{R1}", f"new-11-{R2}"}
    assert updated(p) == {f"changed-22-{R1}", f"changed-11-{R2}"}
    assert deleted(p) == {f"gone-22-{R1}", f"gone-11-{R2}"}
    assert {f"new-{frozen}", f"changed-{frozen}", f"gone-{frozen}"} <= withheld(p)
    assert_every_withheld_has_a_reason(p)


def test_failed_scope_with_unknown_account_freezes_the_whole_region() -> None:
    current, scopes = _frozen_fixture()
    scopes.append(failed_scope(R1, None))

    p = plan(scopes, current)

    assert created(p) == {f"new-11-{R2}"}
    assert updated(p) == {f"changed-11-{R2}"}
    assert deleted(p) == {f"gone-11-{R2}"}
    for tag in (f"11-{R1}", f"22-{R1}"):
        assert {f"new-{tag}", f"changed-{tag}", f"gone-{tag}"} <= withheld(p)
    assert_every_withheld_has_a_reason(p)


def test_failed_scope_keeps_the_last_good_state_even_when_everything_vanished() -> None:
    current = [stored(make_resource(f"db-{i}")) for i in range(10)]

    p = plan([failed_scope(R1, A1)], current, force=True)

    assert not p.changes
    assert withheld(p, "delete") == {f"db-{i}" for i in range(10)}
    assert_every_withheld_has_a_reason(p)


# --- Delete guard -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("owned", "deletes", "fraction", "force", "tripped"),
    [
        pytest.param(3, 3, 0.3, False, False, id="exactly-3-of-3-never-trips"),
        pytest.param(4, 3, 0.0, False, False, id="exactly-3-fraction-0-never-trips"),
        pytest.param(10, 3, 0.3, False, False, id="3-of-10"),
        pytest.param(10, 4, 0.3, False, True, id="4-of-10-trips"),
        pytest.param(20, 4, 0.3, False, False, id="4-of-20-under-fraction"),
        pytest.param(20, 6, 0.3, False, False, id="6-of-20-is-not-more-than-0.3"),
        pytest.param(20, 7, 0.3, False, True, id="7-of-20-trips"),
        pytest.param(10, 4, 0.5, False, False, id="4-of-10-with-0.5"),
        pytest.param(10, 6, 0.5, False, True, id="6-of-10-with-0.5"),
        pytest.param(100, 4, 0.0, False, True, id="fraction-0-trips-above-3"),
        # 4 of 4 would empty the scope: the empty-scope rule holds that (test_empty_scope).
        pytest.param(5, 4, 1.0, False, False, id="fraction-1-never-trips"),
        pytest.param(10, 4, 0.3, True, False, id="force-overrides"),
        pytest.param(10, 10, 0.3, True, False, id="force-overrides-all"),
    ],
)
def test_delete_guard(
    owned: int, deletes: int, fraction: float, force: bool, tripped: bool
) -> None:
    current = [stored(make_resource(f"db-{i:03d}")) for i in range(owned)]
    still_there = [s.resource for s in current[deletes:]]

    p = plan([ok_scope(resources=still_there)], current, max_delete_fraction=fraction, force=force)

    assert p.guard_tripped is tripped
    assert p.owned == owned
    gone = {f"db-{i:03d}" for i in range(deletes)}
    if tripped:
        assert p.delete == ()
        assert withheld(p, "delete") == gone
        assert_every_withheld_has_a_reason(p)
    else:
        assert deleted(p) == gone
        assert p.withheld == ()


def test_tripped_guard_still_lets_creates_and_updates_through() -> None:
    current = [stored(make_resource(f"db-{i}", variant=0)) for i in range(10)]
    desired = [make_resource(f"db-{i}", variant=1) for i in range(4, 10)]
    desired.append(make_resource("brand-new"))

    p = plan([ok_scope(resources=desired)], current)

    assert p.guard_tripped
    assert p.delete == ()
    assert created(p) == {"brand-new"}
    assert updated(p) == {f"db-{i}" for i in range(4, 10)}
    assert withheld(p, "delete") == {f"db-{i}" for i in range(4)}
    assert_every_withheld_has_a_reason(p)


# --- Policies -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "changes", "held"),
    [
        pytest.param(
            "sync", {"create": {"new"}, "update": {"changed"}, "delete": {"gone"}}, set(), id="sync"
        ),
        pytest.param(
            "upsert-only",
            {"create": {"new"}, "update": {"changed"}, "delete": set()},
            {"gone"},
            id="upsert-only",
        ),
        pytest.param(
            "create-only",
            {"create": {"new"}, "update": set(), "delete": set()},
            {"changed", "gone"},
            id="create-only",
        ),
    ],
)
def test_policies(policy: str, changes: dict[str, set[str]], held: set[str]) -> None:
    current = [stored(make_resource("changed", variant=0)), stored(make_resource("gone"))]
    desired = [make_resource("changed", variant=1), make_resource("new")]

    p = plan([ok_scope(resources=desired)], current, policy=policy)

    assert created(p) == changes["create"]
    assert updated(p) == changes["update"]
    assert deleted(p) == changes["delete"]
    assert withheld(p) == held
    assert_every_withheld_has_a_reason(p)


def test_default_policy_is_sync() -> None:
    p = make_plan(
        scopes=[ok_scope(resources=[])],
        current=[stored(make_resource("gone"))],
        discovery_group=GROUP,
    )

    assert deleted(p) == {"gone"}


def test_every_withheld_change_has_a_reason() -> None:
    current = [
        stored(make_resource("conflict", owner=MANUAL)),
        stored(make_resource("frozen-gone", account=A2)),
        *(stored(make_resource(f"guarded-{i}")) for i in range(8)),
    ]
    scopes = [
        ok_scope(R1, A1, [make_resource("conflict"), make_resource("new")]),
        failed_scope(R1, A2),
    ]

    p = plan(scopes, current)

    assert p.guard_tripped
    assert withheld(p) == {"conflict", "frozen-gone", *(f"guarded-{i}" for i in range(8))}
    assert_every_withheld_has_a_reason(p)
    assert created(p) == {"new"}


# --- Properties ---------------------------------------------------------------------------

ACCOUNTS = (A1, A2)
REGIONS = (R1, R2)
NAMES = tuple(f"db-{i}" for i in range(10))
POLICIES = ("sync", "upsert-only", "create-only")


@st.composite
def registries(draw: st.DrawFn) -> list[StoredResource]:
    entries = draw(
        st.dictionaries(
            st.sampled_from(NAMES),
            st.tuples(
                st.sampled_from(ACCOUNTS),
                st.sampled_from(REGIONS),
                st.integers(0, 2),
                st.sampled_from(OWNERS),
            ),
            max_size=len(NAMES),
        )
    )
    return [
        stored(
            make_resource(name, account=account, region=region, variant=variant, owner=owner),
            revision=draw(st.integers(1, 50)),
        )
        for name, (account, region, variant, owner) in entries.items()
    ]


@st.composite
def scope_outcomes(draw: st.DrawFn) -> list[ScopeResult]:
    results = []
    for matcher in range(draw(st.integers(0, 5))):
        account = draw(st.sampled_from(ACCOUNTS))
        region = draw(st.sampled_from(REGIONS))
        if draw(st.booleans()):
            found = draw(st.dictionaries(st.sampled_from(NAMES), st.integers(0, 2), max_size=6))
            resources = [
                make_resource(name, account=account, region=region, variant=variant)
                for name, variant in found.items()
            ]
            results.append(ok_scope(region, account, resources, matcher=matcher))
        else:
            how = draw(st.sampled_from(["result", "role", "unknown"]))
            results.append(
                failed_scope(
                    region, None if how == "unknown" else account, via=how, matcher=matcher
                )
            )
    return results


def failed_areas(scopes: Sequence[ScopeResult]) -> list[tuple[str, str]]:
    """(account or "" for any account, region) that failed scopes could have produced."""
    areas = []
    for result in scopes:
        if result.ok:
            continue
        account = result.account_id
        if not account and result.scope.assume_role_arn:
            account = result.scope.assume_role_arn.split(":")[4]
        areas.append((account, result.scope.region))
    return areas


def could_have_produced(areas: Sequence[tuple[str, str]], resource: Resource) -> bool:
    return any(
        region == resource.aws.region and account in ("", resource.aws.account_id)
        for account, region in areas
    )


def owned_by_us(resource: Resource) -> bool:
    labels = resource.labels
    return labels.get(ORIGIN) == "cloud" and labels.get(DISCOVERY_GROUP) == GROUP


def apply(current: Sequence[StoredResource], p: Plan) -> list[StoredResource]:
    registry = {s.resource.name: s for s in current}
    for resource in p.create:
        assert resource.name not in registry
        registry[resource.name] = stored(resource, 1)
    for update in p.update:
        assert registry[update.before.resource.name] == update.before
        registry[update.after.name] = stored(update.after, update.before.revision + 1)
    for gone in p.delete:
        del registry[gone.resource.name]
    return list(registry.values())


PROPERTY_SETTINGS = settings(max_examples=300, deadline=None)


@PROPERTY_SETTINGS
@given(
    current=registries(),
    scopes=scope_outcomes(),
    policy=st.sampled_from(POLICIES),
    force=st.booleans(),
)
def test_property_nothing_a_failed_scope_could_have_produced_changes(
    current: list[StoredResource], scopes: list[ScopeResult], policy: str, force: bool
) -> None:
    p = plan(scopes, current, policy=policy, force=force)
    areas = failed_areas(scopes)

    for resource in p.create:
        assert not could_have_produced(areas, resource), resource.name
    for update in p.update:
        assert not could_have_produced(areas, update.after), update.after.name
        assert not could_have_produced(areas, update.before.resource), update.after.name
    for gone in p.delete:
        assert not could_have_produced(areas, gone.resource), gone.resource.name


@PROPERTY_SETTINGS
@given(
    current=registries(),
    scopes=scope_outcomes(),
    policy=st.sampled_from(POLICIES),
    force=st.booleans(),
)
def test_property_nothing_foreign_is_updated_or_deleted(
    current: list[StoredResource], scopes: list[ScopeResult], policy: str, force: bool
) -> None:
    p = plan(scopes, current, policy=policy, force=force)
    held = {s.resource.name for s in current}

    for update in p.update:
        assert owned_by_us(update.before.resource), update.before
        assert update.before in current
    for gone in p.delete:
        assert owned_by_us(gone.resource), gone
        assert gone in current
    # A create never replaces anything the registry holds (foreign names are conflicts).
    assert not created(p) & held
    assert p.owned == sum(owned_by_us(s.resource) for s in current)


@PROPERTY_SETTINGS
@given(current=registries(), scopes=scope_outcomes(), policy=st.sampled_from(POLICIES))
def test_property_apply_then_replan_is_empty(
    current: list[StoredResource], scopes: list[ScopeResult], policy: str
) -> None:
    # force=True: the delete guard compares against the owned set of the registry it is given,
    # which creates change; the property is about the diff and the other rules.
    first = plan(scopes, current, policy=policy, force=True)

    second = plan(scopes, apply(current, first), policy=policy, force=True)

    assert not second.changes, (second.create, second.update, second.delete)


@PROPERTY_SETTINGS
@given(current=registries(), scopes=scope_outcomes(), policy=st.sampled_from(POLICIES))
def test_property_every_change_not_made_is_withheld_with_a_reason(
    current: list[StoredResource], scopes: list[ScopeResult], policy: str
) -> None:
    p = plan(scopes, current, policy=policy)
    assert_every_withheld_has_a_reason(p)

    by_name = {s.resource.name: s.resource for s in current}
    desired: dict[str, list[Resource]] = {}
    for result in scopes:
        if result.ok:
            for resource in result.resources:
                desired.setdefault(resource.name, []).append(resource)
    changed = created(p) | updated(p)
    for name, versions in desired.items():
        in_step = name in by_name and by_name[name] in versions
        assert in_step or name in changed or name in withheld(p), name
    for name, resource in by_name.items():
        if owned_by_us(resource) and name not in desired:
            assert name in deleted(p) or name in withheld(p, "delete"), name


@st.composite
def steady_states(draw: st.DrawFn) -> tuple[list[StoredResource], list[ScopeResult]]:
    desired = draw(
        st.dictionaries(
            st.sampled_from(NAMES),
            st.tuples(st.sampled_from(ACCOUNTS), st.sampled_from(REGIONS), st.integers(0, 2)),
            max_size=len(NAMES),
        )
    )
    areas: dict[tuple[str, str], list[Resource]] = {
        (account, region): [] for account in ACCOUNTS for region in REGIONS
    }
    for name, (account, region, variant) in desired.items():
        areas[(account, region)].append(
            make_resource(name, account=account, region=region, variant=variant)
        )
    scopes = [
        ok_scope(region, account, resources)
        for (account, region), resources in areas.items()
        if resources or draw(st.booleans())
    ]
    for _ in range(draw(st.integers(0, 3))):
        how = draw(st.sampled_from(["result", "role", "unknown"]))
        account = draw(st.sampled_from(ACCOUNTS))
        scopes.append(
            failed_scope(draw(st.sampled_from(REGIONS)), None if how == "unknown" else account)
        )
    scopes = draw(st.permutations(scopes))
    current = [
        stored(r, draw(st.integers(1, 50))) for resources in areas.values() for r in resources
    ]
    # Foreign resources under other names are part of any registry and must stay untouched.
    foreign_names = draw(st.sets(st.sampled_from([f"foreign-{i}" for i in range(4)])))
    for name in sorted(foreign_names):
        owner = draw(st.sampled_from([o for o in OWNERS if o != OURS]))
        current.append(stored(make_resource(name, owner=owner)))
    return current, list(scopes)


@PROPERTY_SETTINGS
@given(state=steady_states(), policy=st.sampled_from(POLICIES), force=st.booleans())
def test_property_steady_state_plans_nothing(
    state: tuple[list[StoredResource], list[ScopeResult]], policy: str, force: bool
) -> None:
    current, scopes = state

    p = plan(scopes, current, policy=policy, force=force)

    assert not p.changes
    assert p.withheld == ()
    assert not p.guard_tripped
    assert p.unchanged == sum(owned_by_us(s.resource) for s in current)


# --- Identity: a name belongs to the source registered under it ------------------------------


def from_source(
    name: str,
    *,
    account: str = A1,
    region: str = R1,
    resource_id: str = "",
    endpoint: str = "",
    variant: int = 0,
) -> Resource:
    """A resource named `name` whose source (identity) is given separately from its name."""
    base = make_resource(name, account=account, region=region, variant=variant)
    return replace(
        base,
        aws=replace(
            base.aws,
            rdsproxy_resource_id=resource_id or f"prx-{name}",
            rdsproxy_custom_endpoint_name=endpoint,
        ),
    )


TAKEN = "orders-rdsproxy-us-east-1-111111111111"
# The three ways a newcomer came to want an existing name (issue 12, hole 1).
NEWCOMERS = [
    pytest.param(
        from_source(TAKEN, account=A2, resource_id="prx-other"),
        id="tag-in-another-account",
    ),
    pytest.param(
        from_source(TAKEN, resource_id="prx-orders-parent", endpoint="rdsproxy"),
        id="custom-endpoint-of-a-shorter-proxy",
    ),
    pytest.param(from_source(TAKEN, resource_id="prx-short"), id="suffix-rule-skips-parts"),
]


@pytest.mark.parametrize("newcomer", NEWCOMERS)
@pytest.mark.parametrize("newcomer_first", [True, False], ids=["newcomer-first", "newcomer-last"])
def test_a_newcomer_never_takes_over_a_registered_name(
    newcomer: Resource, newcomer_first: bool
) -> None:
    incumbent = from_source(TAKEN, resource_id="prx-orders")
    found = [newcomer, incumbent] if newcomer_first else [incumbent, newcomer]
    scopes = [ok_scope(R1, newcomer.aws.account_id, found[:1]), ok_scope(R1, A1, found[1:])]
    if newcomer.aws.account_id == A1:
        scopes = [ok_scope(R1, A1, found)]

    p = plan(scopes, [stored(incumbent)])

    assert not p.changes
    assert p.unchanged == 1
    (held,) = p.withheld
    assert (held.name, held.code) == (TAKEN, "name-collision")
    assert "(prx-orders)" in held.reason
    assert f"({newcomer.aws.rdsproxy_resource_id})" in held.reason
    assert "TeleportDatabaseName" in held.reason
    assert p.needs_review


def test_the_incumbent_is_still_updated_from_its_own_source() -> None:
    incumbent = from_source(TAKEN, resource_id="prx-orders", variant=0)
    changed = from_source(TAKEN, resource_id="prx-orders", variant=1)
    newcomer = from_source(TAKEN, account=A2, resource_id="prx-other")

    p = plan([ok_scope(R1, A2, [newcomer]), ok_scope(R1, A1, [changed])], [stored(incumbent)])

    assert [u.after for u in p.update] == [changed]
    assert [w.code for w in p.withheld] == ["name-collision"]


def test_two_newcomers_with_one_name_are_both_withheld() -> None:
    first = from_source("shared", resource_id="prx-1")
    second = from_source("shared", account=A2, resource_id="prx-2")

    p = plan([ok_scope(R1, A1, [first]), ok_scope(R1, A2, [second])], [])

    assert not p.changes
    assert [w.code for w in p.withheld] == ["name-collision", "name-collision"]
    for w in p.withheld:
        assert "prx-1" in w.reason and "prx-2" in w.reason, w.reason
    assert p.needs_review


def test_a_gone_incumbent_keeps_its_entry_while_a_newcomer_wants_its_name() -> None:
    incumbent = from_source(TAKEN, resource_id="prx-orders")
    newcomer = from_source(TAKEN, account=A2, resource_id="prx-other")

    p = plan([ok_scope(R1, A1, []), ok_scope(R1, A2, [newcomer])], [stored(incumbent)])

    assert not p.changes
    assert {(w.action, w.code) for w in p.withheld} == {
        ("create", "name-collision"),
        ("delete", "name-collision"),
    }
    assert_every_withheld_has_a_reason(p)


def test_the_same_source_found_twice_is_one_resource() -> None:
    resource = from_source("orders")

    p = plan([ok_scope(resources=[resource]), ok_scope(resources=[resource], matcher=1)], [])

    assert p.create == (resource,)
    assert p.withheld == ()


def test_a_foreign_name_stays_a_conflict_not_a_collision() -> None:
    foreign = stored(replace(from_source("orders", resource_id="prx-theirs"), labels={}))

    p = plan([ok_scope(resources=[from_source("orders")])], [foreign])

    assert [w.code for w in p.withheld] == ["conflict"]
    assert not p.needs_review


# --- The guard's fraction and empty scopes (issue 12, hole 2) ------------------------------


def test_a_frozen_account_does_not_dilute_the_guard_for_the_others() -> None:
    frozen = [stored(make_resource(f"a-{i:02d}", account=A1)) for i in range(16)]
    gone = [stored(make_resource(f"b-{i}", account=A2)) for i in range(5)]

    p = plan([failed_scope(R1, A1), ok_scope(R1, A2, [])], [*frozen, *gone])

    assert p.guard_tripped  # 5 of the 5 it could touch, not 5 of 21
    assert p.delete == ()
    assert {w.name for w in p.withheld if w.code == "delete-guard"} == {f"b-{i}" for i in range(5)}
    assert "5 of the 5 owned resources" in p.withheld[-1].reason


@pytest.mark.parametrize(
    ("registered", "found_elsewhere", "force", "held"),
    [
        pytest.param(4, False, False, True, id="4-registered-empty-is-held"),
        pytest.param(3, False, False, False, id="3-registered-empty-is-deleted"),
        pytest.param(4, False, True, False, id="force-overrides"),
        pytest.param(4, True, False, False, id="another-matcher-found-something-there"),
    ],
)
def test_empty_scope(registered: int, found_elsewhere: bool, force: bool, held: bool) -> None:
    # A2/us-east-1 comes back empty; A1 has 100 resources, so the fraction never trips.
    big = [make_resource(f"a-{i:03d}") for i in range(100)]
    area = [stored(make_resource(f"b-{i}", account=A2)) for i in range(registered)]
    elsewhere = [make_resource("b-new", account=A2)] if found_elsewhere else []
    scopes = [
        ok_scope(R1, A1, big),
        ok_scope(R1, A2, []),
        ok_scope(R1, A2, elsewhere, matcher=1),
    ]

    p = plan(scopes, [*(stored(r) for r in big), *area], max_delete_fraction=1.0, force=force)

    gone = {f"b-{i}" for i in range(registered)}
    assert not p.guard_tripped
    if held:
        assert p.delete == ()
        assert {w.name for w in p.withheld if w.code == "empty-scope"} == gone
        assert all(f"{A2}/{R1}" in w.reason and "--force" in w.reason for w in p.withheld)
        assert p.needs_review
    else:
        assert deleted(p) == gone
        assert not any(w.code == "empty-scope" for w in p.withheld)


def test_empty_scope_with_an_unknown_account_guards_its_region() -> None:
    area = [stored(make_resource(f"b-{i}", account=A2)) for i in range(4)]
    unknown = ScopeResult(scope=Scope(matcher_index=0, region=R1), ok=True)

    p = plan([unknown], area, max_delete_fraction=1.0)

    assert {w.code for w in p.withheld} == {"empty-scope"}
    assert p.delete == ()


def test_all_of_a_scope_at_fraction_1_is_held_as_an_empty_scope() -> None:
    current = [stored(make_resource(f"db-{i:03d}")) for i in range(4)]

    p = plan([ok_scope(resources=[])], current, max_delete_fraction=1.0)

    assert not p.guard_tripped
    assert p.delete == ()
    assert {w.code for w in p.withheld} == {"empty-scope"}


# --- Properties with collisions in play ----------------------------------------------------

SOURCES = ("", "-moved")  # resource_id suffixes: the same name from two different proxies
ENDPOINTS = ("", "reader")


@st.composite
def colliding_resource(draw: st.DrawFn, name: str, account: str, region: str) -> Resource:
    return from_source(
        name,
        account=account,
        region=region,
        resource_id=f"prx-{name}{draw(st.sampled_from(SOURCES))}",
        endpoint=draw(st.sampled_from(ENDPOINTS)),
        variant=draw(st.integers(0, 1)),
    )


@st.composite
def colliding_registries(draw: st.DrawFn) -> list[StoredResource]:
    names = draw(st.sets(st.sampled_from(NAMES[:5]), max_size=5))
    current = []
    for name in sorted(names):
        account, region = draw(st.sampled_from(ACCOUNTS)), draw(st.sampled_from(REGIONS))
        resource = draw(colliding_resource(name, account, region))
        owner = draw(st.sampled_from((OURS, OURS, MANUAL)))
        if owner != OURS:
            resource = replace(resource, labels={})
        current.append(stored(resource, draw(st.integers(1, 9))))
    return current


@st.composite
def colliding_scopes(draw: st.DrawFn) -> list[ScopeResult]:
    results = []
    for matcher in range(draw(st.integers(0, 4))):
        account, region = draw(st.sampled_from(ACCOUNTS)), draw(st.sampled_from(REGIONS))
        if not draw(st.booleans()) and matcher:
            results.append(failed_scope(region, account, matcher=matcher))
            continue
        names = draw(st.lists(st.sampled_from(NAMES[:5]), max_size=5))
        found = [draw(colliding_resource(n, account, region)) for n in names]
        results.append(ok_scope(region, account, found, matcher=matcher))
    return results


def identity_of(resource: Resource) -> tuple[str, str, str, str]:
    aws = resource.aws
    return (aws.account_id, aws.region, aws.rdsproxy_resource_id, aws.rdsproxy_custom_endpoint_name)


@PROPERTY_SETTINGS
@given(
    current=colliding_registries(),
    scopes=colliding_scopes(),
    policy=st.sampled_from(POLICIES),
    force=st.booleans(),
)
def test_property_an_incumbents_identity_never_changes(
    current: list[StoredResource], scopes: list[ScopeResult], policy: str, force: bool
) -> None:
    p = plan(scopes, current, policy=policy, force=force)

    for update in p.update:
        assert identity_of(update.after) == identity_of(update.before.resource), update
    assert not created(p) & {s.resource.name for s in current}
    after = {s.resource.name: s.resource for s in apply(current, p)}
    for s in current:
        if s.resource.name in after:
            assert identity_of(after[s.resource.name]) == identity_of(s.resource)
    # A name wanted by two sources, none of them registered under it, is given to neither.
    wanted: dict[str, set[tuple[str, str, str, str]]] = {}
    for result in scopes:
        for resource in result.resources if result.ok else ():
            wanted.setdefault(resource.name, set()).add(identity_of(resource))
    for resource in p.create:
        assert len(wanted[resource.name]) == 1, resource.name


@PROPERTY_SETTINGS
@given(current=colliding_registries(), scopes=colliding_scopes(), policy=st.sampled_from(POLICIES))
def test_property_apply_then_replan_is_empty_with_collisions(
    current: list[StoredResource], scopes: list[ScopeResult], policy: str
) -> None:
    first = plan(scopes, current, policy=policy, force=True)

    second = plan(scopes, apply(current, first), policy=policy, force=True)

    assert not second.changes, (second.create, second.update, second.delete)
