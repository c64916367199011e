"""The RDS Proxy calls of one account-region, each written once.

A cycle's fetch (`rds_proxy.AWSSource`) and doctor's checks (`ops.checks_rds`) make the same
calls the same way: every page, through the one call wrapper and its guards. Each raises
`FetchError` (a denial included: the caller decides whether that means "fall back").
"""

from __future__ import annotations

from typing import Any

from discovery.aws.calls import PAGE_SIZE, Caller, ErrorKind, FetchError

Tags = dict[str, str]


async def describe_proxies(caller: Caller, rds: Any) -> list[dict[str, Any]]:
    return await caller.pages(
        "rds:DescribeDBProxies",
        rds.describe_db_proxies,
        "DBProxies",
        "Marker",
        "Marker",
        MaxRecords=PAGE_SIZE,
    )


async def describe_endpoints(caller: Caller, rds: Any) -> list[dict[str, Any]]:
    """Every endpoint of every proxy: one sweep, not one call per proxy."""
    return await caller.pages(
        "rds:DescribeDBProxyEndpoints",
        rds.describe_db_proxy_endpoints,
        "DBProxyEndpoints",
        "Marker",
        "Marker",
        MaxRecords=PAGE_SIZE,
    )


async def tags_by_arn(caller: Caller, tagging: Any) -> dict[str, Tags]:
    """Every tagged proxy's tags (tag:GetResources, 100 per page), by ARN."""
    mappings = await caller.pages(
        "tag:GetResources",
        tagging.get_resources,
        "ResourceTagMappingList",
        "PaginationToken",
        "PaginationToken",
        ResourceTypeFilters=["rds:db-proxy"],
        ResourcesPerPage=PAGE_SIZE,
    )
    return {
        str(m["ResourceARN"]): {str(t["Key"]): str(t.get("Value", "")) for t in m["Tags"]}
        for m in mappings
    }


async def tags_of(caller: Caller, rds: Any, arn: str) -> Tags:
    """One proxy's tags (rds:ListTagsForResource), the fallback when GetResources is denied."""
    action = "rds:ListTagsForResource"
    response = await caller.call(action, rds.list_tags_for_resource, ResourceName=arn)
    if "TagList" not in response:
        # As `Caller.pages` does: a truncated body is never read as "no tags".
        raise FetchError(
            f"{action}: malformed response (no TagList); retry later",
            action=action,
            kind=ErrorKind.MALFORMED,
        )
    return {str(t["Key"]): str(t.get("Value", "")) for t in response["TagList"]}
