"""The emulator's core: one state (fleet, credentials, faults, throttle, stats, reply cache)
and the dispatcher that answers an AWS request with it.

Every request takes the same path, whatever the operation: identify the caller from the SigV4
credential scope, apply latency and any matching fault, take a throttle token, then answer
from the reply cache or from the operation's handler (:mod:`.operations`) through moto's
serializers (:mod:`.wire`). The HTTP control API (:mod:`.control`) changes this state
between requests.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .cache import ReplyCache, cache_key
from .faults import DEFAULT_TIMEOUT_DELAY, injected_error
from .fleet import (
    Fault,
    Fleet,
    FleetError,
    Throttle,
    format_validation_error,
    parse_faults,
    parse_throttle,
)
from .operations import HANDLERS
from .ops_account import PATHS as ACCOUNT_PATHS
from .ops_sts import ROLE_ARN_RE
from .state import (
    THROTTLING_CODES,
    Buckets,
    CredentialStore,
    FaultInjector,
    FleetIndex,
    Identity,
    Stats,
)
from .wire import ApiError, Reply, Wire

__all__ = ["EMULATOR_KEY", "Emulator", "FaultsArg", "ThrottleArg"]

FaultsArg = Iterable[Fault | Mapping[str, Any]] | str | bytes | None
ThrottleArg = Throttle | Mapping[str, Any] | Sequence[float] | str | None

_AUTH_RE = re.compile(r"Credential=([^/,\s]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request")
_TAGGING_TARGET = "ResourceGroupsTaggingAPI_20170126"
_ORGANIZATIONS_TARGET = "AWSOrganizationsV20161128"
# JSON-bodied services: credential-scope service → its X-Amz-Target prefix ("" for REST-JSON).
_JSON_SERVICES = {"tagging": _TAGGING_TARGET, "organizations": _ORGANIZATIONS_TARGET, "account": ""}
_VERSIONS = {"2011-06-15": "sts", "2014-10-31": "rds"}


class _SettingsUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    latency_ms: float | None = Field(default=None, ge=0)
    throttle: Throttle | None = None


class Emulator:
    """The state and request handling of one emulator; see :func:`.app.build_app`."""

    def __init__(
        self,
        fleet: Fleet,
        *,
        faults: FaultsArg = (),
        latency_ms: float = 0,
        throttle: ThrottleArg = None,
    ) -> None:
        self.wire = Wire()
        self.credentials = CredentialStore()
        self.stats = Stats()
        self.faults = FaultInjector(parse_faults(faults))
        self.latency_ms = float(latency_ms)
        self.buckets = Buckets(parse_throttle(throttle))
        self._cache = ReplyCache()
        self.index = FleetIndex(fleet)

    # -- control ----------------------------------------------------------------------------

    @property
    def fleet(self) -> Fleet:
        return self.index.fleet

    def set_fleet(self, fleet: Fleet) -> None:
        self.index = FleetIndex(fleet)
        self._cache.clear()

    def set_faults(self, faults: FaultsArg) -> None:
        self.faults.replace(parse_faults(faults))

    def set_throttle(self, throttle: ThrottleArg) -> None:
        self.buckets = Buckets(parse_throttle(throttle))

    def settings(self) -> dict[str, Any]:
        t = self.buckets.throttle
        return {"latency_ms": self.latency_ms, "throttle": t.model_dump() if t else None}

    def update_settings(self, data: Mapping[str, Any]) -> None:
        try:
            upd = _SettingsUpdate.model_validate(data)
        except ValidationError as e:
            raise FleetError(format_validation_error(e, "settings")) from e
        if "latency_ms" in upd.model_fields_set:
            self.latency_ms = upd.latency_ms or 0.0
        if "throttle" in upd.model_fields_set:
            self.set_throttle(upd.throttle)

    def warm(self, page_size: int = 100) -> int:
        """Serialize every page of a full listing in advance; returns the number of pages.

        Covers what a discovery cycle asks for: DescribeDBProxies and DescribeDBProxyEndpoints
        with ``MaxRecords=page_size`` and GetResources for ``rds:db-proxy`` with
        ``ResourcesPerPage=page_size``, in every account and region of the fleet. Later
        requests with the same parameters are answered from the cache.
        """
        pages = 0
        listings: list[tuple[str, str, str, str, dict[str, Any]]] = [
            ("rds", "DescribeDBProxies", "Marker", "Marker", {"MaxRecords": str(page_size)}),
            ("rds", "DescribeDBProxyEndpoints", "Marker", "Marker", {"MaxRecords": str(page_size)}),
            (
                "tagging",
                "GetResources",
                "PaginationToken",
                "PaginationToken",
                {"ResourcesPerPage": page_size, "ResourceTypeFilters": ["rds:db-proxy"]},
            ),
        ]
        for account, region in sorted(self.index.regions):
            identity = self.credentials.base_identity("warm", account)
            for service, operation, out_token, in_token, base in listings:
                params = dict(base)
                while True:
                    self._dispatch(service, operation, params, identity, account, region)
                    pages += 1
                    handler = HANDLERS[operation]
                    token = handler(self, params, identity, account, region).get(out_token)
                    if not token:
                        break
                    params = {**base, in_token: token}
        return pages

    # -- AWS requests -----------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.stats.connection(request.transport)
        body = await request.read()
        headers = request.headers
        auth = _AUTH_RE.search(headers.get("Authorization", "")) or _AUTH_RE.search(
            "Credential=" + request.query.get("X-Amz-Credential", "")
        )
        akid, region, scope_service = ("", "us-east-1", "")
        if auth:
            akid, _, region, scope_service = auth.groups()
        target = headers.get("X-Amz-Target", "")

        params: dict[str, Any]
        json_service = _json_service(scope_service, target)
        if json_service:
            service = json_service
            if service == "account":
                operation = ACCOUNT_PATHS.get(request.path, "")
            else:
                operation = target.split(".", 1)[1] if "." in target else ""
            try:
                loaded = json.loads(body) if body.strip() else {}
            except ValueError:
                loaded = None
            if not isinstance(loaded, dict):
                return self._send(
                    self.wire.error(
                        service, None, ApiError("SerializationException", "invalid JSON body")
                    )
                )
            params = loaded
        else:
            params = dict(request.query)
            params.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
            service = scope_service if scope_service in ("sts", "rds") else ""
            service = service or _VERSIONS.get(str(params.get("Version", "")), "")
            operation = str(params.get("Action", ""))
            if not service:
                return web.Response(
                    status=400,
                    text=f"the AWS emulator does not implement service {scope_service!r}",
                )

        request_id = str(uuid.uuid4())
        answering = False
        issued = self.credentials.lookup(akid)
        account = issued.account if issued else self.fleet.caller_account
        try:
            identity = self._identity(akid)
            account = identity.account
            if operation == "AssumeRole":
                # Faults and throttling of AssumeRole count against the role's account.
                m = ROLE_ARN_RE.match(str(params.get("RoleArn", "")))
                if m:
                    account = m.group(1)
            if not self.wire.has_operation(service, operation) or operation not in HANDLERS:
                code = "UnknownOperationException" if service in _JSON_SERVICES else "InvalidAction"
                raise ApiError(code, f"The action {operation or '(none)'} is not valid")
            if self.latency_ms:
                await asyncio.sleep(self.latency_ms / 1000.0)
            fault = self.faults.match(operation, account, region)
            malformed = False
            if fault is not None:
                delay = fault.delay_seconds
                if fault.code == "Timeout" and delay is None:
                    delay = DEFAULT_TIMEOUT_DELAY
                if delay:
                    await asyncio.sleep(delay)
                if fault.code == "Malformed":
                    malformed = True
                elif fault.code != "Timeout":
                    raise injected_error(fault, service, operation, identity, account, region)
            if not self.buckets.take((service, account, region)):
                code = _THROTTLE_CODES.get(service, "Throttling")
                raise ApiError(code, "Rate exceeded", 400)
            answering = True  # from here on, an error is the fleet's own answer
            reply = self._dispatch(service, operation, params, identity, account, region)
            if malformed:
                reply = Reply(reply.status, reply.headers, reply.body[: len(reply.body) // 2])
                self.stats.record(operation, account, region, "error")
            else:
                self.stats.record(operation, account, region, "ok")
        except ApiError as err:
            outcome = "throttled" if err.code in THROTTLING_CODES else "error"
            if answering and err.code.endswith("NotFoundFault"):
                # A named read of something that does not exist: an answer, not a failure
                # (listed only when it happens: the other outcomes are always listed).
                outcome = "not-found"
            self.stats.record(operation or "(none)", account, region, outcome)
            reply = self.wire.error(service, operation, err)
        return self._send(reply.with_request_id(request_id))

    @staticmethod
    def _send(reply: Reply) -> web.Response:
        headers = dict(reply.headers)
        content_type = headers.pop("Content-Type", "text/xml")
        return web.Response(
            status=reply.status,
            headers=headers,
            body=reply.body.encode("utf-8"),
            content_type=content_type.split(";")[0],
        )

    def _identity(self, akid: str) -> Identity:
        issued = self.credentials.lookup(akid)
        if issued is None:
            return self.credentials.base_identity(akid, self.fleet.caller_account)
        if issued.expired():
            raise ApiError(
                "ExpiredTokenException",
                "The security token included in the request is expired",
                400,
            )
        return issued

    def _dispatch(
        self,
        service: str,
        operation: str,
        params: dict[str, Any],
        identity: Identity,
        account: str,
        region: str,
    ) -> Reply:
        key = cache_key(operation, params)
        if key is not None:
            key = (account, region, *key)
            cached = self._cache.get(key)
            if cached is not None:
                return cached
        result = HANDLERS[operation](self, params, identity, account, region)
        reply = self.wire.result(service, operation, result)
        if key is not None:
            self._cache.put(key, reply)
        return reply


def _json_service(scope_service: str, target: str) -> str:
    """The JSON-protocol service a request is for (by credential scope or target), or ""."""
    if scope_service in _JSON_SERVICES:
        return scope_service
    for service, prefix in _JSON_SERVICES.items():
        if prefix and target.startswith(prefix + "."):
            return service
    return ""


_THROTTLE_CODES = {
    "tagging": "ThrottledException",
    "organizations": "TooManyRequestsException",
    "account": "TooManyRequestsException",
}


# How the aiohttp application (:mod:`.app`) and its control routes find their emulator.
EMULATOR_KEY = web.AppKey("emulator", Emulator)
