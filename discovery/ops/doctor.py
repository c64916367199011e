"""`discovery doctor`: check, in order, everything a cycle needs, and say how to fix what fails.

1. base credentials are found (and from which source) and work (sts:GetCallerIdentity);
2. each configured role can be assumed (trust policy, external id);
3. each scope's region answers rds:DescribeDBProxies and rds:DescribeDBProxyEndpoints;
4. tags are readable (tag:GetResources, or the rds:ListTagsForResource fallback);
5. proxies that are skipped because RequireTLS is off;
6. each endpoint that would be registered is reachable over TCP (like `nc -zv`).

Each check is one value (`Check`) with a status and, when it did not pass, a code and a concrete
fix; the CLI prints one line per check and exits non-zero when any failed. Every code is listed
in `FIXES` and documented in the README's troubleshooting section.

The calls are made here rather than through `AWSSource` on purpose: a cycle fails a scope as a
whole, while a diagnosis needs to know which single call failed and why.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession, get_session
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

from discovery.aws.source import DENIED_CODES, THROTTLE_CODES, assemble_proxies
from discovery.core.config import Config
from discovery.core.convert import convert_proxies
from discovery.core.model import Matching, Resource

PAGE_SIZE = 100
ROLE_SESSION_NAME = "rdsproxy-discovery-doctor"
INVALID_CREDENTIAL_CODES = frozenset(
    {
        "InvalidClientTokenId",
        "ExpiredToken",
        "ExpiredTokenException",
        "SignatureDoesNotMatch",
        "UnrecognizedClientException",
    }
)


class Status(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "FAIL"
    SKIP = "skip"


# Every code a check can carry, with the general fix (a failing check adds the specifics).
FIXES: Mapping[str, str] = {
    "no-credentials": (
        "give the service AWS credentials: environment variables (AWS_ACCESS_KEY_ID/"
        "AWS_SECRET_ACCESS_KEY), AWS_PROFILE with a shared credentials file, an EC2 instance "
        "profile, or IRSA on EKS (ServiceAccount annotation eks.amazonaws.com/role-arn; on EKS "
        "with IMDSv2 also check the instance's HttpPutResponseHopLimit is at least 2)"
    ),
    "credentials-invalid": (
        "the credentials were rejected (expired, revoked or mistyped): refresh them, or check "
        "the clock of this host"
    ),
    "sts-unreachable": (
        "STS could not be reached: check network access to sts.<region>.amazonaws.com (or the "
        "VPC endpoint / proxy in use) and AWS_ENDPOINT_URL"
    ),
    "assume-role-denied": (
        "the role's trust policy must name this identity as Principal (and, when external_id is "
        "set, require exactly that sts:ExternalId), and this identity needs sts:AssumeRole on "
        "the role; `discovery print-iam --principal <this identity>` prints both policies"
    ),
    "assume-role-error": "check the role ARN in assume_role_arn and the STS error above",
    "rds-denied": (
        "grant rds:DescribeDBProxies and rds:DescribeDBProxyEndpoints in this region to the "
        "identity named (see `discovery print-iam`); check SCPs and permission boundaries too"
    ),
    "region-unreachable": (
        "check the region name, that the region is enabled for the account (opt-in regions), "
        "and network access to rds.<region>.amazonaws.com"
    ),
    "rds-error": "the RDS API answered with an error; retry, and check the error above",
    "throttled": (
        "AWS throttled the calls even after retries: scan less often (poll_interval) or run "
        "fewer scans against this account at the same time"
    ),
    "tags-fallback": (
        "tag:GetResources is denied, so every cycle makes one rds:ListTagsForResource call per "
        "proxy: grant tag:GetResources (one call per 100 proxies)"
    ),
    "tags-denied": (
        "grant tag:GetResources (preferred) or rds:ListTagsForResource in this region; without "
        "tags every scope of this role fails and is left frozen"
    ),
    "tls-disabled": (
        "Teleport only connects to RDS Proxies over TLS, so this proxy is skipped: turn on "
        "RequireTLS (aws rds modify-db-proxy --db-proxy-name NAME --require-tls)"
    ),
    "tcp-timeout": (
        "no answer: allow inbound TCP on the port from this host in the proxy's security group, "
        "and check routing (same VPC, peering, transit gateway) and network ACLs"
    ),
    "tcp-refused": "the host answered but nothing listens on that port: check the port and host",
    "tcp-dns": (
        "the name does not resolve here: RDS Proxy endpoints resolve only inside their VPC (or "
        "over peering with DNS resolution enabled); run doctor where the database agent runs"
    ),
    "tcp-error": "the connection failed: see the error above",
}


@dataclass(frozen=True, kw_only=True)
class Check:
    """One line of the diagnosis."""

    check: str  # credentials | assume-role | rds | tags | require-tls | tcp
    status: Status
    subject: str
    detail: str
    code: str = ""
    fix: str = ""

    def to_dict(self) -> dict[str, str]:
        return {
            "check": self.check,
            "status": str(self.status),
            "subject": self.subject,
            "detail": self.detail,
            "code": self.code,
            "fix": self.fix,
        }


@dataclass(frozen=True, kw_only=True)
class ProbeResult:
    ok: bool
    code: str = ""
    message: str = ""
    seconds: float = 0.0


Probe = Callable[[str, int, float], Awaitable[ProbeResult]]


async def tcp_probe(host: str, port: int, timeout: float) -> ProbeResult:
    """Open a TCP connection and close it again, like `nc -zv host port`."""
    started = time.monotonic()
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except TimeoutError:
        return ProbeResult(ok=False, code="tcp-timeout", message=f"timed out after {timeout:g}s")
    except socket.gaierror as exc:
        return ProbeResult(
            ok=False, code="tcp-dns", message=f"cannot resolve {host}: {exc.strerror or exc}"
        )
    except ConnectionRefusedError:
        return ProbeResult(ok=False, code="tcp-refused", message="connection refused")
    except OSError as exc:
        return ProbeResult(ok=False, code="tcp-error", message=exc.strerror or str(exc))
    elapsed = time.monotonic() - started
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return ProbeResult(ok=True, seconds=elapsed)


@dataclass(frozen=True, kw_only=True)
class DoctorSettings:
    tcp: bool = True
    tcp_timeout: float = 3.0
    tcp_concurrency: int = 32
    max_attempts: int = 3
    connect_timeout: float = 5.0
    read_timeout: float = 15.0
    config_hint: str = "discovery.yaml"  # for the `discovery print-iam --config ...` hints


_CREDENTIAL_SOURCES = {
    "env": "environment variables (AWS_ACCESS_KEY_ID)",
    "shared-credentials-file": "shared credentials file",
    "config-file": "shared config file",
    "assume-role": "profile with role_arn (shared config)",
    "assume-role-with-web-identity": "web identity token (IRSA: AWS_ROLE_ARN + token file)",
    "iam-role": "EC2 instance metadata (instance profile)",
    "container-role": "container credentials (ECS task role / EKS Pod Identity)",
    "sso": "AWS IAM Identity Center (SSO) profile",
    "custom-process": "credential_process",
    "explicit": "explicit keys",
}


def credential_source(method: str) -> str:
    profile = os.environ.get("AWS_PROFILE")
    name = _CREDENTIAL_SOURCES.get(method, method)
    if profile and method in {"shared-credentials-file", "config-file", "assume-role", "sso"}:
        name += f", profile {profile}"
    return name


@dataclass
class _Identity:
    """Credentials to make calls with: the base chain ("" role) or one assumed role."""

    role_arn: str
    external_id: str
    arn: str = ""
    credentials: dict[str, str] | None = None  # None: the base credential chain
    ok: bool = True


@dataclass
class _ScopeState:
    matcher_index: int
    region: str
    identity: _Identity
    proxies: list[dict[str, Any]] = field(default_factory=list)
    endpoints: list[dict[str, Any]] = field(default_factory=list)
    tags: dict[str, dict[str, str]] = field(default_factory=dict)
    tags_known: bool = False
    ok: bool = False


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", "Unknown"))


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code', 'Unknown')}: {error.get('Message', '')}".rstrip(": ")
    return f"{type(exc).__name__}: {exc}"


class Doctor:
    """Runs the checks in order; `on_check` sees each one as soon as it is known."""

    def __init__(
        self,
        config: Config,
        *,
        settings: DoctorSettings | None = None,
        probe: Probe = tcp_probe,
        session: AioSession | None = None,
        on_check: Callable[[Check], None] | None = None,
    ) -> None:
        self.config = config
        self.settings = settings or DoctorSettings()
        self.probe = probe
        self.session = session or get_session()
        self.on_check = on_check
        self.checks: list[Check] = []
        self._stack = contextlib.AsyncExitStack()
        self._clients: dict[tuple[str, str, str, str], Any] = {}
        self._aio_config = AioConfig(
            retries={"mode": "standard", "total_max_attempts": self.settings.max_attempts},
            connect_timeout=self.settings.connect_timeout,
            read_timeout=self.settings.read_timeout,
        )

    def _emit(self, check: Check) -> None:
        self.checks.append(check)
        if self.on_check is not None:
            self.on_check(check)

    def _fail(self, check: str, subject: str, detail: str, code: str, fix: str = "") -> None:
        self._emit(self._failure(check, subject, detail, code, fix))

    async def run(self) -> tuple[Check, ...]:
        async with self._stack:
            base = await self._check_credentials()
            if base is None:
                self._emit(
                    Check(
                        check="aws",
                        status=Status.SKIP,
                        subject="remaining checks",
                        detail="skipped: they all need working base credentials",
                    )
                )
                return tuple(self.checks)
            identities = await self._check_roles(base)
            scopes = await self._check_scopes(identities)
            self._check_tls(scopes)
            await self._check_tcp(scopes)
        return tuple(self.checks)

    # --- clients ----------------------------------------------------------------------------

    def _home_region(self) -> str:
        return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"

    async def _client(self, identity: _Identity, service: str, region: str) -> Any:
        key = (identity.role_arn, identity.external_id, service, region)
        client = self._clients.get(key)
        if client is None:
            kwargs: dict[str, Any] = {}
            if identity.credentials is not None:
                kwargs = {
                    "aws_access_key_id": identity.credentials["AccessKeyId"],
                    "aws_secret_access_key": identity.credentials["SecretAccessKey"],
                    "aws_session_token": identity.credentials["SessionToken"],
                }
            creator = self.session.create_client(
                service, region_name=region, config=self._aio_config, **kwargs
            )
            client = await self._stack.enter_async_context(creator)
            self._clients[key] = client
        return client

    async def _pages(
        self, method: Callable[..., Awaitable[Any]], key: str, **params: Any
    ) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        marker = ""
        while True:
            call = dict(params)
            if marker:
                call["Marker"] = marker
            response = await method(**call)
            items.extend(response.get(key, []))
            marker = str(response.get("Marker") or "")
            if not marker:
                return items

    # --- 1. credentials ---------------------------------------------------------------------

    async def _check_credentials(self) -> _Identity | None:
        try:
            credentials = await self.session.get_credentials()
        except BotoCoreError as exc:
            self._fail("credentials", "base", _error_text(exc), "no-credentials")
            return None
        if credentials is None:
            self._fail("credentials", "base", "no AWS credentials found", "no-credentials")
            return None
        source = credential_source(str(getattr(credentials, "method", "") or "unknown"))
        region = self._home_region()
        try:
            sts = await self._client(_Identity(role_arn="", external_id=""), "sts", region)
            caller = await sts.get_caller_identity()
        except ClientError as exc:
            code = _error_code(exc)
            kind = "credentials-invalid" if code in INVALID_CREDENTIAL_CODES else "sts-unreachable"
            self._fail("credentials", source, f"sts:GetCallerIdentity: {_error_text(exc)}", kind)
            return None
        except (BotoCoreError, OSError) as exc:
            kind = "no-credentials" if "credential" in str(exc).lower() else "sts-unreachable"
            self._fail("credentials", source, f"sts:GetCallerIdentity: {_error_text(exc)}", kind)
            return None
        arn = str(caller.get("Arn", ""))
        self._emit(
            Check(
                check="credentials",
                status=Status.OK,
                subject=source,
                detail=f"{arn} (account {caller.get('Account', '?')})",
            )
        )
        return _Identity(role_arn="", external_id="", arn=arn)

    # --- 2. assume roles --------------------------------------------------------------------

    async def _check_roles(self, base: _Identity) -> dict[tuple[str, str], _Identity]:
        wanted: dict[tuple[str, str], int] = {}
        for index, matcher in enumerate(self.config.aws):
            key = (matcher.assume_role_arn, matcher.external_id)
            wanted.setdefault(key, index)
        identities: dict[tuple[str, str], _Identity] = {("", ""): base}
        roles = [(key, index) for key, index in wanted.items() if key[0]]
        results = await asyncio.gather(*(self._assume(base, *key) for key, _ in roles))
        for (key, index), (identity, error) in zip(roles, results, strict=True):
            identities[key] = identity
            role_arn, external_id = key
            subject = role_arn + (" (with external id)" if external_id else "")
            if error is None:
                self._emit(
                    Check(
                        check="assume-role",
                        status=Status.OK,
                        subject=subject,
                        detail=f"assumed as {identity.arn}",
                    )
                )
                continue
            if isinstance(error, ClientError) and _error_code(error) in DENIED_CODES:
                if external_id:
                    extra = (
                        f"check that aws[{index}].external_id equals the sts:ExternalId "
                        "condition of the role's trust policy"
                    )
                else:
                    extra = (
                        f"if the role's trust policy requires sts:ExternalId, set "
                        f"aws[{index}].external_id"
                    )
                self._fail(
                    "assume-role",
                    subject,
                    _error_text(error),
                    "assume-role-denied",
                    fix=(
                        f"the trust policy of {role_arn} must allow {base.arn} "
                        f"(Principal) to call sts:AssumeRole; {extra}; and {base.arn} needs "
                        f"sts:AssumeRole on {role_arn} in its own policy — "
                        f"`discovery print-iam --config {self.settings.config_hint} "
                        f"--principal {base.arn}` prints both"
                    ),
                )
            else:
                self._fail("assume-role", subject, _error_text(error), "assume-role-error")
        return identities

    async def _assume(
        self, base: _Identity, role_arn: str, external_id: str
    ) -> tuple[_Identity, BaseException | None]:
        identity = _Identity(role_arn=role_arn, external_id=external_id, ok=False)
        params: dict[str, Any] = {"RoleArn": role_arn, "RoleSessionName": ROLE_SESSION_NAME}
        if external_id:
            params["ExternalId"] = external_id
        try:
            sts = await self._client(base, "sts", self._home_region())
            response = await sts.assume_role(**params)
        except (ClientError, BotoCoreError, OSError) as exc:
            return identity, exc
        identity.credentials = dict(response["Credentials"])
        identity.arn = str(response.get("AssumedRoleUser", {}).get("Arn", role_arn))
        identity.ok = True
        return identity, None

    # --- 3 + 4. each scope: proxies, endpoints, tags ----------------------------------------

    async def _check_scopes(
        self, identities: Mapping[tuple[str, str], _Identity]
    ) -> list[_ScopeState]:
        scopes: list[_ScopeState] = []
        seen: set[tuple[str, str, str]] = set()
        for index, matcher in enumerate(self.config.aws):
            identity = identities[(matcher.assume_role_arn, matcher.external_id)]
            for region in matcher.regions:
                key = (matcher.assume_role_arn, matcher.external_id, region)
                if key in seen:
                    continue
                seen.add(key)
                scopes.append(_ScopeState(matcher_index=index, region=region, identity=identity))
        checks = await asyncio.gather(*(self._scope(s) for s in scopes))
        for rds_check, tags_check in checks:
            self._emit(rds_check)
            if tags_check is not None:
                self._emit(tags_check)
        return scopes

    def _scope_subject(self, scope: _ScopeState) -> str:
        who = scope.identity.role_arn or "base credentials"
        return f"{scope.region} as {who}"

    async def _scope(self, scope: _ScopeState) -> tuple[Check, Check | None]:
        subject = self._scope_subject(scope)
        if not scope.identity.ok:
            return (
                Check(
                    check="rds",
                    status=Status.SKIP,
                    subject=subject,
                    detail="skipped: the role could not be assumed",
                ),
                None,
            )
        try:
            rds = await self._client(scope.identity, "rds", scope.region)
            scope.proxies = await self._pages(
                rds.describe_db_proxies, "DBProxies", MaxRecords=PAGE_SIZE
            )
            scope.endpoints = await self._pages(
                rds.describe_db_proxy_endpoints, "DBProxyEndpoints", MaxRecords=PAGE_SIZE
            )
        except ClientError as exc:
            return self._scope_failure(scope, subject, exc), None
        except EndpointConnectionError as exc:
            return (
                self._failure("rds", subject, _error_text(exc), "region-unreachable"),
                None,
            )
        except (BotoCoreError, OSError) as exc:
            return self._failure("rds", subject, _error_text(exc), "rds-error"), None
        scope.ok = True
        custom = sum(1 for e in scope.endpoints if not e.get("IsDefault"))
        rds_check = Check(
            check="rds",
            status=Status.OK,
            subject=subject,
            detail=(
                f"rds:DescribeDBProxies and DescribeDBProxyEndpoints answer: "
                f"{len(scope.proxies)} proxies, {custom} custom endpoints"
            ),
        )
        return rds_check, await self._tags(scope, rds, subject)

    def _failure(self, check: str, subject: str, detail: str, code: str, fix: str = "") -> Check:
        return Check(
            check=check,
            status=Status.FAIL,
            subject=subject,
            detail=detail,
            code=code,
            fix=fix or FIXES[code],
        )

    def _scope_failure(self, scope: _ScopeState, subject: str, exc: ClientError) -> Check:
        code = _error_code(exc)
        who = scope.identity.arn or scope.identity.role_arn or "the base identity"
        action = str(exc.operation_name or "DescribeDBProxies")
        if code in DENIED_CODES:
            return self._failure(
                "rds",
                subject,
                _error_text(exc),
                "rds-denied",
                fix=(
                    f"grant rds:DescribeDBProxies and rds:DescribeDBProxyEndpoints in "
                    f"{scope.region} to {who} (rds:{action} was denied); "
                    f"`discovery print-iam --config {self.settings.config_hint}` prints the "
                    "policy; check SCPs and permission boundaries too"
                ),
            )
        if code in THROTTLE_CODES:
            return self._failure("rds", subject, _error_text(exc), "throttled")
        if code in INVALID_CREDENTIAL_CODES:
            return self._failure("rds", subject, _error_text(exc), "credentials-invalid")
        return self._failure("rds", subject, _error_text(exc), "rds-error")

    async def _tags(self, scope: _ScopeState, rds: Any, subject: str) -> Check:
        try:
            tagging = await self._client(scope.identity, "resourcegroupstaggingapi", scope.region)
            response = await tagging.get_resources(
                ResourceTypeFilters=["rds:db-proxy"], ResourcesPerPage=PAGE_SIZE
            )
            mappings = list(response.get("ResourceTagMappingList", []))
            token = str(response.get("PaginationToken") or "")
            while token:
                response = await tagging.get_resources(
                    ResourceTypeFilters=["rds:db-proxy"],
                    ResourcesPerPage=PAGE_SIZE,
                    PaginationToken=token,
                )
                mappings.extend(response.get("ResourceTagMappingList", []))
                token = str(response.get("PaginationToken") or "")
        except ClientError as exc:
            if _error_code(exc) not in DENIED_CODES:
                return self._failure(
                    "tags", subject, f"tag:GetResources: {_error_text(exc)}", "rds-error"
                )
            denied = exc
        except (BotoCoreError, OSError) as exc:
            return self._failure(
                "tags", subject, f"tag:GetResources: {_error_text(exc)}", "rds-error"
            )
        else:
            scope.tags = {
                str(m["ResourceARN"]): {str(t["Key"]): str(t.get("Value", "")) for t in m["Tags"]}
                for m in mappings
            }
            scope.tags_known = True
            return Check(
                check="tags",
                status=Status.OK,
                subject=subject,
                detail=f"tag:GetResources answers ({len(mappings)} tagged proxies)",
            )
        return await self._tags_fallback(scope, rds, subject, denied)

    async def _tags_fallback(
        self, scope: _ScopeState, rds: Any, subject: str, denied: ClientError
    ) -> Check:
        arns = [str(p["DBProxyArn"]) for p in scope.proxies if p.get("DBProxyArn")]
        if not arns:
            return Check(
                check="tags",
                status=Status.WARN,
                subject=subject,
                detail=(
                    f"tag:GetResources denied ({_error_code(denied)}); no proxy here to try "
                    "rds:ListTagsForResource on"
                ),
                code="tags-fallback",
                fix=FIXES["tags-fallback"],
            )
        try:
            for arn in arns:
                response = await rds.list_tags_for_resource(ResourceName=arn)
                scope.tags[arn] = {
                    str(t["Key"]): str(t.get("Value", "")) for t in response.get("TagList", [])
                }
        except (ClientError, BotoCoreError, OSError) as exc:
            return self._failure(
                "tags",
                subject,
                f"tag:GetResources denied and rds:ListTagsForResource: {_error_text(exc)}",
                "tags-denied",
            )
        scope.tags_known = True
        return Check(
            check="tags",
            status=Status.WARN,
            subject=subject,
            detail=(
                f"tag:GetResources denied; rds:ListTagsForResource works "
                f"({len(arns)} calls per cycle here)"
            ),
            code="tags-fallback",
            fix=FIXES["tags-fallback"],
        )

    # --- 5. RequireTLS ----------------------------------------------------------------------

    def _check_tls(self, scopes: Sequence[_ScopeState]) -> None:
        for scope in scopes:
            if not scope.ok:
                continue
            subject = self._scope_subject(scope)
            off = [p for p in scope.proxies if not p.get("RequireTLS", False)]
            if not off:
                self._emit(
                    Check(
                        check="require-tls",
                        status=Status.OK,
                        subject=subject,
                        detail=f"all {len(scope.proxies)} proxies require TLS",
                    )
                )
                continue
            for proxy in off:
                name = str(proxy.get("DBProxyName", "?"))
                self._emit(
                    Check(
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
                )

    # --- 6. TCP -----------------------------------------------------------------------------

    def _resources(self, scope: _ScopeState) -> tuple[Resource, ...]:
        matcher = self.config.aws[scope.matcher_index]
        proxies = assemble_proxies(scope.proxies, scope.endpoints, scope.tags)
        converted = convert_proxies(
            proxies,
            Matching(
                tags=matcher.tags,
                assume_role_arn=matcher.assume_role_arn,
                external_id=matcher.external_id,
                discovery_group=self.config.discovery_group,
            ),
        )
        return converted.resources

    async def _check_tcp(self, scopes: Sequence[_ScopeState]) -> None:
        targets: dict[tuple[str, int], str] = {}
        for scope in scopes:
            if not scope.ok:
                continue
            for resource in self._resources(scope):
                host_text, _, port_text = resource.uri.rpartition(":")
                if host_text and port_text.isdigit():
                    targets.setdefault((host_text, int(port_text)), resource.name)
        if not self.settings.tcp:
            self._emit(
                Check(
                    check="tcp",
                    status=Status.SKIP,
                    subject=f"{len(targets)} endpoints",
                    detail="skipped (--no-tcp)",
                )
            )
            return
        if not targets:
            self._emit(
                Check(
                    check="tcp",
                    status=Status.SKIP,
                    subject="endpoints",
                    detail="nothing to connect to: no endpoint would be registered",
                )
            )
            return
        limit = asyncio.Semaphore(self.settings.tcp_concurrency)

        async def one(host: str, port: int) -> ProbeResult:
            async with limit:
                return await self.probe(host, port, self.settings.tcp_timeout)

        order = sorted(targets)
        results = await asyncio.gather(*(one(h, p) for h, p in order))
        for (host, port), result in zip(order, results, strict=True):
            subject = f"{host}:{port}"
            name = targets[(host, port)]
            if result.ok:
                self._emit(
                    Check(
                        check="tcp",
                        status=Status.OK,
                        subject=subject,
                        detail=f"{name}: connected in {result.seconds * 1000:.0f} ms",
                    )
                )
            else:
                self._fail("tcp", subject, f"{name}: {result.message}", result.code)


def failed(checks: Sequence[Check]) -> bool:
    return any(c.status is Status.FAIL for c in checks)


def render_check(check: Check) -> str:
    line = f"{check.status.value:<4}  {check.check:<11} {check.subject}: {check.detail}"
    if check.status in (Status.FAIL, Status.WARN) and check.fix:
        line += f"\n      fix: {check.fix}"
    return line


def summary(checks: Sequence[Check]) -> str:
    counts = {status: sum(1 for c in checks if c.status is status) for status in Status}
    return (
        f"doctor: {counts[Status.OK]} ok, {counts[Status.WARN]} warning(s), "
        f"{counts[Status.FAIL]} failed, {counts[Status.SKIP]} skipped"
    )


async def run_doctor(
    config: Config,
    *,
    settings: DoctorSettings | None = None,
    probe: Probe = tcp_probe,
    on_check: Callable[[Check], None] | None = None,
) -> tuple[Check, ...]:
    return await Doctor(config, settings=settings, probe=probe, on_check=on_check).run()
