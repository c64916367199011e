"""The AWS edge: credentials, assume-role sessions and the paginated RDS Proxy calls.

Everything here talks to AWS through aiobotocore; endpoints come from botocore's own settings,
so `AWS_ENDPOINT_URL` points the service at an emulator without a code path of ours. Library
errors are caught here and re-raised as `FetchError` naming the IAM action that failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from aiobotocore.config import AioConfig
from aiobotocore.credentials import AioRefreshableCredentials
from aiobotocore.httpsession import AIOHTTPSession
from aiobotocore.session import AioSession, get_session
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError
from botocore.parsers import ResponseParserError
from botocore.utils import parse_timestamp

from discovery.core.model import Proxy, ProxyEndpoint, Scope

if TYPE_CHECKING:
    from discovery.core.config import AWSClientConfig

PAGE_SIZE = 100
DENIED_CODES = frozenset(
    {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "UnauthorizedException"}
)
THROTTLE_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "SlowDown",
    }
)

CallObserver = Callable[[str, str, int], None]
"""(operation, outcome "ok"|"error"|"denied"|"throttled", retries) → None; counted by the shell."""

ThrottleObserver = Callable[[str], None]
"""operation → None, for every throttling response, including the attempts botocore retried."""


class FetchError(Exception):
    """A scope's fetch failed after retries; the message names the action and the fix.

    `account_id` is the scope's account when it is known (so the plan freezes only that
    account's resources in the region, not every account's), "" otherwise.
    """

    def __init__(self, message: str, *, account_id: str = "") -> None:
        super().__init__(message)
        self.account_id = account_id


@dataclass(frozen=True, kw_only=True)
class FetchedScope:
    account_id: str
    proxies: tuple[Proxy, ...]


class ProxySource(Protocol):
    """The AWS seam: everything the cycle needs from AWS for one scope."""

    async def fetch(self, scope: Scope) -> FetchedScope: ...


def _ignore_call(operation: str, outcome: str, retries: int) -> None:
    return None


def _ignore_throttle(operation: str) -> None:
    return None


@dataclass(frozen=True, kw_only=True)
class AWSSettings:
    max_attempts: int = 6  # per call, the first try included
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    max_concurrency: int = 64
    role_session_name: str = "rdsproxy-discovery"

    @classmethod
    def from_config(cls, client: AWSClientConfig) -> AWSSettings:
        """The config file's `aws_client` section."""
        return cls(
            max_attempts=client.max_attempts,
            connect_timeout=client.connect_timeout,
            read_timeout=client.read_timeout,
            max_concurrency=client.max_concurrency,
        )


