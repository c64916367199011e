"""Serialized answers, cached per fleet: moto's XML serializer costs ~10 ms per 100 items.

Benchmarks list thousands of proxies every cycle; without the cache the emulator, not the code
under test, would set the pace. Only the listing operations are cached, keyed by the
parameters their answer depends on; the cache is bounded by the total size of the bodies.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from .wire import Reply

__all__ = ["CACHE_BYTES", "ReplyCache", "cache_key"]

CACHE_BYTES = 512 * 1024**2


def cache_key(operation: str, params: Mapping[str, Any]) -> tuple[Any, ...] | None:
    """The parameters an answer depends on, normalised (None: not cacheable)."""

    def p(name: str, default: Any = "") -> Any:
        value = params.get(name)
        return default if value in (None, "") else value

    if operation == "DescribeDBProxies":
        return (operation, p("DBProxyName"), p("Marker"), str(p("MaxRecords", 100)))
    if operation == "DescribeDBProxyEndpoints":
        return (
            operation,
            p("DBProxyName"),
            p("DBProxyEndpointName"),
            p("Marker"),
            str(p("MaxRecords", 100)),
        )
    if operation == "ListTagsForResource":
        return (operation, p("ResourceName"))
    if operation == "GetResources":
        parts = {
            k: params.get(k)
            for k in ("ResourceTypeFilters", "TagFilters", "ResourceARNList")
            if params.get(k)
        }
        return (
            operation,
            p("PaginationToken"),
            json.dumps(p("ResourcesPerPage", 50)),
            json.dumps(parts, sort_keys=True, default=str),
        )
    return None


class ReplyCache:
    """A least-recently-used map of replies, bounded by the bytes of their bodies."""

    def __init__(self, max_bytes: int = CACHE_BYTES) -> None:
        self._max_bytes = max_bytes
        self._replies: OrderedDict[Any, Reply] = OrderedDict()
        self._bytes = 0

    def get(self, key: Any) -> Reply | None:
        reply = self._replies.get(key)
        if reply is not None:
            self._replies.move_to_end(key)
        return reply

    def put(self, key: Any, reply: Reply) -> None:
        self._replies[key] = reply
        self._bytes += len(reply.body)
        while self._bytes > self._max_bytes and self._replies:
            _, old = self._replies.popitem(last=False)
            self._bytes -= len(old.body)

    def clear(self) -> None:
        self._replies.clear()
        self._bytes = 0
