"""What the config covers: the account-regions a cycle scans, and the owned resources outside them.

An owned resource whose account-region no scope of the current config covers any more (the
config dropped its region, its matcher or its role) is not gone from AWS: the config stopped
looking. Its delete is a *config change* (code `config-change`), withheld until the operator
confirms it (`discovery scan --accept-config-change`, or `--force`). The rule reads only the
cycle's scopes and the registry, so it holds after a reload and after a restart alike.

A scope whose account is known only after AssumeRole/GetCallerIdentity (no role ARN) and that
never told it covers its whole region: the rule then errs on the side of not withholding, as
`empty_areas` does with ("", region).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from discovery.core.model import Resource, Scope, ScopeResult, StoredResource

Area = tuple[str, str]  # (account, region)


@dataclass(frozen=True, kw_only=True)
class Coverage:
    """The account-regions a cycle scans (whether its scopes answered or failed)."""

    account_regions: frozenset[Area]
    regions: frozenset[str]  # scopes of an unknown account: every account of the region
    # Whole accounts a listing settles although no scope reaches them (an organization's
    # account gone past `organization.gone_grace`): their deletes are not config changes.
    accounts: frozenset[str] = frozenset()

    def covers(self, resource: Resource) -> bool:
        aws = resource.aws
        return (
            aws.region in self.regions
            or (aws.account_id, aws.region) in self.account_regions
            or aws.account_id in self.accounts
        )


def _coverage(areas: Iterable[Area]) -> Coverage:
    known: set[Area] = set()
    regions: set[str] = set()
    for account, region in areas:
        if account:
            known.add((account, region))
        else:
            regions.add(region)
    return Coverage(account_regions=frozenset(known), regions=frozenset(regions))


def coverage_of(results: Iterable[ScopeResult]) -> Coverage:
    """What this cycle's scopes cover: each one's account (resolved, else its role's) x region."""
    return _coverage((r.account_id or r.scope.role_account_id, r.scope.region) for r in results)


def coverage_of_config(scopes: Iterable[Scope], accounts: Mapping[str, str]) -> Coverage:
    """What a config's scopes will cover, before any of them is fetched (a reload's preview).

    `accounts` maps a role ARN ("" for the default credentials) to the account a past cycle
    resolved it to; a scope whose account is unknown so far covers its whole region.
    """
    return _coverage(
        (s.role_account_id or accounts.get(s.assume_role_arn, ""), s.region) for s in scopes
    )


def resolved_accounts(results: Iterable[ScopeResult]) -> dict[str, str]:
    """Role ARN ("" for the default credentials) → the account a cycle resolved it to."""
    return {r.scope.assume_role_arn: r.account_id for r in results if r.account_id}


def uncovered(owned: Iterable[StoredResource], coverage: Coverage) -> dict[Area, list[str]]:
    """The owned resources no scope covers, by account-region: area → their names (sorted)."""
    found: dict[Area, list[str]] = {}
    for stored in owned:
        resource = stored.resource
        if not coverage.covers(resource):
            found.setdefault((resource.aws.account_id, resource.aws.region), []).append(
                resource.name
            )
    return {area: sorted(names) for area, names in sorted(found.items())}


def config_change_reason(resource: Resource) -> str:
    aws = resource.aws
    return (
        f"config change: no matcher of the config covers {aws.account_id or '?'}/{aws.region} "
        "any more, so its resources are not deleted unreviewed; if the config dropped it on "
        "purpose, run `discovery scan --accept-config-change` to delete them once, else put "
        "the region back"
    )
