"""The AWS source of a cycle: one scope's RDS Proxies, endpoints and tags, fetched as a whole.

A scope fails as a whole (the first failed call cancels the others) with a `FetchError` that
names the action and the fix, and, when it is known, the account whose resources to freeze.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, Protocol

from aiobotocore.session import AioSession

from discovery.aws.assemble import account_from_arns, assemble_proxies
from discovery.aws.calls import Caller, CallObserver, ErrorKind, FetchError
from discovery.aws.clients import AWSClients, AWSSettings, ThrottleObserver, home_region
from discovery.aws.confirm import confirm_check
from discovery.aws.inventory import AccountInventory
from discovery.aws.rds_calls import (
    Tags,
    describe_endpoints,
    describe_proxies,
    tags_by_arn,
    tags_of,
)
from discovery.core.confirm import Answer, Check
from discovery.core.model import Proxy, Scope


@dataclass(frozen=True, kw_only=True)
class FetchedScope:
    account_id: str
    proxies: tuple[Proxy, ...]
    # The tags came from rds:ListTagsForResource per proxy (the fallback): the targeted read
    # that confirms a delete or label removal has already been made (core.confirm).
    tags_confirmed: bool = False


class ProxySource(Protocol):
    """The AWS seam: everything the cycle needs from AWS for one scope."""

    async def fetch(self, scope: Scope) -> FetchedScope: ...

    async def confirm(self, scope: Scope, check: Check) -> Answer:
        """One targeted read (core.confirm) with the scope's credentials; never raises."""
        ...


def _ignore_call(operation: str, outcome: str, retries: int) -> None:
    return None


def _ignore_throttle(operation: str) -> None:
    return None


class AWSSource:
    """Fetches proxies, endpoints and tags for scopes over one shared client cache.

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
        settings = settings or AWSSettings()
        self._caller = Caller(
            max_concurrency=settings.max_concurrency,
            on_call=on_call,
            per_key_concurrency=settings.max_concurrency_per_account_region,
        )
        self._scopes_in_flight = asyncio.Semaphore(settings.max_concurrency)
        self._deadline = settings.scope_deadline
        self._clients = AWSClients(
            caller=self._caller,
            settings=settings,
            on_throttle=on_throttle,
            base_session=base_session,
        )
        self._caller_account: asyncio.Task[str] | None = None
        # Organization accounts and enabled regions, over the same clients and call wrapper.
        self.inventory = AccountInventory(clients=self._clients, caller=self._caller)

    async def __aenter__(self) -> AWSSource:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._clients.close()

    async def fetch(self, scope: Scope) -> FetchedScope:
        """The scope's proxies, endpoints and tags; raises `FetchError` (the whole scope).

        At most `max_concurrency` scopes fetch at once (the others wait their turn, holding
        nothing), and a scope still fetching `scope_deadline` after it started fails: the cycle
        freezes it and applies the others.
        """
        async with self._scopes_in_flight:
            try:
                async with asyncio.timeout(self._deadline):
                    return await self._fetch(scope)
            except TimeoutError:
                raise FetchError(
                    f"{scope.region}: the scope did not finish within aws_client.scope_deadline "
                    f"({self._deadline:g}s); it is frozen for this cycle — raise "
                    "aws_client.scope_deadline if the region is just slow",
                    kind=ErrorKind.UNREACHABLE,
                    account_id=await self._scope_account(scope),
                ) from None

    async def _fetch(self, scope: Scope) -> FetchedScope:
        role, external_id, region = scope.assume_role_arn, scope.external_id, scope.region
        try:
            rds = await self._clients.client(role, external_id, "rds", region)
            raw_proxies = await describe_proxies(self._caller, rds)
            if not raw_proxies:
                # Nothing here: no endpoint or tag call, no tagging client.
                return FetchedScope(account_id=await self._scope_account(scope), proxies=())
            tagging = await self._clients.client(
                role, external_id, "resourcegroupstaggingapi", region
            )
            raw_endpoints, tags, account = await _gather_all(
                describe_endpoints(self._caller, rds),
                self._tags_by_arn(tagging),
                self._scope_account(scope),
            )
            tags_confirmed = tags is None
            if tags is None:  # tag:GetResources denied: one ListTagsForResource per proxy
                tags = await self._tags_per_proxy(rds, raw_proxies)
        except FetchError as exc:
            # Base credentials: the account STS named (asked once, cached) is still the
            # scope's account, so only its resources in this region need to be frozen.
            exc.account_id = exc.account_id or await self._scope_account(scope)
            raise
        return FetchedScope(
            account_id=account or account_from_arns(raw_proxies),
            proxies=assemble_proxies(raw_proxies, raw_endpoints, tags),
            tags_confirmed=tags_confirmed,
        )

    async def confirm(self, scope: Scope, check: Check) -> Answer:
        try:
            rds = await self._clients.client(
                scope.assume_role_arn, scope.external_id, "rds", scope.region
            )
        except FetchError as exc:  # the scope's role cannot be assumed now
            return Answer(error=str(exc))
        return await confirm_check(self._caller, rds, check)

    async def _scope_account(self, scope: Scope) -> str:
        return scope.role_account_id or await self._base_account()

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
        sts = await self._clients.client("", "", "sts", home_region())
        response = await self._caller.call("sts:GetCallerIdentity", sts.get_caller_identity)
        return str(response.get("Account", ""))

    async def _tags_by_arn(self, tagging: Any) -> dict[str, Tags] | None:
        """None when tag:GetResources is denied (the caller falls back)."""
        try:
            return await tags_by_arn(self._caller, tagging)
        except FetchError as exc:
            if exc.kind is ErrorKind.DENIED:
                return None
            raise

    async def _tags_per_proxy(self, rds: Any, raw_proxies: list[dict[str, Any]]) -> dict[str, Tags]:
        async def one(arn: str) -> tuple[str, Tags]:
            return arn, await tags_of(self._caller, rds, arn)

        arns = [str(p["DBProxyArn"]) for p in raw_proxies if p.get("DBProxyArn")]
        return dict(await _gather_all(*(one(arn) for arn in arns)))


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
