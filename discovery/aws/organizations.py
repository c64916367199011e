"""The listings behind organization matchers and `regions: ["*"]`: AWS Organizations' tree of
OUs and accounts, and `account:ListRegions`, every page, through the one `Caller`.

The organization is walked from its root (ListRoots → ListOrganizationalUnitsForParent and
ListAccountsForParent per parent, a level at a time, concurrently), without descending into an
excluded OU; `discovery.core.organization.select_accounts` decides what is included. The
organization id is checked against DescribeOrganization first: credentials of another
organization fail the listing instead of scanning the wrong accounts.
"""

from __future__ import annotations

import asyncio
from typing import Any

from discovery.aws.calls import Caller, ErrorKind, FetchError
from discovery.core.matchers import OrganizationMatch
from discovery.core.organization import OrgAccount, OrgChildren, select_accounts

ENABLED_STATUSES = ["ENABLED", "ENABLED_BY_DEFAULT"]
_TOKEN = "NextToken"


async def list_organization(
    caller: Caller, organizations: Any, match: OrganizationMatch
) -> tuple[OrgAccount, ...]:
    """Every account (any status) `match` covers. Raises `FetchError` if any call fails."""
    described = await caller.call(
        "organizations:DescribeOrganization", organizations.describe_organization
    )
    actual = str(described.get("Organization", {}).get("Id", ""))
    if actual != match.id:
        raise FetchError(
            f"organization.id is {match.id} but these credentials belong to organization "
            f"{actual or '(none)'}; fix organization.id or the credentials "
            "(organization_role_arn) that list it",
            action="organizations:DescribeOrganization",
            kind=ErrorKind.ERROR,
        )
    roots = await caller.pages(
        "organizations:ListRoots", organizations.list_roots, "Roots", _TOKEN, _TOKEN
    )
    root_ids = [str(r["Id"]) for r in roots]
    excluded = set(match.exclude_ous)
    children: dict[str, OrgChildren] = {}
    level = [r for r in root_ids if r not in excluded]
    while level:
        held = await asyncio.gather(*(_children(caller, organizations, p) for p in level))
        children.update(zip(level, held, strict=True))
        level = [ou for h in held for ou in h.ous if ou not in excluded and ou not in children]
    return select_accounts(
        roots=root_ids, children=children, include=match.include_ous, exclude=match.exclude_ous
    )


async def _children(caller: Caller, organizations: Any, parent: str) -> OrgChildren:
    units, accounts = await asyncio.gather(
        caller.pages(
            "organizations:ListOrganizationalUnitsForParent",
            organizations.list_organizational_units_for_parent,
            "OrganizationalUnits",
            _TOKEN,
            _TOKEN,
            ParentId=parent,
        ),
        caller.pages(
            "organizations:ListAccountsForParent",
            organizations.list_accounts_for_parent,
            "Accounts",
            _TOKEN,
            _TOKEN,
            ParentId=parent,
        ),
    )
    return OrgChildren(
        ous=tuple(str(u["Id"]) for u in units),
        accounts=tuple(
            OrgAccount(id=str(a["Id"]), status=str(a.get("Status") or a.get("State") or ""))
            for a in accounts
        ),
    )


async def enabled_regions(caller: Caller, account_api: Any) -> tuple[str, ...]:
    """The regions enabled in the caller's account (ENABLED or ENABLED_BY_DEFAULT), sorted."""
    regions = await caller.pages(
        "account:ListRegions",
        account_api.list_regions,
        "Regions",
        _TOKEN,
        _TOKEN,
        RegionOptStatusContains=ENABLED_STATUSES,
    )
    return tuple(sorted({str(r["RegionName"]) for r in regions}))
