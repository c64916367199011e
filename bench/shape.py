"""The benchmark's fleet and the figures that follow from its shape alone.

Pure functions: the synthetic fleet and scanner config, the minimum number of API calls a
complete cycle needs, and the critical-path bound (the slowest scope's chain of dependent calls
times the emulated latency).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from discovery.aws.calls import PAGE_SIZE
from discovery.emulator import Fleet, generate_fleet

REGIONS = (
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "eu-west-1",
    "eu-west-2",
    "eu-central-1",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-south-1",
    "ca-central-1",
    "sa-east-1",
    "eu-north-1",
    "eu-west-3",
)
FIRST_ACCOUNT = 111111111111
ROLE_NAME = "discovery"
DISCOVERY_GROUP = "bench"


@dataclass(frozen=True, kw_only=True)
class Shape:
    """accounts x regions x proxies per region x custom endpoints per proxy."""

    accounts: int
    regions: int
    proxies: int
    endpoints: int

    def __post_init__(self) -> None:
        if min(self.accounts, self.regions, self.proxies) < 1 or self.endpoints < 0:
            raise ValueError("accounts, regions and proxies must be >= 1, endpoints >= 0")
        if self.regions > len(REGIONS):
            raise ValueError(f"at most {len(REGIONS)} regions")

    @property
    def region_names(self) -> tuple[str, ...]:
        return REGIONS[: self.regions]

    @property
    def scopes(self) -> int:
        return self.accounts * self.regions

    @property
    def resources(self) -> int:
        """What a full cycle registers: every proxy and every custom endpoint."""
        return self.scopes * self.proxies * (1 + self.endpoints)

    def label(self) -> str:
        return f"{self.accounts}x{self.regions}x{self.proxies}x{self.endpoints}"


def account_id(index: int) -> str:
    return f"{FIRST_ACCOUNT + index:012d}"


def role_arn(index: int) -> str:
    return f"arn:aws:iam::{account_id(index)}:role/{ROLE_NAME}"


def build_fleet(shape: Shape) -> Fleet:
    return generate_fleet(
        accounts=shape.accounts,
        regions=shape.region_names,
        proxies_per_region=shape.proxies,
        endpoints_per_proxy=shape.endpoints,
        first_account=FIRST_ACCOUNT,
        role_name=ROLE_NAME,
    )


def scanner_config(
    shape: Shape, registry_path: str, *, max_concurrency: int | None = None
) -> dict[str, Any]:
    """One matcher per account (its role), each over every region: accounts x regions scopes.

    Everything else is the product's default, unless `max_concurrency` is given.
    """
    config: dict[str, Any] = {
        "discovery_group": DISCOVERY_GROUP,
        "aws": [
            {"types": ["rdsproxy"], "regions": list(shape.region_names), "assume_role_arn": role}
            for role in (role_arn(a) for a in range(shape.accounts))
        ],
        "registry": {"backend": "sqlite", "path": registry_path},
    }
    if max_concurrency is not None:
        config["aws_client"] = {"max_concurrency": max_concurrency}
    return config


def _pages(items: int) -> int:
    return max(1, math.ceil(items / PAGE_SIZE))  # an empty listing still takes one call


@dataclass(frozen=True, kw_only=True)
class ScopeCalls:
    """The calls one scope needs at the least, by operation."""

    proxies: int  # DescribeDBProxies pages
    endpoints: int  # DescribeDBProxyEndpoints pages (default endpoints are listed too)
    tags: int  # GetResources pages


def scope_calls(shape: Shape) -> ScopeCalls:
    return ScopeCalls(
        proxies=_pages(shape.proxies),
        endpoints=_pages(shape.proxies * (1 + shape.endpoints)),
        tags=_pages(shape.proxies),
    )


def minimum_calls(shape: Shape, *, tags_fallback: bool = False) -> dict[str, int]:
    """The fewest calls a complete cycle can make, by operation.

    The pages of proxies, endpoints and tags of every scope, plus one AssumeRole per role
    (credentials cannot be had for less). With `tags_fallback` (tag:GetResources denied), one
    denied GetResources per scope, then one ListTagsForResource per proxy.
    """
    per = scope_calls(shape)
    calls = {
        "AssumeRole": shape.accounts,
        "DescribeDBProxies": per.proxies * shape.scopes,
        "DescribeDBProxyEndpoints": per.endpoints * shape.scopes,
        "GetResources": per.tags * shape.scopes,
    }
    if tags_fallback:
        calls["GetResources"] = shape.scopes
        calls["ListTagsForResource"] = shape.proxies * shape.scopes
    return calls


def critical_path_calls(shape: Shape, *, tags_fallback: bool = False) -> int:
    """Dependent calls on the slowest scope's chain: AssumeRole, the proxy pages, then the
    longest of the other listings.

    The endpoint and tag listings wait for the proxies (an empty scope makes no other call),
    then run side by side; the pages of one listing depend on each other (each needs the
    previous page's token). In the fallback, the per-proxy tag calls wait for the denied
    GetResources, then go out together.
    """
    per = scope_calls(shape)
    if tags_fallback:
        return 1 + per.proxies + max(per.endpoints, 2)
    return 1 + per.proxies + max(per.endpoints, per.tags)


def throttle_bound_s(
    shape: Shape, *, burst: float, rate: float, tags_fallback: bool = False
) -> float:
    """The least time AWS's token buckets allow: the busiest bucket's calls past the burst,
    at the refill rate. Zero while every (service, account, region) stays within its burst."""
    per = scope_calls(shape)
    rds = per.proxies + per.endpoints + (shape.proxies if tags_fallback else 0)
    tagging = 1 if tags_fallback else per.tags
    excess = max(rds, tagging) - burst
    if excess <= 0:
        return 0.0
    return excess / rate if rate > 0 else float("inf")


def peers_chain_calls(shape: Shape) -> int:
    """Calls one peer fetcher makes one after the other: proxy pages, a tag call per proxy,
    endpoint pages (page caps applied)."""
    per = scope_calls(shape)
    return min(per.proxies, 10) + min(shape.proxies, 10 * PAGE_SIZE) + min(per.endpoints, 10)


def peers_bound_calls(shape: Shape, concurrency: int = 5) -> int:
    """The peers' pattern at zero overhead: AssumeRole, then rounds of `concurrency` fetchers,
    each round one fetcher's chain long. Their wall time cannot be lower than this x latency."""
    return 1 + math.ceil(shape.scopes / concurrency) * peers_chain_calls(shape)


def peers_calls(shape: Shape) -> dict[str, int]:
    """The peers' pattern: proxies and endpoints capped at 10 pages, one tag call per proxy."""
    per = scope_calls(shape)
    proxies_seen = min(shape.proxies, 10 * PAGE_SIZE)
    return {
        "AssumeRole": shape.accounts,
        "DescribeDBProxies": min(per.proxies, 10) * shape.scopes,
        "DescribeDBProxyEndpoints": min(per.endpoints, 10) * shape.scopes,
        "ListTagsForResource": proxies_seen * shape.scopes,
    }
