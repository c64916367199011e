"""AWS sessions and clients, made once and reused: the base chain and every assumed role.

Endpoints come from botocore's own settings, so `AWS_ENDPOINT_URL` points the services at an
emulator without a code path of ours. One client per (service, region) signs for every role
(`AWSClients`); the speed-ups of SDK internals the benchmark led to are in `sdk_speedups`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections import OrderedDict
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiobotocore.config import AioConfig
from aiobotocore.credentials import AioRefreshableCredentials
from aiobotocore.session import AioSession, get_session
from botocore.exceptions import BotoCoreError

from discovery.aws.calls import (
    THROTTLE_CODES,
    Caller,
    ErrorKind,
    FetchError,
    library_error_kind,
)
from discovery.aws.limits import CURRENT_LIMIT_KEY
from discovery.aws.sdk_speedups import (
    cache_user_agent,
    parse_timestamps_fast,
    shared_tls_session_class,
)

if TYPE_CHECKING:
    from discovery.core.config import AWSClientConfig

ThrottleObserver = Callable[[str], None]
"""operation → None, for every throttling response, including the attempts botocore retried."""


def _ignore_throttle(operation: str) -> None:
    return None


@dataclass(frozen=True, kw_only=True)
class AWSSettings:
    max_attempts: int = 6  # per call, the first try included
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    max_concurrency: int = 256  # calls in flight, over all scopes
    max_concurrency_per_account_region: int = 16
    scope_deadline: float = 60.0  # seconds a scope may fetch before it is failed
    role_session_name: str = "rdsproxy-discovery"

    @classmethod
    def from_config(cls, client: AWSClientConfig) -> AWSSettings:
        """The config file's `aws_client` section."""
        return cls(
            max_attempts=client.max_attempts,
            connect_timeout=client.connect_timeout,
            read_timeout=client.read_timeout,
            max_concurrency=client.max_concurrency,
            max_concurrency_per_account_region=client.per_account_region,
            scope_deadline=client.scope_deadline,
        )


def home_region() -> str:
    """Where STS is asked (GetCallerIdentity, AssumeRole): the environment's region."""
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


@dataclass(frozen=True, kw_only=True)
class _Assumed:
    credentials: AioRefreshableCredentials
    arn: str  # the assumed-role ARN STS answered with (AssumedRoleUser.Arn)


# The credentials the shared clients sign with, for the task making the call. Each scope's
# calls run in their own tasks (asyncio copies the context into every task), so concurrent
# scopes never see each other's value; None means the base credential chain.
_SIGNING_CREDENTIALS: ContextVar[Any] = ContextVar("signing_credentials", default=None)

# Assumed-role credentials kept at most (least recently used dropped first): memory is bounded
# by the roles a cycle uses, not by every role ever seen. A dropped role is assumed again.
MAX_CACHED_ROLES = 4096


class _ScopeCredentials:
    """What the shared clients' signers hold: the calling task's credentials, or the base chain's.

    botocore signs each request with `await signer._credentials.get_frozen_credentials()`
    (aiobotocore/signers.py, `AioRequestSigner.get_auth_instance`), so one client per
    (service, region) can sign for every role: refreshable credentials refresh as before.
    """

    def __init__(self, base: AioSession) -> None:
        self._base = base

    async def get_frozen_credentials(self) -> Any:
        credentials = _SIGNING_CREDENTIALS.get()
        if credentials is None:
            credentials = await self._base.get_credentials()
            if credentials is None:
                return None  # botocore's signer then raises NoCredentialsError
        return await credentials.get_frozen_credentials()


class _ScopedMethod:
    """One API method of a shared client, signed with one role's credentials.

    `limit_key` (account or role, region) is what `Caller` limits concurrency by.
    """

    __slots__ = ("_credentials", "_method", "limit_key")

    def __init__(self, method: Any, credentials: Any, limit_key: tuple[str, str]) -> None:
        self._method = method
        self._credentials = credentials
        self.limit_key = limit_key

    async def __call__(self, **params: Any) -> Any:
        token = _SIGNING_CREDENTIALS.set(self._credentials)
        try:
            return await self._method(**params)
        finally:
            _SIGNING_CREDENTIALS.reset(token)


class ScopedClient:
    """A shared (service, region) client seen through one role's credentials; costs a few bytes."""

    __slots__ = ("_client", "_credentials", "_limit_key")

    def __init__(self, client: Any, credentials: Any, limit_key: tuple[str, str]) -> None:
        self._client = client
        self._credentials = credentials
        self._limit_key = limit_key

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if name not in self._client.meta.method_to_api_mapping:
            return attribute  # not an API operation (meta, exceptions, get_paginator, ...)
        return _ScopedMethod(attribute, self._credentials, self._limit_key)


