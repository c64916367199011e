"""Accounts and regions that AWS lists, as plain values, and the safety rules built on them.

An organization matcher's scopes come from what the Organizations API lists (ACTIVE accounts
of the included OUs) and, with `regions: ["*"]`, what `account:ListRegions` lists per account.
Pure: the shell (`discovery.aws.organizations`, `discovery.reconcile.inventory`) fetches and
caches the listings; the functions here select, expand and freeze.

Safety: an account is never emptied because a listing stopped showing it. A resource reached
through an organization matcher's role (`spec.aws.assume_role_arn` ends in
`:role/<assume_role_name>`) in an account that is not ACTIVE in this cycle's listing is frozen,
until that account has been gone (missing or not ACTIVE) for `organization.gone_grace`, as
seen by complete listings only. When the listing fails, nothing of the matcher's may change
except in the accounts that were scanned (from the last good listing).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from discovery.core.config import Config
from discovery.core.model import Resource, StoredResource, is_owned

ACTIVE = "ACTIVE"


@dataclass(frozen=True, kw_only=True)
class OrgAccount:
    id: str
    status: str  # ACTIVE, SUSPENDED, PENDING_CLOSURE


@dataclass(frozen=True, kw_only=True)
class OrgChildren:
    """What one parent (the root or an OU) holds: its child OUs and its accounts."""

    ous: tuple[str, ...] = ()
    accounts: tuple[OrgAccount, ...] = ()


def select_accounts(
    *,
    roots: Sequence[str],
    children: Mapping[str, OrgChildren],
    include: Sequence[str],
    exclude: Sequence[str],
) -> tuple[OrgAccount, ...]:
    """The accounts (any status) in the included subtrees (default: the roots), minus every
    excluded subtree, sorted by id. An excluded OU drops its subtree even inside an included
    one; an included OU inside an excluded one stays dropped."""
    wanted = set(include)
    dropped = set(exclude)
    found: dict[str, OrgAccount] = {}
    stack = [(root, not wanted or root in wanted) for root in roots]
    seen: set[str] = set()
    while stack:
        node, included = stack.pop()
        if node in seen or node in dropped:
            continue
        seen.add(node)
        held = children.get(node, OrgChildren())
        if included:
            for account in held.accounts:
                found.setdefault(account.id, account)
        stack.extend((ou, included or ou in wanted) for ou in held.ous)
    return tuple(found[a] for a in sorted(found))


@dataclass(frozen=True, kw_only=True)
class AccountListing:
    """An organization matcher's accounts. `complete`: this cycle's listing succeeded (every
    call, every page); otherwise `accounts` are the last good listing's (maybe none)."""

    complete: bool
    accounts: tuple[OrgAccount, ...] = ()
    error: str = ""

    @property
    def active(self) -> tuple[str, ...]:
        return tuple(a.id for a in self.accounts if a.status == ACTIVE)


@dataclass(frozen=True, kw_only=True)
class RegionListing:
    ok: bool
    regions: tuple[str, ...] = ()
    error: str = ""


@dataclass(frozen=True, kw_only=True)
class Listings:
    """What AWS listed for the matchers that need it: accounts by matcher index; regions by
    (matcher index, account id), account "" for a `["*"]` matcher on the base credentials."""

    accounts: Mapping[int, AccountListing] = field(default_factory=dict)
    regions: Mapping[tuple[int, str], RegionListing] = field(default_factory=dict)


def member_role_arn(*, account: str, role_name: str, partition: str = "aws") -> str:
    return f"arn:{partition}:iam::{account}:role/{role_name}"


def partition_of(arn: str) -> str:
    return arn.split(":")[1] if arn.count(":") >= 5 else "aws"


def role_name_of(resource: Resource) -> str:
    arn = resource.aws.assume_role_arn
    return arn.rsplit("/", 1)[-1] if ":role/" in arn else ""


@dataclass(frozen=True, kw_only=True)
class RoleFreeze:
    """Resources reached through role name `role` are frozen in every account but `open`."""

    role: str
    open: frozenset[str]
    reasons: Mapping[str, str]  # account → why it is frozen
    reason: str  # for an account without its own reason

    def reason_for(self, resource: Resource) -> str | None:
        if role_name_of(resource) != self.role or resource.aws.account_id in self.open:
            return None
        return self.reasons.get(resource.aws.account_id, self.reason)


