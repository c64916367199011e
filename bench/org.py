"""The organization shape (`--shape org`): many accounts x every region, most of them empty.

Pure: the fleet, the scanner config and the minimum calls. 1,000 accounts x 17 regions =
17,000 scopes; 5% of the scopes hold 1-8 proxies (every third proxy with a custom endpoint).
The accounts are the ACTIVE members of one AWS Organization, spread round-robin over 3 OUs under
its root, each with the member role and 17 regions enabled (account:ListRegions). The scanner
config is ONE organization matcher (`organization: {id}`, `assume_role_name`, `regions: ["*"]`),
so a cycle lists the organization and each account's regions before it scans (`--shape org`).
`--shape org-explicit` keeps the older config: one `assume_role_arn` matcher per account over
the 17 regions (the same scopes, without the listings).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

from bench.shape import DISCOVERY_GROUP, FIRST_ACCOUNT, REGIONS, ROLE_NAME

ORG_REGIONS = (*REGIONS, "ap-northeast-3")
ORG_ID = "o-benchorg0001"
ROOT_ID = "r-bnch"
OUS = tuple(f"ou-bnch-ou{n:06d}" for n in range(3))
ORG_PAGE_SIZE = 20  # real AWS: ListAccountsForParent answers at most 20 accounts a page
_ENGINES = ("POSTGRESQL", "MYSQL", "SQLSERVER")


@dataclass(frozen=True, kw_only=True)
class OrgShape:
    accounts: int = 1000
    regions: int = 17
    populated: float = 0.05  # fraction of scopes holding proxies
    max_proxies: int = 8
    seed: int = 14

    def __post_init__(self) -> None:
        if self.accounts < 1 or not 1 <= self.regions <= len(ORG_REGIONS):
            raise ValueError(f"accounts >= 1 and 1 <= regions <= {len(ORG_REGIONS)}")
        if not 0 <= self.populated <= 1 or self.max_proxies < 1:
            raise ValueError("populated in 0..1, max_proxies >= 1")

    @property
    def region_names(self) -> tuple[str, ...]:
        return ORG_REGIONS[: self.regions]

    @property
    def scopes(self) -> int:
        return self.accounts * self.regions

    def label(self) -> str:
        return f"org {self.accounts}x{self.regions}, {self.populated:.0%} populated"

    def layout(self) -> dict[tuple[int, str], int]:
        """(account index, region) → proxies, for the populated scopes only (deterministic)."""
        rng = random.Random(self.seed)
        cells = [(a, r) for a in range(self.accounts) for r in self.region_names]
        chosen = rng.sample(cells, round(len(cells) * self.populated))
        return {cell: rng.randint(1, self.max_proxies) for cell in sorted(chosen)}


def account_id(index: int) -> str:
    return f"{FIRST_ACCOUNT + index:012d}"


def role_arn(index: int) -> str:
    return f"arn:aws:iam::{account_id(index)}:role/{ROLE_NAME}"


def ou_of(index: int) -> str:
    return OUS[index % len(OUS)]


def _proxy(n: int) -> dict[str, Any]:
    proxy: dict[str, Any] = {
        "name": f"proxy-{n:02d}",
        "engine_family": _ENGINES[n % len(_ENGINES)],
        "tags": {"env": "org-bench", "index": str(n)},
    }
    if n % 3 == 0:
        proxy["endpoints"] = [{"name": f"proxy-{n:02d}-ro", "target_role": "READ_ONLY"}]
    return proxy


def org_fleet(shape: OrgShape) -> dict[str, Any]:
    """The emulator's fleet: an organization (root, 3 OUs) whose ACTIVE member accounts all
    have the role and the shape's regions enabled; only populated regions hold proxies (the
    emulator answers an empty page for the others, as AWS does)."""
    layout = shape.layout()
    accounts = []
    for a in range(shape.accounts):
        regions = {
            r: {"proxies": [_proxy(n) for n in range(layout[(a, r)])]}
            for r in shape.region_names
            if (a, r) in layout
        }
        accounts.append(
            {
                "id": account_id(a),
                "roles": [{"name": ROLE_NAME}],
                "regions": regions,
                "ou": ou_of(a),
                "enabled_regions": list(shape.region_names),
            }
        )
    organization = {
        "id": ORG_ID,
        "root_id": ROOT_ID,
        "ous": [{"id": ou, "name": f"ou-{n}", "parent": ROOT_ID} for n, ou in enumerate(OUS)],
        "page_size": ORG_PAGE_SIZE,
    }
    return {"caller_account": "000000000000", "organization": organization, "accounts": accounts}


def org_config(
    shape: OrgShape, registry_path: str, *, explicit: bool = False, **aws_client: Any
) -> dict[str, Any]:
    """ONE organization matcher over every enabled region; with `explicit`, one
    `assume_role_arn` matcher per account over the shape's regions instead."""
    matchers: list[dict[str, Any]] = [
        {
            "types": ["rdsproxy"],
            "regions": ["*"],
            "organization": {"id": ORG_ID},
            "assume_role_name": ROLE_NAME,
        }
    ]
    if explicit:
        matchers = [
            {"types": ["rdsproxy"], "regions": list(shape.region_names), "assume_role_arn": role}
            for role in (role_arn(a) for a in range(shape.accounts))
        ]
    config: dict[str, Any] = {
        "discovery_group": DISCOVERY_GROUP,
        "aws": matchers,
        "registry": {"backend": "sqlite", "path": registry_path},
    }
    if aws_client:
        config["aws_client"] = aws_client
    return config


def org_resources(shape: OrgShape) -> int:
    """What a full cycle registers: every proxy and every custom endpoint."""
    return sum(n + len(range(0, n, 3)) for n in shape.layout().values())


def _accounts_in(ou: int, shape: OrgShape) -> int:
    return len(range(ou, shape.accounts, len(OUS)))


def org_listing_calls(shape: OrgShape) -> dict[str, int]:
    """The organization listing, once per cache_ttl: DescribeOrganization, ListRoots, then for
    the root and each OU one ListOrganizationalUnitsForParent page and every
    ListAccountsForParent page (an empty one still takes a call); one ListRegions per account."""
    account_pages = 1 + sum(
        max(1, math.ceil(_accounts_in(n, shape) / ORG_PAGE_SIZE)) for n in range(len(OUS))
    )
    return {
        "DescribeOrganization": 1,
        "ListRoots": 1,
        "ListOrganizationalUnitsForParent": 1 + len(OUS),
        "ListAccountsForParent": account_pages,
        "ListRegions": shape.accounts,
    }


def org_minimum_calls(shape: OrgShape, *, listings: bool = True) -> dict[str, int]:
    """One AssumeRole per account, one DescribeDBProxies page per scope; a populated scope
    (at most 8 proxies, 16 endpoints: one page each) also reads endpoints and tags. With
    `listings` (the organization matcher's first cycle), the listing calls too."""
    populated = len(shape.layout())
    calls = {
        "AssumeRole": shape.accounts,
        "DescribeDBProxies": shape.scopes,
        "DescribeDBProxyEndpoints": populated,
        "GetResources": populated,
    }
    return {**org_listing_calls(shape), **calls} if listings else calls