class AWSClients:
    """One botocore client per (service, region), shared by every role; credentials per role.

    botocore's client creation costs ~5-10 ms of CPU and ~0.35 MB, and each client has its own
    connection pool: made per (account, region, service), that was most of a cycle's cost on a
    fleet of many small scopes. Here each shared client signs with the credentials of the
    calling scope (`_ScopeCredentials`), so a cycle creates about two clients per region and
    reuses one keep-alive pool per service endpoint across all accounts. botocore's semantics
    are unchanged: its retry handler, error parsing and refreshable credentials are the same
    objects as before; only which credentials sign is chosen per call.

    Assumed-role credentials are cached per (role, external_id) in an LRU of MAX_CACHED_ROLES
    and refresh themselves before they expire; their AssumeRole calls go through `caller`, like
    every other call, signed with the base chain. A failed role or client is not cached: the
    next request tries again. Library errors come out as `FetchError`. Use as an async context
    manager: closing it closes every client.
    """

    def __init__(
        self,
        *,
        caller: Caller,
        settings: AWSSettings | None = None,
        on_throttle: ThrottleObserver = _ignore_throttle,
        base_session: AioSession | None = None,
        max_cached_roles: int = MAX_CACHED_ROLES,
    ) -> None:
        self.caller = caller
        self._settings = settings or AWSSettings()
        self._on_throttle = on_throttle
        self._base = base_session or get_session()
        parse_timestamps_fast(self._base)
        self._config = AioConfig(
            # total_max_attempts counts the first try; botocore's max_attempts would not.
            retries={"mode": "standard", "total_max_attempts": self._settings.max_attempts},
            connect_timeout=self._settings.connect_timeout,
            read_timeout=self._settings.read_timeout,
            # One pool per shared client (service, region): as many connections as calls in
            # flight, kept alive and reused by every account's scopes of that endpoint.
            max_pool_connections=self._settings.max_concurrency,
            http_session_cls=shared_tls_session_class(),
        )
        self._signing = _ScopeCredentials(self._base)
        self._max_roles = max(1, max_cached_roles)
        self._stack = contextlib.AsyncExitStack()
        self._sessions: OrderedDict[tuple[str, str], asyncio.Task[_Assumed]] = OrderedDict()
        self._clients: dict[tuple[str, str], asyncio.Task[Any]] = {}
        self.clients_created = 0

    async def __aenter__(self) -> AWSClients:
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

    @property
    def cached_roles(self) -> int:
        return len(self._sessions)

    async def base_credentials(self) -> Any:
        """The base chain's credentials (with `.method`, where they came from), or None."""
        try:
            return await self._base.get_credentials()
        except BotoCoreError as exc:
            raise FetchError(
                f"the base credential chain failed: {exc}", kind=ErrorKind.NO_CREDENTIALS
            ) from exc

    async def client(self, role: str, external_id: str, service: str, region: str) -> Any:
        """`service` in `region` as `role` ("" = the base chain): a `ScopedClient`."""
        credentials = (await self._assumed(role, external_id)).credentials if role else None
        shared = await self._shared(service, region)
        return ScopedClient(shared, credentials, (_role_account(role), region))

    async def assumed_arn(self, role: str, external_id: str) -> str:
        """Assume `role` (once; raises `FetchError`) and return the assumed-role ARN."""
        return (await self._assumed(role, external_id)).arn

    async def _shared(self, service: str, region: str) -> Any:
        key = (service, region)
        task = self._clients.get(key)
        if task is None:
            task = asyncio.ensure_future(self._make_client(service, region))
            self._clients[key] = task
        try:
            return await asyncio.shield(task)
        except BaseException:
            if task.done() and self._clients.get(key) is task:
                del self._clients[key]  # a failed client is retried next time, not cached
            raise

    async def _make_client(self, service: str, region: str) -> Any:
        try:
            creator = self._base.create_client(service, region_name=region, config=self._config)
            client = await self._stack.enter_async_context(creator)
        except (BotoCoreError, OSError) as exc:
            raise FetchError(
                f"cannot create AWS clients for {region}: {exc}", kind=library_error_kind(exc)
            ) from exc
        # The client signs for whichever role the calling task carries (see _ScopeCredentials);
        # aiobotocore has no public setter for a client's signing credentials.
        client._request_signer._credentials = self._signing
        cache_user_agent(client)
        self.clients_created += 1
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
            self.caller.throttled(CURRENT_LIMIT_KEY.get())
        return None

    async def _assumed(self, role: str, external_id: str) -> _Assumed:
        key = (role, external_id)
        task = self._sessions.get(key)
        if task is None:
            task = asyncio.ensure_future(self._assume(role, external_id))
            self._sessions[key] = task
            while len(self._sessions) > self._max_roles:
                self._sessions.popitem(last=False)  # the least recently used role
        else:
            self._sessions.move_to_end(key)
        try:
            return await asyncio.shield(task)
        except BaseException:
            if task.done() and self._sessions.get(key) is task:
                del self._sessions[key]
            raise

    async def _assume(self, role: str, external_id: str) -> _Assumed:
        sts = await self.client("", "", "sts", home_region())
        params: dict[str, Any] = {
            "RoleArn": role,
            "RoleSessionName": self._settings.role_session_name,
        }
        if external_id:
            params["ExternalId"] = external_id
        first: dict[str, Any] = {}

        async def refresh() -> dict[str, Any]:
            # Signed with the base chain (the ScopedClient sets that), even when the refresh
            # runs inside a call signed with this role's credentials.
            response = await self.caller.call("sts:AssumeRole", sts.assume_role, **params)
            first.setdefault("arn", str(response.get("AssumedRoleUser", {}).get("Arn", role)))
            creds = response["Credentials"]
            return {
                "access_key": creds["AccessKeyId"],
                "secret_key": creds["SecretAccessKey"],
                "token": creds["SessionToken"],
                "expiry_time": creds["Expiration"].isoformat(),
            }

        metadata = await refresh()
        credentials = AioRefreshableCredentials.create_from_metadata(
            metadata=metadata, refresh_using=refresh, method="sts-assume-role"
        )
        return _Assumed(credentials=credentials, arn=first["arn"])


def _role_account(role: str) -> str:
    """The account of `arn:aws:iam::<account>:role/...`, "" for the base chain, else the ARN."""
    if not role:
        return ""
    parts = role.split(":")
    return parts[4] if len(parts) > 4 and parts[4] else role
