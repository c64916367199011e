"""Doctor checks 5 and 6: proxies skipped for RequireTLS, and TCP reachability of endpoints.

Both look at what the RDS check found. The endpoints probed are exactly those a cycle would
register: the scope's proxies go through the same assembly and conversion as a cycle's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from discovery.aws.assemble import assemble_proxies
from discovery.core.convert import convert_proxies
from discovery.core.model import Resource
from discovery.ops.checks_rds import ScopeFindings, per_proxy_checks
from discovery.ops.diagnosis import Check, Status, failure
from discovery.ops.probe import Probe, ProbeResult, hosts_file_names, resolves_locally


def check_tls(scopes: Sequence[ScopeFindings]) -> list[Check]:
    return per_proxy_checks(
        scopes,
        check="require-tls",
        failing=lambda proxy: not proxy.get("RequireTLS", False),
        ok_detail=lambda count: f"all {count} proxies require TLS",
        warning=_tls_warning,
    )


def _tls_warning(scope: ScopeFindings, proxy: Mapping[str, Any]) -> Check:
    name = str(proxy.get("DBProxyName", "?"))
    return Check(
        check="require-tls",
        status=Status.WARN,
        subject=f"{name} in {scope.region}",
        detail="RequireTLS is off: the proxy and its endpoints are skipped",
        code="tls-disabled",
        fix=(
            "Teleport only connects over TLS: aws rds modify-db-proxy "
            f"--db-proxy-name {name} --require-tls --region {scope.region}"
        ),
    )


def _resources(scope: ScopeFindings) -> tuple[Resource, ...]:
    """What the cycle would register from the scope's findings, with the scope's own matching."""
    proxies = assemble_proxies(scope.proxies, scope.endpoints, scope.tags)
    return convert_proxies(proxies, scope.scope.matching).resources


async def check_tcp(
    scopes: Sequence[ScopeFindings],
    *,
    probe: Probe,
    enabled: bool,
    timeout: float,
    concurrency: int,
    emulator: str = "",
    local_names: frozenset[str] | None = None,
) -> list[Check]:
    """One check per endpoint a cycle would register. `emulator`: the AWS_ENDPOINT_URL this
    doctor talks to; its endpoints' host names are made up, so only those that resolve here
    without DNS (an IP address, a hosts-file name: `local_names`, default /etc/hosts) are
    probed, and the rest are one skip line that says so."""
    targets: dict[tuple[str, int], str] = {}
    for scope in scopes:
        if not scope.ok:
            continue
        for resource in _resources(scope):
            host_text, _, port_text = resource.uri.rpartition(":")
            if host_text and port_text.isdigit():
                targets.setdefault((host_text, int(port_text)), resource.name)
    if not enabled:
        skipped = Check(
            check="tcp",
            status=Status.SKIP,
            subject=f"{len(targets)} endpoints",
            detail="skipped (--no-tcp)",
        )
        return [skipped]
    if not targets:
        nothing = Check(
            check="tcp",
            status=Status.SKIP,
            subject="endpoints",
            detail="nothing to connect to: no endpoint would be registered",
        )
        return [nothing]
    checks: list[Check] = []
    if emulator:
        names = hosts_file_names() if local_names is None else local_names
        unresolvable = sorted(t for t in targets if not resolves_locally(t[0], names))
        for target in unresolvable:
            del targets[target]
        if unresolvable:
            checks.append(
                Check(
                    check="tcp",
                    status=Status.SKIP,
                    subject=f"{len(unresolvable)} endpoints",
                    detail=(
                        f"skipped: AWS_ENDPOINT_URL is set ({emulator}, an emulator?) and their "
                        f"hosts (e.g. {unresolvable[0][0]}) do not resolve here without DNS"
                    ),
                )
            )
    limit = asyncio.Semaphore(concurrency)

    async def one(host: str, port: int) -> ProbeResult:
        async with limit:
            return await probe(host, port, timeout)

    order = sorted(targets)
    results = await asyncio.gather(*(one(h, p) for h, p in order))
    for (host, port), result in zip(order, results, strict=True):
        subject = f"{host}:{port}"
        name = targets[(host, port)]
        if result.ok:
            checks.append(
                Check(
                    check="tcp",
                    status=Status.OK,
                    subject=subject,
                    detail=f"{name}: connected in {result.seconds * 1000:.0f} ms",
                )
            )
        else:
            checks.append(failure("tcp", subject, f"{name}: {result.message}", result.code))
    return checks