class AWSSource:
    """Fetches proxies, endpoints and tags for scopes; sessions and clients are reused.

    Assumed-role sessions are cached per (role, external_id) with credentials that refresh
    themselves before they expire; clients are cached per (identity, service, region).
    Use as an async context manager: closing it closes every client.
    """

    def __init__(
        self,
        *,
        settings: AWSSettings | None = None,
        on_call: CallObserver = _ignore_call,
        on_throttle: ThrottleObserver = _ignore_throttle,
        base_session: AioSession | None = None,
    ) -> None:
        self._settings = settings or AWSSettings()
        self._on_call = on_call
        self._on_throttle = on_throttle
        self._base = base_session or get_session()
        _parse_timestamps_fast(self._base)
        self._config = AioConfig(
            # total_max_attempts counts the first try; botocore's max_attempts would not.
            retries={"mode": "standard", "total_max_attempts": self._settings.max_attempts},
            connect_timeout=self._settings.connect_timeout,
            read_timeout=self._settings.read_timeout,
            max_pool_connections=self._settings.max_concurrency,
            http_session_cls=_shared_tls_session_class(),
        )
        self._limit = asyncio.Semaphore(self._settings.max_concurrency)
        self._stack = contextlib.AsyncExitStack()
        self._sessions: dict[tuple[str, str], asyncio.Task[AioSession]] = {}
        self._clients: dict[tuple[str, str, str, str], asyncio.Task[Any]] = {}
        self._caller_account: asyncio.Task[str] | None = None

    async def __aenter__(self) -> AWSSource:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        for task in self._clients.values():
            if not task.done():
                task.cancel()
        await self._stack.aclose()
        self._clients.clear()
        self._sessions.clear()

    # --- sessions and clients ---------------------------------------------------------------

    def _home_region(self) -> str:
        return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"

    async def _client(self, role: str, external_id: str, service: str, region: str) -> Any:
        key = (role, external_id, service, region)
        task = self._clients.get(key)
        if task is None:
            task = asyncio.ensure_future(self._make_client(role, external_id, service, region))
            self._clients[key] = task
        try:
            return await asyncio.shield(task)
        except BaseException:
            if task.done() and self._clients.get(key) is task:
                del self._clients[key]  # a failed client is retried next time, not cached
            raise

    async def _make_client(self, role: str, external_id: str, service: str, region: str) -> Any:
        session = await self._session(role, external_id) if role else self._base
        creator = session.create_client(service, region_name=region, config=self._config)
        client = await self._stack.enter_async_context(creator)
        # botocore asks "needs-retry" after every attempt; this handler only looks (it returns
        # None, so botocore's own retry handler still decides). It sees the throttled attempts
        # that a successful call hides behind its retry count.
        client.meta.events.register("needs-retry", self._seen_attempt)
        return client

    def _seen_attempt(self, response: Any = None, operation: Any = None, **_: Any) -> None:
        if not isinstance(response, tuple) or len(response) < 2:
            return None  # a connection error: no response to classify
        parsed = response[1]
        error = parsed.get("Error") if isinstance(parsed, Mapping) else None
        if isinstance(error, Mapping) and error.get("Code") in THROTTLE_CODES:
            self._on_throttle(str(getattr(operation, "name", "unknown")))
        return None

    async def _session(self, role: str, external_id: str) -> AioSession:
        key = (role, external_id)
        task = self._sessions.get(key)
        if task is None:
            task = asyncio.ensure_future(self._assume(role, external_id))
            self._sessions[key] = task
        try:
            return await asyncio.shield(task)
        except BaseException:
            if task.done() and self._sessions.get(key) is task:
                del self._sessions[key]
            raise

    async def _assume(self, role: str, external_id: str) -> AioSession:
        sts = await self._client("", "", "sts", self._home_region())
        params: dict[str, Any] = {
            "RoleArn": role,
            "RoleSessionName": self._settings.role_session_name,
        }
        if external_id:
            params["ExternalId"] = external_id

        async def refresh() -> dict[str, Any]:
            response = await self._call("sts:AssumeRole", sts.assume_role, **params)
            creds = response["Credentials"]
            return {
                "access_key": creds["AccessKeyId"],
                "secret_key": creds["SecretAccessKey"],
                "token": creds["SessionToken"],
                "expiry_time": creds["Expiration"].isoformat(),
            }

        metadata = await refresh()
        session = get_session()
        # The service models are the same for every role: load them once, not per session.
        session.register_component("data_loader", self._base.get_component("data_loader"))
        _parse_timestamps_fast(session)
        # aiobotocore has no public setter for refreshable credentials on a session.
        session._credentials = AioRefreshableCredentials.create_from_metadata(
            metadata=metadata, refresh_using=refresh, method="sts-assume-role"
        )
        return session

    async def _base_account(self) -> str:
        """The default credentials' account (STS GetCallerIdentity), asked once; "" if unknown."""
        if self._caller_account is None:
            self._caller_account = asyncio.ensure_future(self._get_caller_account())
        try:
            return await asyncio.shield(self._caller_account)
        except FetchError:
            self._caller_account = None
            return ""

    async def _get_caller_account(self) -> str:
        sts = await self._client("", "", "sts", self._home_region())
        response = await self._call("sts:GetCallerIdentity", sts.get_caller_identity)
        return str(response.get("Account", ""))

    # --- calls ------------------------------------------------------------------------------

    async def _call(
        self, action: str, method: Callable[..., Awaitable[Any]], **params: Any
    ) -> Mapping[str, Any]:
        operation = action.split(":", 1)[1]
        async with self._limit:
            try:
                response: Mapping[str, Any] = await method(**params)
            except ClientError as exc:
                error = exc.response.get("Error", {})
                code = str(error.get("Code", "Unknown"))
                retries = int(exc.response.get("ResponseMetadata", {}).get("RetryAttempts", 0))
                outcome = (
                    "denied"
                    if code in DENIED_CODES
                    else "throttled"
                    if code in THROTTLE_CODES
                    else "error"
                )
                self._on_call(operation, outcome, retries)
                raise FetchError(_explain(action, code, str(error.get("Message", "")))) from exc
            except NoCredentialsError as exc:
                self._on_call(operation, "error", 0)
                raise FetchError(
                    f"{action}: no AWS credentials found; provide them through the environment, "
                    "shared credentials files, or an instance/IRSA role"
                ) from exc
            except ResponseParserError as exc:
                # A truncated or garbled body. botocore's parser error is not a BotoCoreError:
                # uncaught, it would fail the whole cycle instead of this one scope.
                self._on_call(operation, "error", 0)
                raise FetchError(
                    f"{action}: malformed response (AWS's answer could not be parsed); "
                    f"retry later: {_first_line(str(exc))}"
                ) from exc
            except (TimeoutError, BotoCoreError, OSError) as exc:
                self._on_call(operation, "error", 0)
                raise FetchError(f"{action} failed: {type(exc).__name__}: {exc}") from exc
        retries = int(response.get("ResponseMetadata", {}).get("RetryAttempts", 0))
        self._on_call(operation, "ok", retries)
        return response

    async def _pages(
        self,
        action: str,
        method: Callable[..., Awaitable[Any]],
        result_key: str,
        token_in: str,
        token_out: str,
        **params: Any,
    ) -> list[dict[str, Any]]:
        """Every page, following the token until AWS stops returning one. No page cap."""
        items: list[dict[str, Any]] = []
        token = ""
        seen: set[str] = set()
        while True:
            call_params = dict(params)
            if token:
                call_params[token_in] = token
            response = await self._call(action, method, **call_params)
            if result_key not in response:
                # botocore turns a truncated JSON body into {}: never read that as "no more".
                raise FetchError(f"{action}: malformed response (no {result_key}); retry later")
            items.extend(response[result_key])
            token = str(response.get(token_out) or "")
            if not token:
                return items
            if token in seen:
                raise FetchError(f"{action}: AWS returned the same page token twice ({token!r})")
            seen.add(token)

    # --- the scope --------------------------------------------------------------------------

    async def fetch(self, scope: Scope) -> FetchedScope:
        role, external_id, region = scope.assume_role_arn, scope.external_id, scope.region
        try:
            rds = await self._client(role, external_id, "rds", region)
            tagging = await self._client(role, external_id, "resourcegroupstaggingapi", region)
        except (BotoCoreError, OSError) as exc:
            raise FetchError(f"cannot create AWS clients for {region}: {exc}") from exc

        proxies_call = self._pages(
            "rds:DescribeDBProxies",
            rds.describe_db_proxies,
            "DBProxies",
            "Marker",
            "Marker",
            MaxRecords=PAGE_SIZE,
        )
        endpoints_call = self._pages(
            "rds:DescribeDBProxyEndpoints",
            rds.describe_db_proxy_endpoints,
            "DBProxyEndpoints",
            "Marker",
            "Marker",
            MaxRecords=PAGE_SIZE,
        )
        tags_call = self._tags_by_arn(tagging)
        account_call = self._scope_account(scope)
        try:
            raw_proxies, raw_endpoints, tags, account = await _gather_all(
                proxies_call, endpoints_call, tags_call, account_call
            )
            if tags is None:  # tag:GetResources denied: one ListTagsForResource per proxy
                tags = await self._tags_per_proxy(rds, raw_proxies)
        except FetchError as exc:
            # Base credentials: the account STS named (asked once, cached) is still the
            # scope's account, so only its resources in this region need to be frozen.
            exc.account_id = exc.account_id or await self._scope_account(scope)
            raise
        return FetchedScope(
            account_id=account or _account_from_arns(raw_proxies),
            proxies=assemble_proxies(raw_proxies, raw_endpoints, tags),
        )

    async def _scope_account(self, scope: Scope) -> str:
        return scope.role_account_id or await self._base_account()

    async def _tags_by_arn(self, tagging: Any) -> dict[str, dict[str, str]] | None:
        try:
            mappings = await self._pages(
                "tag:GetResources",
                tagging.get_resources,
                "ResourceTagMappingList",
                "PaginationToken",
                "PaginationToken",
                ResourceTypeFilters=["rds:db-proxy"],
                ResourcesPerPage=PAGE_SIZE,
            )
        except FetchError as exc:
            cause = exc.__cause__
            if isinstance(cause, ClientError) and cause.response["Error"]["Code"] in DENIED_CODES:
                return None
            raise
        return {
            str(m["ResourceARN"]): {str(t["Key"]): str(t.get("Value", "")) for t in m["Tags"]}
            for m in mappings
        }

    async def _tags_per_proxy(
        self, rds: Any, raw_proxies: list[dict[str, Any]]
    ) -> dict[str, dict[str, str]]:
        async def one(arn: str) -> tuple[str, dict[str, str]]:
            response = await self._call(
                "rds:ListTagsForResource", rds.list_tags_for_resource, ResourceName=arn
            )
            return arn, {str(t["Key"]): str(t.get("Value", "")) for t in response["TagList"]}

        arns = [str(p["DBProxyArn"]) for p in raw_proxies if p.get("DBProxyArn")]
        return dict(await _gather_all(*(one(arn) for arn in arns)))


