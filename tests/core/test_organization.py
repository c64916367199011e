"""The pure side of organization matchers: which accounts a listing selects, what a cycle's
listings expand to, and what they freeze (vanished, suspended, unlisted accounts)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from discovery.core.config import Config, config_from_mapping
from discovery.core.model import AWSInfo, Resource, Scope, ScopeResult, StoredResource
from discovery.core.organization import (
    AccountListing,
    Listings,
    OrgAccount,
    OrgChildren,
    RegionListing,
    listing_freezes,
    select_accounts,
)
from discovery.core.plan import make_plan
from discovery.core.scopes import expand_scopes

ROOT, PROD, TEAM, SANDBOX = "r-root", "ou-root-prod0001", "ou-root-team0001", "ou-root-sand0001"
A, B, C, D, E = (str(n) * 12 for n in range(1, 6))
ORG = "o-exampleorg01"
HOUR = 3600.0
GROUP = "g"


def acct(account: str, status: str = "ACTIVE") -> OrgAccount:
    return OrgAccount(id=account, status=status)


# root: A, ou PROD (B, ou TEAM (C)), ou SANDBOX (D)
TREE = {
    ROOT: OrgChildren(ous=(PROD, SANDBOX), accounts=(acct(A),)),
    PROD: OrgChildren(ous=(TEAM,), accounts=(acct(B),)),
    TEAM: OrgChildren(accounts=(acct(C),)),
    SANDBOX: OrgChildren(accounts=(acct(D),)),
}


@pytest.mark.parametrize(
    ("include", "exclude", "expected"),
    [
        pytest.param((), (), [A, B, C, D], id="default-is-the-whole-organization"),
        pytest.param((PROD,), (), [B, C], id="include-takes-the-subtree"),
        pytest.param((), (PROD,), [A, D], id="exclude-drops-the-subtree"),
        pytest.param((PROD,), (TEAM,), [B], id="exclude-inside-include"),
        pytest.param((TEAM,), (PROD,), [], id="include-inside-exclude-stays-dropped"),
        pytest.param((TEAM, SANDBOX), (), [C, D], id="several-includes"),
        pytest.param(("ou-root-none0001",), (), [], id="unknown-ou-selects-nothing"),
    ],
)
def test_select_accounts(
    include: tuple[str, ...], exclude: tuple[str, ...], expected: list[str]
) -> None:
    found = select_accounts(roots=(ROOT,), children=TREE, include=include, exclude=exclude)
    assert [a.id for a in found] == expected


def config(**matcher: Any) -> Config:
    return config_from_mapping(
        {
            "discovery_group": GROUP,
            "aws": [
                {
                    "types": ["rdsproxy"],
                    "regions": ["*"],
                    "organization": {"id": ORG},
                    "assume_role_name": "discovery",
                    **matcher,
                },
                {"types": ["rdsproxy"], "regions": ["eu-west-1"]},
            ],
        }
    )


def test_expand_scopes_per_active_account_and_listed_region() -> None:
    listings = Listings(
        accounts={
            0: AccountListing(complete=True, accounts=(acct(A), acct(B, "SUSPENDED"), acct(C)))
        },
        regions={
            (0, A): RegionListing(ok=True, regions=("eu-west-1", "us-east-1")),
            (0, C): RegionListing(ok=False, error="boom"),
        },
    )
    scopes = expand_scopes(config(external_id="x"), listings)
    assert [(s.matcher_index, s.role_account_id, s.region) for s in scopes] == [
        (0, A, "eu-west-1"),
        (0, A, "us-east-1"),
        (1, "", "eu-west-1"),
    ]
    assert scopes[0].assume_role_arn == f"arn:aws:iam::{A}:role/discovery"
    assert scopes[0].external_id == "x"


def test_without_listings_only_static_matchers_expand() -> None:
    assert [s.matcher_index for s in expand_scopes(config())] == [1]


def test_named_regions_need_no_region_listing_and_the_partition_follows_the_org_role() -> None:
    cfg = config(
        regions=["us-east-1"], organization_role_arn="arn:aws-cn:iam::999999999999:role/org"
    )
    listings = Listings(accounts={0: AccountListing(complete=True, accounts=(acct(A),))})
    [scope, _] = expand_scopes(cfg, listings)
    assert (scope.region, scope.assume_role_arn) == (
        "us-east-1",
        f"arn:aws-cn:iam::{A}:role/discovery",
    )


def res(
    name: str, account: str, *, role: str = "discovery", region: str = "us-east-1"
) -> StoredResource:
    labels = {"teleport.dev/origin": "cloud", "teleport.internal/discovery-group-name": GROUP}
    arn = f"arn:aws:iam::{account}:role/{role}" if role else ""
    resource = Resource(
        name=name,
        description="",
        labels=labels,
        protocol="postgres",
        uri="h:5432",
        aws=AWSInfo(
            region=region,
            account_id=account,
            rdsproxy_name=name,
            rdsproxy_resource_id=name,
            assume_role_arn=arn,
        ),
    )
    return StoredResource(resource=resource, revision=1)


REGISTRY = [res("a", A), res("b", B), res("c", C), res("other-role", D, role="admin")]


def freezes(listing: AccountListing, gone: Mapping[str, float], now: float = 100 * HOUR) -> Any:
    scanned = {(0, a): RegionListing(ok=True, regions=("us-east-1",)) for a in listing.active}
    listings = Listings(accounts={0: listing}, regions=scanned)
    return listing_freezes(config(), listings, current=REGISTRY, gone=gone, now=now)


def plan_deletes(found: Any) -> tuple[set[str], dict[str, str]]:
    """Every owned resource is undesired here: what would the plan delete, and hold why?"""
    scope = Scope(
        matcher_index=0, region="us-east-1", assume_role_arn=f"arn:aws:iam::{A}:role/discovery"
    )
    plan = make_plan(
        scopes=[ScopeResult(scope=scope, ok=True, account_id=A)],
        current=REGISTRY,
        discovery_group=GROUP,
        force=True,
        listed=found,
    )
    return {s.resource.name for s in plan.delete}, {w.name: w.reason for w in plan.withheld}


def test_a_vanished_account_is_frozen_and_its_clock_starts() -> None:
    found = freezes(AccountListing(complete=True, accounts=(acct(A),)), gone={})
    assert found.gone == {B: 100 * HOUR, C: 100 * HOUR}
    deleted, held = plan_deletes(found)
    # A was scanned (empty): its resource goes; B and C only vanished; D is another role's.
    assert deleted == {"a", "other-role"}
    assert "is not in the listing" in held["b"] and "gone_grace" in held["b"]


def test_a_suspended_account_is_frozen_with_its_status() -> None:
    found = freezes(
        AccountListing(complete=True, accounts=(acct(A), acct(B, "SUSPENDED"))), gone={}
    )
    _, held = plan_deletes(found)
    assert f"account {B} is SUSPENDED" in held["b"]


def test_after_the_grace_a_complete_listing_may_empty_the_account() -> None:
    found = freezes(
        AccountListing(complete=True, accounts=(acct(A),)), gone={B: 75 * HOUR, C: 90 * HOUR}
    )
    assert found.gone == {B: 75 * HOUR, C: 90 * HOUR}  # the first sighting is kept
    deleted, held = plan_deletes(found)
    assert "b" in deleted and "c" in held


def test_an_incomplete_listing_freezes_every_unscanned_account_and_stops_the_clocks() -> None:
    # Stale accounts (A) are still scanned; nothing else of the matcher may change, however
    # long the state says B has been gone, and no clock starts for C.
    found = freezes(
        AccountListing(complete=False, accounts=(acct(A),), error="denied"), gone={B: 0.0}
    )
    assert found.gone == {B: 0.0}
    deleted, held = plan_deletes(found)
    assert deleted == {"a", "other-role"}
    assert "could not be listed: denied" in held["b"] and "c" in held


def test_a_failed_region_listing_freezes_the_whole_account() -> None:
    listings = Listings(
        accounts={0: AccountListing(complete=True, accounts=(acct(A), acct(B), acct(C)))},
        regions={(0, B): RegionListing(ok=False, error="ListRegions failed")},
    )
    found = listing_freezes(config(), listings, current=REGISTRY, gone={}, now=0.0)
    assert "ListRegions failed" in found.accounts[B]
    _, held = plan_deletes(found)
    assert "its regions could not be listed" in held["b"]


def test_an_account_scanned_through_an_explicit_role_of_the_same_name_is_not_frozen() -> None:
    cfg = config_from_mapping(
        {
            "discovery_group": GROUP,
            "aws": [
                {
                    "types": ["rdsproxy"],
                    "regions": ["us-east-1"],
                    "organization": {"id": ORG},
                    "assume_role_name": "discovery",
                },
                {
                    "types": ["rdsproxy"],
                    "regions": ["us-east-1"],
                    "assume_role_arn": f"arn:aws:iam::{B}:role/discovery",
                },
            ],
        }
    )
    listings = Listings(accounts={0: AccountListing(complete=True, accounts=(acct(A),))})
    found = listing_freezes(cfg, listings, current=REGISTRY, gone={}, now=0.0)
    # B is outside the organization but scanned by matcher 1: its changes are its own.
    assert set(found.gone) == {C}
    [role] = found.roles
    assert role.open == {A, B}


ACCOUNTS = (A, B, C, D, E)


@settings(max_examples=150, deadline=None)
@given(
    statuses=st.dictionaries(
        st.sampled_from(ACCOUNTS), st.sampled_from(["ACTIVE", "SUSPENDED", "PENDING_CLOSURE"])
    ),
    complete=st.booleans(),
    gone=st.dictionaries(st.sampled_from(ACCOUNTS), st.floats(0, 100 * HOUR)),
    held=st.lists(st.sampled_from(ACCOUNTS), min_size=1, max_size=8),
)
def test_no_unscanned_account_loses_a_resource_before_its_grace(
    statuses: dict[str, str], complete: bool, gone: dict[str, float], held: list[str]
) -> None:
    """Whatever the listing says, a resource of an account that was not scanned is only ever
    deleted when a complete listing shows it gone for the whole grace period."""
    now = 100 * HOUR
    current = [res(f"r{i}", account) for i, account in enumerate(held)]
    listing = AccountListing(
        complete=complete, accounts=tuple(acct(a, s) for a, s in sorted(statuses.items()))
    )
    found = listing_freezes(
        config(regions=["us-east-1"]),
        Listings(accounts={0: listing}),
        current=current,
        gone=gone,
        now=now,
    )
    plan = make_plan(scopes=[], current=current, discovery_group=GROUP, force=True, listed=found)
    for stored in plan.delete:
        account = stored.resource.aws.account_id
        if statuses.get(account) == "ACTIVE":
            continue  # scanned: its deletes follow its own scopes' answers
        assert complete and account in gone and now - gone[account] >= 24 * HOUR
    # The clock only starts on a complete listing, and never moves later.
    for account, since in found.gone.items():
        assert since <= now and (account in gone or complete)
        assert since == gone.get(account, since)


@pytest.mark.parametrize(
    ("matcher", "frozen_account"),
    [
        pytest.param({"assume_role_arn": f"arn:aws:iam::{B}:role/discovery"}, B, id="role"),
        pytest.param({}, "", id="base-credentials"),
    ],
)
def test_all_regions_without_a_region_listing_freezes_what_the_matcher_reached(
    matcher: dict[str, Any], frozen_account: str
) -> None:
    cfg = config_from_mapping(
        {"discovery_group": GROUP, "aws": [{"types": ["rdsproxy"], "regions": ["*"], **matcher}]}
    )
    base = res("base", E, role="")
    current = [*REGISTRY, base]
    for listings in (
        Listings(),  # no lister at all
        Listings(regions={(0, frozen_account): RegionListing(ok=False, error="boom")}),
    ):
        found = listing_freezes(cfg, listings, current=current, gone={}, now=0.0)
        plan = make_plan(
            scopes=[], current=current, discovery_group=GROUP, force=True, listed=found
        )
        held = {w.name for w in plan.withheld}
        assert ("b" in held) == (frozen_account == B)
        assert ("base" in held) == (frozen_account == "")
