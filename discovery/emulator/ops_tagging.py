"""Resource Groups Tagging API: GetResources for RDS proxies (type, tag and ARN filters).

Like the real API, it lists only resources that carry at least one tag; a proxy whose fleet
entry sets `in_tagging_index: false` is left out too (the real index lags behind RDS).
"""

from __future__ import annotations

from typing import Any

from .ops_base import Handler, World, page
from .state import Identity, ProxyRecord
from .wire import ApiError

__all__ = ["HANDLERS"]


def _invalid(msg: str) -> ApiError:
    return ApiError("InvalidParameterException", msg)


def _bad_token() -> ApiError:
    return _invalid("The PaginationToken is not valid")


def get_resources(
    world: World, params: dict[str, Any], identity: Identity, account: str, region: str
) -> dict[str, Any]:
    per_page = params.get("ResourcesPerPage", 50)
    if isinstance(per_page, bool) or not isinstance(per_page, int) or not (1 <= per_page <= 100):
        raise _invalid("ResourcesPerPage must be between 1 and 100")
    types = params.get("ResourceTypeFilters") or []
    if not isinstance(types, list):
        raise _invalid("ResourceTypeFilters must be a list")
    records: list[ProxyRecord] = []
    if not types or any(t in ("rds", "rds:db-proxy") for t in types):
        records = [
            r
            for r in world.index.region(account, region).proxies
            if r.tag_list and r.in_tagging_index
        ]
    arns = params.get("ResourceARNList")
    if arns:
        wanted = set(arns)
        records = [r for r in records if r.arn in wanted]
    tag_filters = params.get("TagFilters") or []
    if not isinstance(tag_filters, list):
        raise _invalid("TagFilters must be a list")
    for tf in tag_filters:
        if not isinstance(tf, dict) or "Key" not in tf:
            raise _invalid("each TagFilter needs a Key")
        key, values = tf["Key"], tf.get("Values") or []
        records = [r for r in records if key in r.tags and (not values or r.tags[key] in values)]
    keys = [(r.name,) for r in records]
    start, end, token = page(keys, params.get("PaginationToken"), per_page, _bad_token)
    return {
        "ResourceTagMappingList": [
            {"ResourceARN": r.arn, "Tags": r.tag_list} for r in records[start:end]
        ],
        "PaginationToken": token or "",
    }


HANDLERS: dict[str, Handler] = {"GetResources": get_resources}