def _parse_timestamp(value: Any) -> datetime:
    """botocore's timestamp parser, minus dateutil for the ISO 8601 form AWS answers with.

    Same values (timezone-aware datetimes); dateutil's generic parser cost about 2 s of CPU per
    cycle over 20,000 resources (two timestamps per proxy, one per endpoint; bench/RESULTS.md).
    """
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            if parsed.tzinfo is not None:
                return parsed
    return parse_timestamp(value)  # type: ignore[no-any-return]


def _parse_timestamps_fast(session: AioSession) -> None:
    factory = session.get_component("response_parser_factory")
    factory.set_parser_defaults(timestamp_parser=_parse_timestamp)


def _shared_tls_session_class() -> type[Any]:
    """An aiobotocore HTTP session class whose instances share their TLS contexts.

    aiobotocore builds one TLS context per client, loading the CA bundle each time (tens of
    milliseconds of CPU and about a megabyte each); a cycle has two clients per scope. The
    contexts depend only on the client settings, the same for every client of one source.
    """
    built: dict[tuple[Any, ...], Any] = {}
    lock = threading.Lock()  # contexts are built in worker threads

    class SharedTLSSession(AIOHTTPSession):  # type: ignore[misc]
        def _build_ssl_contexts(self, proxy_url: Any) -> Any:
            key = (
                repr(getattr(self, "_verify", None)),
                getattr(self, "_cert_file", None),
                getattr(self, "_key_file", None),
                proxy_url,
            )
            with lock:
                if key not in built:
                    built[key] = super()._build_ssl_contexts(proxy_url)
                return built[key]

    return SharedTLSSession


