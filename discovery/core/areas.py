"""Where a cycle's view of AWS is missing or suspiciously empty, for the plan's safety rules.

`frozen_areas`: the account-regions (or whole regions) whose scopes failed, and what the
account listings freeze; nothing there is created, updated or deleted. `empty_areas`: the
account-regions that answered with nothing while the registry holds several of their resources;
their deletes wait for review (`empty-scope`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from discovery.core.model import Resource, ScopeResult, StoredResource
from discovery.core.organization import RoleFreeze

__all__ = ["EMPTY_SCOPE_MIN_REGISTERED", "Frozen", "empty_areas", "frozen_areas"]

# An account-region that comes back empty while the registry holds this many of its resources
# has its deletes withheld: an empty answer that large is more likely a broken view than a fleet.
EMPTY_SCOPE_MIN_REGISTERED = 4


@dataclass(frozen=True, kw_only=True)
class Frozen:
    """Where failed scopes could have produced resources: (account, region) or whole regions;
    and what the account listings freeze: whole accounts (their regions could not be listed)
    and an organization matcher's role in every account not scanned (see `organization`)."""

    account_regions: frozenset[tuple[str, str]]
    regions: frozenset[str]
    reasons: dict[tuple[str, str], str]
    accounts: Mapping[str, str] = field(default_factory=dict)
    roles: tuple[RoleFreeze, ...] = ()

    def reason_for(self, resource: Resource) -> str | None:
        region, account = resource.aws.region, resource.aws.account_id
        if region in self.regions:
            return self.reasons.get(("", region), "scope failed")
        if (account, region) in self.account_regions:
            return self.reasons.get((account, region), "scope failed")
        if account in self.accounts:
            return self.accounts[account]
        for role in self.roles:
            reason = role.reason_for(resource)
            if reason is not None:
                return reason
        return None


def frozen_areas(scopes: Iterable[ScopeResult]) -> Frozen:
    account_regions: set[tuple[str, str]] = set()
    regions: set[str] = set()
    reasons: dict[tuple[str, str], str] = {}
    for result in scopes:
        if result.ok:
            continue
        region = result.scope.region
        account = result.account_id or result.scope.role_account_id
        if account:
            account_regions.add((account, region))
            reasons.setdefault(
                (account, region), f"scope {account}/{region} failed: {result.error}"
            )
        else:
            regions.add(region)
            reasons.setdefault(("", region), f"scope in {region} failed: {result.error}")
    return Frozen(
        account_regions=frozenset(account_regions), regions=frozenset(regions), reasons=reasons
    )


def empty_areas(
    scopes: Sequence[ScopeResult], owned: Iterable[StoredResource]
) -> dict[tuple[str, str], int]:
    """Account-regions that answered with no resources at all while the registry holds
    `EMPTY_SCOPE_MIN_REGISTERED` or more of their owned resources: area → registered count."""
    answered: set[tuple[str, str]] = set()
    found: set[tuple[str, str]] = set()
    for result in scopes:
        if result.ok:
            answered.add((result.account_id or result.scope.role_account_id, result.scope.region))
            found.update((r.aws.account_id, r.aws.region) for r in result.resources)
    registered: dict[tuple[str, str], int] = {}
    for stored in owned:
        area = (stored.resource.aws.account_id, stored.resource.aws.region)
        scanned = area in answered or ("", area[1]) in answered
        if scanned and area not in found:
            registered[area] = registered.get(area, 0) + 1
    return {a: n for a, n in registered.items() if n >= EMPTY_SCOPE_MIN_REGISTERED}
