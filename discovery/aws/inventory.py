"""The account and region listings a cycle needs, cached for `organization.cache_ttl`.

`Inventory.listings(config)` returns the `Listings` that `expand_scopes` expands, plus a
failed pseudo-scope (region `*`) for every listing that failed, so a failure shows in the
report, the exit code and the metrics like a failed scope does. A stale listing is refreshed
at the start of the cycle that finds it stale; a refresh that fails keeps the last good
account listing (its accounts are still scanned) but marks it incomplete, so no account
counts as gone on its word. A region listing that fails leaves its account unscanned and
frozen (`discovery.core.organization.listing_freezes`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from discovery.aws.calls import Caller, ErrorKind, FetchError
from discovery.aws.clients import AWSClients, home_region
from discovery.aws.organizations import enabled_regions, list_organization
from discovery.core.config import Config
from discovery.core.matchers import Matcher
from discovery.core.model import Scope, ScopeResult
from discovery.core.organization import AccountListing, Listings, OrgAccount, RegionListing
from discovery.core.scopes import matcher_roles

T = TypeVar("T")
ALL_REGIONS_SCOPE = "*"
ROLE_MISSING_HINT = (
    "is the role deployed in this account (deploy/iam/organization-member-role.yaml, e.g. "
    "as a StackSet) and does its trust policy allow this identity?"
)


@dataclass(frozen=True, kw_only=True)
class _Cached(Generic[T]):
    at: float
    value: T


@dataclass(frozen=True, kw_only=True)
class Inventory:
    listings: Listings
    failures: tuple[ScopeResult, ...]


class AccountInventory:
    """Organizations and ListRegions listings over the source's clients, cached by key."""

    def __init__(
        self, *, clients: AWSClients, caller: Caller, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._clients = clients
        self._caller = caller
        self._clock = clock
        self._accounts: dict[tuple[object, ...], _Cached[tuple[OrgAccount, ...]]] = {}
        self._regions: dict[tuple[str, str], _Cached[tuple[str, ...]]] = {}

    async def listings(self, config: Config) -> Inventory:
        ttl = config.organization.cache_ttl
        accounts: dict[int, AccountListing] = {}
        failures: list[ScopeResult] = []
        for index, matcher in enumerate(config.aws):
            if matcher.organization is None:
                continue
            listing = await self._account_listing(matcher, ttl)
            accounts[index] = listing
            if not listing.complete:
                failures.append(_failed(config, index, matcher, "", "", listing.error))
        partial = Listings(accounts=accounts)
        wanted: list[tuple[int, str, str, str]] = [
            (index, account, role, matcher.external_id)
            for index, matcher in enumerate(config.aws)
            if matcher.all_regions
            for account, role in matcher_roles(index, matcher, partial)
        ]
        listed = await asyncio.gather(
            *(self._region_listing(role, external_id, ttl) for _, _, role, external_id in wanted)
        )
        regions: dict[tuple[int, str], RegionListing] = {}
        for (index, account, role, _), region_listing in zip(wanted, listed, strict=True):
            regions[(index, account)] = region_listing
            if not region_listing.ok:
                failures.append(
                    _failed(config, index, config.aws[index], account, role, region_listing.error)
                )
        return Inventory(
            listings=Listings(accounts=accounts, regions=regions), failures=tuple(failures)
        )

    async def _account_listing(self, matcher: Matcher, ttl: float) -> AccountListing:
        match = matcher.organization
        assert match is not None
        key = (match.id, match.include_ous, match.exclude_ous, matcher.organization_role_arn)
        cached = self._accounts.get(key)
        if cached is not None and self._clock() - cached.at < ttl:
            return AccountListing(complete=True, accounts=cached.value)
        try:
            client = await self._clients.client(
                matcher.organization_role_arn, "", "organizations", home_region()
            )
            found = await list_organization(self._caller, client, match)
        except FetchError as exc:
            stale = cached.value if cached is not None else ()
            return AccountListing(complete=False, accounts=stale, error=str(exc))
        self._accounts[key] = _Cached(at=self._clock(), value=found)
        return AccountListing(complete=True, accounts=found)

    async def _region_listing(self, role: str, external_id: str, ttl: float) -> RegionListing:
        key = (role, external_id)
        cached = self._regions.get(key)
        if cached is not None and self._clock() - cached.at < ttl:
            return RegionListing(ok=True, regions=cached.value)
        try:
            client = await self._clients.client(role, external_id, "account", home_region())
            found = await enabled_regions(self._caller, client)
        except FetchError as exc:
            message = str(exc)
            if exc.action == "sts:AssumeRole" and exc.kind is ErrorKind.DENIED:
                message = f"cannot assume {role}: {message}; {ROLE_MISSING_HINT}"
            return RegionListing(ok=False, error=message)
        if not found:
            # Every account has enabled regions: an empty answer is a broken view, not a fleet.
            return RegionListing(
                ok=False,
                error="account:ListRegions listed no enabled region; the account is left "
                "frozen until it lists some (check the account's region settings)",
            )
        self._regions[key] = _Cached(at=self._clock(), value=found)
        return RegionListing(ok=True, regions=found)


def _failed(
    config: Config, index: int, matcher: Matcher, account: str, role: str, error: str
) -> ScopeResult:
    """A failed listing as a failed scope in region `*` (all regions of `account`, or of every
    account of the organization when `account` is "")."""
    scope = Scope(
        matcher_index=index,
        region=ALL_REGIONS_SCOPE,
        assume_role_arn=role,
        external_id=matcher.external_id if role else "",
        selector=tuple(matcher.tags.items()),
        discovery_group=config.discovery_group,
    )
    return ScopeResult(scope=scope, ok=False, account_id=account, error=error)
