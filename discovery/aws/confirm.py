"""The targeted reads that confirm a delete or a label removal (see `core.confirm`).

Each read goes through the one call wrapper (its concurrency bound, retries and error table)
with the scope's own credentials and region. A read never raises: NotFound is the answer a
gone resource gives, and any other failure (denied, throttled, malformed) is an `Answer` with
the one-line error, so the plan withholds that change alone instead of failing the scope.
"""

from __future__ import annotations

from typing import Any

from discovery.aws.calls import Caller, ErrorKind, FetchError
from discovery.aws.rds_calls import tags_of
from discovery.core.confirm import Answer, Check


async def confirm_check(caller: Caller, rds: Any, check: Check) -> Answer:
    """Ask `check` with the RDS client of its scope."""
    try:
        if check.kind == "tags":
            return Answer(tags=await tags_of(caller, rds, check.arn))
        if check.kind == "endpoint":
            return await _endpoint_exists(caller, rds, check)
        return await _proxy_exists(caller, rds, check)
    except FetchError as exc:
        if exc.kind is ErrorKind.NOT_FOUND and check.kind != "tags":
            return Answer(exists=False)
        return Answer(error=str(exc))


async def _proxy_exists(caller: Caller, rds: Any, check: Check) -> Answer:
    action = "rds:DescribeDBProxies"
    response = await caller.call(action, rds.describe_db_proxies, DBProxyName=check.proxy_name)
    found = response.get("DBProxies")
    if not found:
        # Neither the proxy nor DBProxyNotFoundFault: never read as "gone".
        return Answer(error=f"{action}: malformed response (no DBProxies); retry later")
    suffix = f":db-proxy:{check.resource_id}"
    # A proxy of that name with another resource id was created since: ours is gone.
    same = any(str(p.get("DBProxyArn", "")).endswith(suffix) for p in found)
    return Answer(exists=same or not check.resource_id)


async def _endpoint_exists(caller: Caller, rds: Any, check: Check) -> Answer:
    action = "rds:DescribeDBProxyEndpoints"
    response = await caller.call(
        action,
        rds.describe_db_proxy_endpoints,
        DBProxyName=check.proxy_name,
        DBProxyEndpointName=check.endpoint_name,
    )
    if not response.get("DBProxyEndpoints"):
        return Answer(error=f"{action}: malformed response (no DBProxyEndpoints); retry later")
    return Answer(exists=True)