@dataclass(frozen=True, kw_only=True)
class ListingFreezes:
    """What the listings freeze, for the plan, and the "first seen gone" state to keep."""

    accounts: Mapping[str, str]  # account-wide: account → why (its regions could not be listed)
    roles: tuple[RoleFreeze, ...]
    gone: Mapping[str, float]  # account → when a complete listing first showed it gone
    # Accounts gone for the whole grace period by complete listings: their resources may be
    # deleted, although no scope covers them any more (not a `config-change`).
    expired: frozenset[str] = frozenset()


def listing_freezes(
    config: Config,
    listings: Listings,
    *,
    current: Iterable[StoredResource],
    gone: Mapping[str, float],
    now: float,
) -> ListingFreezes:
    """The freezes this cycle's listings call for, and the next "first seen gone" state.

    `gone` is the state kept from earlier cycles; an account gets its first-seen time from the
    first complete listing without it (never from an incomplete one), and leaves the state
    when it is ACTIVE again or no longer has resources.
    """
    grace = config.organization.gone_grace
    owned = [s.resource for s in current if is_owned(s.resource, config.discovery_group)]
    accounts: dict[str, str] = {}
    roles: list[RoleFreeze] = []
    for index, matcher in enumerate(config.aws):
        if not matcher.all_regions:
            continue
        if matcher.organization is None:
            covered = [matcher.role_account_id]
        else:
            covered = list(listings.accounts.get(index, AccountListing(complete=False)).active)
        for account in covered:
            regions = listings.regions.get((index, account))
            if regions is not None and regions.ok:
                continue
            why = regions.error if regions is not None else "not listed"
            reason = (
                f"account {account or '(base credentials)'}: its regions could not be listed "
                f'(aws[{index}], regions: ["*"]): {why}'
            )
            if account:
                accounts.setdefault(account, reason)
            else:  # the account is unknown: freeze what the base credentials registered
                roles.append(RoleFreeze(role="", open=frozenset(), reasons={}, reason=reason))
    next_gone: dict[str, float] = {}
    expired: set[str] = set()
    # Accounts scanned through a role name this cycle, by any matcher: an organization's ACTIVE
    # accounts, and the account of an explicit assume_role_arn with the same role name.
    scanned: dict[str, set[str]] = {}
    for index, matcher in enumerate(config.aws):
        if matcher.organization is not None:
            found = listings.accounts.get(index, AccountListing(complete=False))
            scanned.setdefault(matcher.assume_role_name, set()).update(found.active)
        elif matcher.assume_role_arn:
            name = matcher.assume_role_arn.rsplit("/", 1)[-1]
            scanned.setdefault(name, set()).add(matcher.role_account_id)
    for index, matcher in enumerate(config.aws):
        if matcher.organization is None:
            continue
        name = matcher.assume_role_name
        listing = listings.accounts.get(index, AccountListing(complete=False))
        active = scanned.get(name, set())
        status = {a.id: a.status for a in listing.accounts}
        held = {r.aws.account_id for r in owned if role_name_of(r) == name} - active
        reasons: dict[str, str] = {}
        open_accounts = set(active)
        for account in sorted(held):
            since = gone.get(account)
            if listing.complete:
                since = now if since is None else since
                next_gone[account] = min(since, next_gone.get(account, since))
            elif since is not None:
                next_gone[account] = since
            what = f"is {status[account]}" if account in status else "is not in the listing"
            if listing.complete and since is not None and now - since >= grace:
                open_accounts.add(account)  # gone for the whole grace period: may be emptied
                expired.add(account)
                continue
            if listing.complete:
                reasons[account] = (
                    f"account {account} {what} of organization {matcher.organization.id} "
                    f"(aws[{index}]); its resources are kept until it has been gone for "
                    f"organization.gone_grace ({grace:g}s)"
                )
        fallback = (
            f"the accounts of organization {matcher.organization.id} (aws[{index}]) could not "
            f"be listed: {listing.error or 'no listing yet'}; their resources are left as they are"
        )
        roles.append(
            RoleFreeze(role=name, open=frozenset(open_accounts), reasons=reasons, reason=fallback)
        )
    return ListingFreezes(
        accounts=accounts, roles=tuple(roles), gone=next_gone, expired=frozenset(expired)
    )
