"""RDS operations: DescribeDBProxies, DescribeDBProxyEndpoints, ListTagsForResource.

Listings page with RDS's ``MaxRecords`` (20..100) and opaque ``Marker`` tokens, and name the
missing proxy or endpoint with the faults real RDS returns.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .ops_base import Handler, World, page
from .state import Identity, ProxyRecord
from .wire import ApiError

__all__ = ["HANDLERS"]


def _max_records(params: Mapping[str, Any]) -> int:
    raw = params.get("MaxRecords")
    if raw in (None, ""):
        return 100
    try:
        value = int(raw)
    except (TypeError, ValueError):
        value = -1
    if not 20 <= value <= 100:
        raise ApiError(
            "InvalidParameterValue",
            f"Invalid value {raw} for MaxRecords. Must be between 20 and 100",
        )
    return value


def _proxy_not_found(name: str) -> ApiError:
    return ApiError(
        "DBProxyNotFoundFault",
        f"The specified proxy name {name} doesn't correspond to a proxy owned by your "
        "Amazon Web Services account in the specified Amazon Web Services Region.",
        404,
    )


def _bad_marker() -> ApiError:
    return ApiError("InvalidParameterValue", "The marker is not valid.")


def describe_db_proxies(
    world: World, params: dict[str, Any], identity: Identity, account: str, region: str
) -> dict[str, Any]:
    size = _max_records(params)
    ridx = world.index.region(account, region)
    name = params.get("DBProxyName")
    records: Sequence[ProxyRecord] = ridx.proxies
    keys: Sequence[tuple[Any, ...]] = ridx.proxy_keys
    if name not in (None, ""):
        record = ridx.by_name.get(str(name))
        if record is None:
            raise _proxy_not_found(str(name))
        records, keys = [record], [(record.name,)]
    start, end, marker = page(keys, params.get("Marker"), size, _bad_marker)
    out: dict[str, Any] = {"DBProxies": [r.item for r in records[start:end]]}
    if marker:
        out["Marker"] = marker
    return out


def describe_db_proxy_endpoints(
    world: World, params: dict[str, Any], identity: Identity, account: str, region: str
) -> dict[str, Any]:
    size = _max_records(params)
    ridx = world.index.region(account, region)
    items: Sequence[dict[str, Any]] = ridx.endpoints
    keys: Sequence[tuple[Any, ...]] = ridx.endpoint_keys
    proxy_name = params.get("DBProxyName")
    endpoint_name = params.get("DBProxyEndpointName")
    if proxy_name not in (None, ""):
        if str(proxy_name) not in ridx.by_name:
            raise _proxy_not_found(str(proxy_name))
        pairs = [(k, v) for k, v in zip(keys, items, strict=True) if k[0] == proxy_name]
        keys, items = [k for k, _ in pairs], [v for _, v in pairs]
    if endpoint_name not in (None, ""):
        pairs = [(k, v) for k, v in zip(keys, items, strict=True) if k[2] == endpoint_name]
        if not pairs:
            raise ApiError(
                "DBProxyEndpointNotFoundFault",
                f"The DB proxy endpoint {endpoint_name} doesn't exist.",
                404,
            )
        keys, items = [k for k, _ in pairs], [v for _, v in pairs]
    start, end, marker = page(keys, params.get("Marker"), size, _bad_marker)
    out: dict[str, Any] = {"DBProxyEndpoints": list(items[start:end])}
    if marker:
        out["Marker"] = marker
    return out


def list_tags_for_resource(
    world: World, params: dict[str, Any], identity: Identity, account: str, region: str
) -> dict[str, Any]:
    arn = str(params.get("ResourceName", ""))
    record = world.index.by_arn.get(arn)
    if record is not None and record.account == account and record.region == region:
        return {"TagList": record.tag_list}
    if arn in world.index.region(account, region).endpoint_arns:
        return {"TagList": []}
    raise ApiError(
        "DBProxyNotFoundFault",
        f"The specified proxy ARN {arn} doesn't correspond to a proxy owned by your "
        "Amazon Web Services account in the specified Amazon Web Services Region.",
        404,
    )


HANDLERS: dict[str, Handler] = {
    "DescribeDBProxies": describe_db_proxies,
    "DescribeDBProxyEndpoints": describe_db_proxy_endpoints,
    "ListTagsForResource": list_tags_for_resource,
}
