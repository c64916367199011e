"""Raw RDS answers → `Proxy` values: a pure step, kept apart from the calls that fetch them.

`doctor` and the fault suites assemble what they fetched the same way a cycle does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from discovery.core.model import Proxy, ProxyEndpoint


def assemble_proxies(
    raw_proxies: Sequence[Mapping[str, Any]],
    raw_endpoints: Sequence[Mapping[str, Any]],
    tags: Mapping[str, Mapping[str, str]],
) -> tuple[Proxy, ...]:
    """Raw DescribeDBProxies/Endpoints items and tags by ARN → `Proxy` values, sorted by name."""
    by_proxy: dict[str, list[ProxyEndpoint]] = {}
    for e in raw_endpoints:
        endpoint = ProxyEndpoint(
            name=str(e.get("DBProxyEndpointName", "")),
            proxy_name=str(e.get("DBProxyName", "")),
            endpoint=str(e.get("Endpoint", "")),
            status=str(e.get("Status", "")),
            target_role=str(e.get("TargetRole", "")),
            is_default=bool(e.get("IsDefault", False)),
            vpc_id=str(e.get("VpcId", "")),
        )
        by_proxy.setdefault(endpoint.proxy_name, []).append(endpoint)
    proxies = []
    for p in raw_proxies:
        name = str(p.get("DBProxyName", ""))
        arn = str(p.get("DBProxyArn", ""))
        proxies.append(
            Proxy(
                name=name,
                arn=arn,
                endpoint=str(p.get("Endpoint", "")),
                engine_family=str(p.get("EngineFamily", "")),
                status=str(p.get("Status", "")),
                require_tls=bool(p.get("RequireTLS", False)),
                vpc_id=str(p.get("VpcId", "")),
                tags=dict(tags.get(arn, {})),
                endpoints=tuple(sorted(by_proxy.get(name, ()), key=lambda e: e.name)),
            )
        )
    return tuple(sorted(proxies, key=lambda p: p.name))


def account_from_arns(raw_proxies: Sequence[Mapping[str, Any]]) -> str:
    """The account in the first proxy ARN, "" when there is none."""
    for proxy in raw_proxies:
        parts = str(proxy.get("DBProxyArn", "")).split(":")
        if len(parts) > 4 and parts[4]:
            return parts[4]
    return ""
