"""The peers' call pattern, as a baseline scanner: how Teleport's Discovery Service fetches.

One fetcher per scope (matcher x role x region), at most 5 fetchers at a time; inside a fetcher
every call waits for the one before it: DescribeDBProxies (at most 10 pages), then one
ListTagsForResource per proxy, then DescribeDBProxyEndpoints (at most 10 pages). Assumed-role
credentials are cached per role, as the peers do.

It only fetches: no conversion, no plan, no registry. Its wall time is therefore a lower bound
for a peer's cycle, which makes the ratio against ours conservative.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession, get_session

from discovery.core.config import Config
from discovery.core.model import Scope
from discovery.core.scopes import expand_scopes

MAX_PAGES = 10
PAGE_SIZE = 100


async def scan_like_peers(config: Config, *, concurrency: int = 5) -> dict[str, Any]:
    """Fetch every scope the peers' way; counts of what was fetched and of calls made."""
    boto_config = AioConfig(retries={"mode": "standard"}, max_pool_connections=concurrency)
    base = get_session()
    limit = asyncio.Semaphore(concurrency)
    calls: dict[str, int] = {}
    sessions: dict[tuple[str, str], asyncio.Task[AioSession]] = {}

    async with contextlib.AsyncExitStack() as stack:
        sts = await stack.enter_async_context(
            base.create_client("sts", region_name="us-east-1", config=boto_config)
        )

        async def assume(role: str, external_id: str) -> AioSession:
            params = {"RoleArn": role, "RoleSessionName": "peers-baseline"}
            if external_id:
                params["ExternalId"] = external_id
            calls["AssumeRole"] = calls.get("AssumeRole", 0) + 1
            creds = (await sts.assume_role(**params))["Credentials"]
            session = get_session()
            session.set_credentials(
                creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"]
            )
            return session

        async def session_for(scope: Scope) -> AioSession:
            if not scope.assume_role_arn:
                return base
            key = (scope.assume_role_arn, scope.external_id)
            if key not in sessions:
                sessions[key] = asyncio.ensure_future(assume(*key))
            return await sessions[key]

        async def pages(method: Any, result_key: str, operation: str) -> list[dict[str, Any]]:
            items: list[dict[str, Any]] = []
            marker = ""
            for _ in range(MAX_PAGES):  # the peers' page cap: what lies beyond is dropped
                params: dict[str, Any] = {"MaxRecords": PAGE_SIZE}
                if marker:
                    params["Marker"] = marker
                calls[operation] = calls.get(operation, 0) + 1
                response = await method(**params)
                items.extend(response.get(result_key, []))
                marker = response.get("Marker", "")
                if not marker:
                    break
            return items

        async def fetcher(scope: Scope) -> tuple[int, int]:
            async with limit:
                session = await session_for(scope)
                async with session.create_client(
                    "rds", region_name=scope.region, config=boto_config
                ) as rds:
                    proxies = await pages(rds.describe_db_proxies, "DBProxies", "DescribeDBProxies")
                    for proxy in proxies:
                        calls["ListTagsForResource"] = calls.get("ListTagsForResource", 0) + 1
                        await rds.list_tags_for_resource(ResourceName=proxy["DBProxyArn"])
                    endpoints = await pages(
                        rds.describe_db_proxy_endpoints,
                        "DBProxyEndpoints",
                        "DescribeDBProxyEndpoints",
                    )
            return len(proxies), sum(1 for e in endpoints if not e.get("IsDefault"))

        fetched = await asyncio.gather(*(fetcher(s) for s in expand_scopes(config)))
    return {
        "scopes": len(fetched),
        "failed_scopes": 0,
        "resources": sum(p + e for p, e in fetched),
        "client_calls": dict(sorted(calls.items())),
    }