async def _gather_all(*calls: Awaitable[Any]) -> list[Any]:
    """Like gather, but the first failure cancels the rest (a scope fails as a whole)."""
    tasks = [asyncio.ensure_future(c) for c in calls]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


def _explain(action: str, code: str, message: str) -> str:
    text = f"{action} failed: {code}: {message}".rstrip(": ")
    if code in DENIED_CODES:
        if action == "sts:AssumeRole":
            return (
                f"{text} — check the role's trust policy allows this identity and that "
                "external_id matches the sts:ExternalId condition"
            )
        return f"{text} — grant {action} to the identity used for this matcher"
    if code in {"ExpiredToken", "ExpiredTokenException", "InvalidClientTokenId"}:
        return f"{text} — the credentials are expired or invalid; refresh them"
    if code in THROTTLE_CODES:
        return f"{text} — still throttled after retries; lower concurrency or scan less often"
    return text


def _first_line(text: str) -> str:
    """botocore's parser errors carry the whole body after the first line; keep the line."""
    return text.split("\n", 1)[0].strip().rstrip(":")


def _account_from_arns(raw_proxies: list[dict[str, Any]]) -> str:
    for proxy in raw_proxies:
        parts = str(proxy.get("DBProxyArn", "")).split(":")
        if len(parts) > 4 and parts[4]:
            return parts[4]
    return ""


def assemble_proxies(
    raw_proxies: list[dict[str, Any]],
    raw_endpoints: list[dict[str, Any]],
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
