"""`discovery doctor`: check, in order, everything a cycle needs, and say how to fix what fails.

1. base credentials are found (and from which source) and work (sts:GetCallerIdentity);
2. each configured role can be assumed (trust policy, external id);
3. each scope's region answers rds:DescribeDBProxies and rds:DescribeDBProxyEndpoints;
4. tags are readable (tag:GetResources, or the rds:ListTagsForResource fallback);
5. proxies that are skipped because RequireTLS is off;
6. proxies that do not require IAM authentication (the Teleport Database Service's tokens);
7. each endpoint that would be registered is reachable over TCP (like `nc -zv`);
and first, with a Teleport registry: tctl, its identity, and `tctl get db` (`checks_teleport`).

This module runs the checks (`checks_identity`, `checks_rds`, `checks_iam_auth`,
`checks_endpoints`) and hands
each `Check` on as soon as it is known; the CLI prints one line per check and exits non-zero
when any failed. The AWS calls go through the same layer as a cycle's (`discovery.aws`): same
client cache, paging guards, error table and `aws_client` settings.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from aiobotocore.session import AioSession

from discovery import wiring
from discovery.aws.clients import AWSSettings
from discovery.core.config import Config
from discovery.ops.checks_endpoints import check_tcp, check_tls
from discovery.ops.checks_iam_auth import check_iam_auth
from discovery.ops.checks_identity import check_credentials, check_roles
from discovery.ops.checks_organization import check_organizations
from discovery.ops.checks_rds import check_scopes
from discovery.ops.checks_teleport import check_teleport
from discovery.ops.diagnosis import Check, Status
from discovery.ops.probe import Probe, tcp_probe


@dataclass(frozen=True, kw_only=True)
class DoctorSettings:
    tcp: bool = True
    tcp_timeout: float = 3.0
    tcp_concurrency: int = 32
    # Overrides of the config's `aws_client` settings; None keeps the config's value, so
    # doctor calls AWS the way a cycle does.
    max_attempts: int | None = None
    connect_timeout: float | None = None
    read_timeout: float | None = None
    role_session_name: str = "rdsproxy-discovery-doctor"
    # The config's path: for the `discovery print-iam --config ...` hints, and the folder a
    # Teleport registry's relative tctl/identity paths are taken against.
    config_hint: str = "discovery.yaml"
    # AWS_ENDPOINT_URL when set (the CLI reads it): endpoints of an emulator are not probed
    # unless their host resolves here without DNS (see `checks_endpoints.check_tcp`).
    endpoint_url: str = ""

    def aws_settings(self, config: Config) -> AWSSettings:
        settings = AWSSettings.from_config(config.aws_client)
        return replace(
            settings,
            max_attempts=settings.max_attempts if self.max_attempts is None else self.max_attempts,
            connect_timeout=(
                settings.connect_timeout if self.connect_timeout is None else self.connect_timeout
            ),
            read_timeout=settings.read_timeout if self.read_timeout is None else self.read_timeout,
            role_session_name=self.role_session_name,
        )


async def run_doctor(
    config: Config,
    *,
    settings: DoctorSettings | None = None,
    probe: Probe = tcp_probe,
    session: AioSession | None = None,
    on_check: Callable[[Check], None] | None = None,
) -> tuple[Check, ...]:
    """Every check, in order; `on_check` sees each one as soon as it is known."""
    settings = settings or DoctorSettings()
    checks: list[Check] = []

    def emit(found: Iterable[Check]) -> None:
        for check in found:
            checks.append(check)
            if on_check is not None:
                on_check(check)

    emit(await check_teleport(config, Path(settings.config_hint)))
    async with wiring.open_clients(settings.aws_settings(config), session=session) as aws:
        credentials, base = await check_credentials(aws)
        emit([credentials])
        if base is None:
            skipped = Check(
                check="aws",
                status=Status.SKIP,
                subject="remaining checks",
                detail="skipped: they all need working base credentials",
            )
            emit([skipped])
            return tuple(checks)
        role_checks, identities = await check_roles(
            aws, config, base, config_hint=settings.config_hint
        )
        emit(role_checks)
        emit(await check_organizations(aws, config))
        scope_checks, scopes = await check_scopes(
            aws, config, identities, config_hint=settings.config_hint
        )
        emit(scope_checks)
        emit(check_tls(scopes))
        emit(check_iam_auth(scopes))
        emit(
            await check_tcp(
                scopes,
                probe=probe,
                enabled=settings.tcp,
                timeout=settings.tcp_timeout,
                concurrency=settings.tcp_concurrency,
                emulator=settings.endpoint_url,
            )
        )
    return tuple(checks)
