"""The config's matchers → the scopes a cycle fetches (DESIGN §3).

A scope is the unit of fetching and of failure: one matcher, its role, one region. Each
carries its matcher's selector and the discovery group, so converting what it fetched needs
nothing else from the config. Matchers whose accounts or regions AWS lists (an `organization`,
or `regions: ["*"]`) expand from the `Listings` the shell fetched: without them, to nothing.
"""

from __future__ import annotations

from discovery.core.config import Config
from discovery.core.matchers import Matcher
from discovery.core.model import Scope
from discovery.core.organization import Listings, member_role_arn, partition_of

NO_LISTINGS = Listings()


def needs_listings(config: Config) -> bool:
    return any(m.needs_listing for m in config.aws)


def matcher_roles(index: int, matcher: Matcher, listings: Listings) -> list[tuple[str, str]]:
    """(account, role ARN) of every account a matcher covers; account "" when only STS knows
    it (base credentials). An organization matcher: each ACTIVE account listed."""
    if matcher.organization is None:
        return [(matcher.role_account_id, matcher.assume_role_arn)]
    listing = listings.accounts.get(index)
    if listing is None:
        return []
    partition = partition_of(matcher.organization_role_arn)
    return [
        (
            account,
            member_role_arn(
                account=account, role_name=matcher.assume_role_name, partition=partition
            ),
        )
        for account in listing.active
    ]


def matcher_regions(
    index: int, matcher: Matcher, account: str, listings: Listings
) -> tuple[str, ...]:
    if not matcher.all_regions:
        return matcher.regions
    listed = listings.regions.get((index, account))
    return listed.regions if listed is not None and listed.ok else ()


def expand_scopes(config: Config, listings: Listings = NO_LISTINGS) -> list[Scope]:
    """matcher x role x region, in config order (accounts and regions in listing order)."""
    return [
        Scope(
            matcher_index=index,
            region=region,
            assume_role_arn=role,
            external_id=matcher.external_id,
            selector=tuple(matcher.tags.items()),
            discovery_group=config.discovery_group,
            db_assume_role_arn=matcher.db_assume_role_arn,
            db_external_id=matcher.db_external_id,
        )
        for index, matcher in enumerate(config.aws)
        for account, role in matcher_roles(index, matcher, listings)
        for region in matcher_regions(index, matcher, account, listings)
    ]
