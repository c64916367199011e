"""AWS sessions and clients, made once and reused: the base chain and every assumed role.

Endpoints come from botocore's own settings, so `AWS_ENDPOINT_URL` points the services at an
emulator without a code path of ours. Three patches to SDK internals came out of the benchmark
(bench/RESULTS.md, tests/bench/test_aws_fast_paths.py): a faster timestamp parser, TLS contexts
shared between clients, and one service-model loader for every assumed-role session.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from aiobotocore.config import AioConfig
from aiobotocore.credentials import AioRefreshableCredentials
from aiobotocore.httpsession import AIOHTTPSession
from aiobotocore.session import AioSession, get_session
from botocore.exceptions import BotoCoreError
from botocore.utils import parse_timestamp

from discovery.aws.calls import (
    THROTTLE_CODES,
    Caller,
    ErrorKind,
    FetchError,
    library_error_kind,
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


def home_region() -> str:
    """Where STS is asked (GetCallerIdentity, AssumeRole): the environment's region."""
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


@dataclass(frozen=True, kw_only=True)
class _Assumed:
    session: AioSession
    arn: str  # the assumed-role ARN STS answered with (AssumedRoleUser.Arn)


class AWSClients:
    """Clients per (role, external id, service, region); role "" is the base credential chain.

    Assumed-role sessions are cached per (role, external_id) with credentials that refresh
    themselves before they expire; their AssumeRole calls go through `caller`, like every
    other call. A failed session or client is not cached: the next request tries again.
    Library errors come out as `FetchError`. Use as an async context manager: closing it
    closes every client.
    """

    def __init__(
        self,
        *,
        caller: Caller,
        settings: AWSSettings | None = None,
        on_throttle: ThrottleObserver = _ignore_throttle,
        base_session: AioSession | None = None,
    ) -> None:
        self.caller = caller
        self._settings = settings or AWSSettings()
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
        self._stack = contextlib.AsyncExitStack()
        self._sessions: dict[tuple[str, str], asyncio.Task[_Assumed]] = {}
        self._clients: dict[tuple[str, str, str, str], asyncio.Task[Any]] = {}

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

    async def base_credentials(self) -> Any:
        """The base chain's credentials (with `.method`, where they came from), or None."""
        try:
            return await self._base.get_credentials()
        except BotoCoreError as exc:
            raise FetchError(
                f"the base credential chain failed: {exc}", kind=ErrorKind.NO_CREDENTIALS
            ) from exc

    async def client(self, role: str, external_id: str, service: str, region: str) -> Any:
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

    async def assumed_arn(self, role: str, external_id: str) -> str:
        """Assume `role` (once; raises `FetchError`) and return the assumed-role ARN."""
        return (await self._assumed(role, external_id)).arn

    async def _make_client(self, role: str, external_id: str, service: str, region: str) -> Any:
        session = (await self._assumed(role, external_id)).session if role else self._base
        try:
            creator = session.create_client(service, region_name=region, config=self._config)
            client = await self._stack.enter_async_context(creator)
        except (BotoCoreError, OSError) as exc:
            raise FetchError(
                f"cannot create AWS clients for {region}: {exc}", kind=library_error_kind(exc)
            ) from exc
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

    async def _assumed(self, role: str, external_id: str) -> _Assumed:
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
        session = get_session()
        # The service models are the same for every role: load them once, not per session.
        session.register_component("data_loader", self._base.get_component("data_loader"))
        _parse_timestamps_fast(session)
        # aiobotocore has no public setter for refreshable credentials on a session.
        session._credentials = AioRefreshableCredentials.create_from_metadata(
            metadata=metadata, refresh_using=refresh, method="sts-assume-role"
        )
        return _Assumed(session=session, arn=first["arn"])


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
