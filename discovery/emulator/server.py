"""The emulator's HTTP server (aiohttp): AWS operations plus a small control API."""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, cast
from urllib.parse import parse_qsl

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .fleet import (
    Fault,
    Fleet,
    FleetError,
    Throttle,
    format_validation_error,
    parse_faults,
    parse_fleet,
    parse_throttle,
)
from .state import (
    THROTTLING_CODES,
    Buckets,
    CredentialStore,
    FaultInjector,
    FleetIndex,
    Identity,
    ProxyRecord,
    Stats,
    decode_token,
    encode_token,
    page_start,
)
from .wire import ApiError, Reply, Wire

__all__ = ["Emulator", "EmulatorThread", "build_app", "serve"]

FaultsArg = Iterable[Fault | Mapping[str, Any]] | str | bytes | None
ThrottleArg = Throttle | Mapping[str, Any] | Sequence[float] | str | None

_AUTH_RE = re.compile(r"Credential=([^/,\s]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request")
_ROLE_ARN_RE = re.compile(
    r"^arn:aws[\w-]*:iam::(\d{12}):role/(?:[\w+=,.@/-]*/)?([\w+=,.@-]{1,64})$"
)
_SESSION_NAME_RE = re.compile(r"^[\w+=,.@-]{2,64}$")
_TAGGING_TARGET = "ResourceGroupsTaggingAPI_20170126"
_VERSIONS = {"2011-06-15": "sts", "2014-10-31": "rds"}
_IAM_PREFIX = {"sts": "sts", "rds": "rds", "tagging": "tag"}
# Serialized answers are cached per fleet (moto's XML serializer costs ~10 ms per 100 items);
# the cache is bounded by the total size of the cached bodies.
_CACHE_BYTES = 512 * 1024**2


def _cache_key(operation: str, params: Mapping[str, Any]) -> tuple[Any, ...] | None:
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


_DEFAULT_TIMEOUT_DELAY = 30.0


def _default_status(code: str) -> int:
    if code.startswith(("AccessDenied", "Unauthorized")) or code in (
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
    ):
        return 403
    if code.endswith("NotFoundFault"):
        return 404
    if code in ("InternalFailure", "InternalError", "InternalServiceException"):
        return 500
    if code == "ServiceUnavailable":
        return 503
    return 400


class _SettingsUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    latency_ms: float | None = Field(default=None, ge=0)
    throttle: Throttle | None = None


class Emulator:
    """The state and request handling of one emulator; see :func:`build_app`."""

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
        self._cache: OrderedDict[Any, Reply] = OrderedDict()
        self._cache_bytes = 0
        self.index = FleetIndex(fleet)

    # -- control ----------------------------------------------------------------------------

    @property
    def fleet(self) -> Fleet:
        return self.index.fleet

    def set_fleet(self, fleet: Fleet) -> None:
        self.index = FleetIndex(fleet)
        self._cache.clear()
        self._cache_bytes = 0

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
                    handler = _HANDLERS[operation]
                    token = handler(self, params, identity, account, region).get(out_token)
                    if not token:
                        break
                    params = {**base, in_token: token}
        return pages

    # -- AWS requests -----------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
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
        if scope_service == "tagging" or target.startswith(_TAGGING_TARGET + "."):
            service = "tagging"
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
        issued = self.credentials.lookup(akid)
        account = issued.account if issued else self.fleet.caller_account
        try:
            identity = self._identity(akid)
            account = identity.account
            if operation == "AssumeRole":
                m = _ROLE_ARN_RE.match(str(params.get("RoleArn", "")))
                if m:
                    account = m.group(1)
            if not self.wire.has_operation(service, operation) or operation not in _HANDLERS:
                code = "UnknownOperationException" if service == "tagging" else "InvalidAction"
                raise ApiError(code, f"The action {operation or '(none)'} is not valid")
            if self.latency_ms:
                await asyncio.sleep(self.latency_ms / 1000.0)
            fault = self.faults.match(operation, account, region)
            malformed = False
            if fault is not None:
                delay = fault.delay_seconds
                if fault.code == "Timeout" and delay is None:
                    delay = _DEFAULT_TIMEOUT_DELAY
                if delay:
                    await asyncio.sleep(delay)
                if fault.code == "Malformed":
                    malformed = True
                elif fault.code != "Timeout":
                    raise ApiError(
                        fault.code,
                        fault.message
                        or self._fault_message(
                            fault.code, service, operation, identity, account, region
                        ),
                        fault.status or _default_status(fault.code),
                    )
            if not self.buckets.take((service, account, region)):
                code = "ThrottledException" if service == "tagging" else "Throttling"
                raise ApiError(code, "Rate exceeded", 400)
            reply = self._dispatch(service, operation, params, identity, account, region)
            if malformed:
                reply = Reply(reply.status, reply.headers, reply.body[: len(reply.body) // 2])
                self.stats.record(operation, account, region, "error")
            else:
                self.stats.record(operation, account, region, "ok")
        except ApiError as err:
            outcome = "throttled" if err.code in THROTTLING_CODES else "error"
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

    @staticmethod
    def _fault_message(
        code: str, service: str, operation: str, identity: Identity, account: str, region: str
    ) -> str:
        if code in THROTTLING_CODES:
            return "Rate exceeded"
        if code.startswith("AccessDenied"):
            action = f"{_IAM_PREFIX[service]}:{operation}"
            if operation == "AssumeRole":
                resource = f"arn:aws:iam::{account}:role/*"
            elif service == "rds":
                resource = f"arn:aws:rds:{region}:{account}:db-proxy:*"
            else:
                resource = "*"
            return (
                f"User: {identity.arn} is not authorized to perform: {action} "
                f"on resource: {resource} (injected fault)"
            )
        return f"injected fault {code}"

    def _dispatch(
        self,
        service: str,
        operation: str,
        params: dict[str, Any],
        identity: Identity,
        account: str,
        region: str,
    ) -> Reply:
        key = _cache_key(operation, params)
        if key is not None:
            key = (account, region, *key)
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                return cached
        handler = _HANDLERS[operation]
        result = handler(self, params, identity, account, region)
        reply = self.wire.result(service, operation, result)
        if key is not None:
            self._cache[key] = reply
            self._cache_bytes += len(reply.body)
            while self._cache_bytes > _CACHE_BYTES and self._cache:
                _, old = self._cache.popitem(last=False)
                self._cache_bytes -= len(old.body)
        return reply

    # -- operations -------------------------------------------------------------------------

    def _assume_role(
        self, params: dict[str, Any], identity: Identity, account: str, region: str
    ) -> dict[str, Any]:
        role_arn = str(params.get("RoleArn", ""))
        session_name = str(params.get("RoleSessionName", ""))
        m = _ROLE_ARN_RE.match(role_arn)
        if not m:
            raise ApiError(
                "ValidationError",
                f"1 validation error detected: Value '{role_arn}' at 'roleArn' failed to "
                "satisfy constraint: Member must be a valid IAM role ARN",
            )
        if not _SESSION_NAME_RE.match(session_name):
            raise ApiError(
                "ValidationError",
                f"1 validation error detected: Value '{session_name}' at 'roleSessionName' "
                "failed to satisfy constraint: Member must satisfy regular expression pattern: "
                r"[\w+=,.@-]*",
            )
        role_account, role_name = m.groups()
        denied = ApiError(
            "AccessDenied",
            f"User: {identity.arn} is not authorized to perform: sts:AssumeRole on resource: "
            f"{role_arn}",
            403,
        )
        role = self.index.roles.get((role_account, role_name))
        if role is None:
            raise denied
        external_id = params.get("ExternalId")
        if (role.external_id or None) != (external_id or None):
            raise denied
        requested = params.get("DurationSeconds")
        duration = 3600
        if requested not in (None, ""):
            try:
                duration = int(requested)
            except (TypeError, ValueError):
                duration = -1
            if not 900 <= duration <= 43200:
                raise ApiError(
                    "ValidationError",
                    f"1 validation error detected: Value '{requested}' at 'durationSeconds' "
                    "failed to satisfy constraint: Member must have value between 900 and 43200",
                )
            if duration > role.max_session_duration:
                raise ApiError(
                    "ValidationError",
                    "The requested DurationSeconds exceeds the MaxSessionDuration set for this "
                    "role.",
                )
        if self.fleet.credential_duration_seconds is not None:
            duration = self.fleet.credential_duration_seconds
        issued, secret, token, expiration = self.credentials.issue(
            account=role_account,
            role_name=role_name,
            role_arn=role_arn,
            session_name=session_name,
            duration=duration,
        )
        return {
            "Credentials": {
                "AccessKeyId": issued.access_key_id,
                "SecretAccessKey": secret,
                "SessionToken": token,
                "Expiration": expiration,
            },
            "AssumedRoleUser": {"AssumedRoleId": issued.user_id, "Arn": issued.arn},
        }

    def _get_caller_identity(
        self, params: dict[str, Any], identity: Identity, account: str, region: str
    ) -> dict[str, Any]:
        return {"UserId": identity.user_id, "Account": identity.account, "Arn": identity.arn}

    @staticmethod
    def _max_records(params: Mapping[str, Any]) -> int:
        raw = params.get("MaxRecords")
        if raw in (None, ""):
            return 100
        try:
            value = int(raw)
        except (TypeError, ValueError):
            value = -1
        if not 20 <= value <= 100:
            raise ApiError(
                "InvalidParameterValue",
                f"Invalid value {raw} for MaxRecords. Must be between 20 and 100",
            )
        return value

    @staticmethod
    def _page(
        keys: Sequence[tuple[Any, ...]], marker: Any, size: int, bad: Callable[[], ApiError]
    ) -> tuple[int, int, str | None]:
        token = None
        if marker not in (None, ""):
            token = decode_token(str(marker))
            if token is None:
                raise bad()
        start = page_start(keys, token)
        end = min(start + size, len(keys))
        return start, end, encode_token(keys[end]) if end < len(keys) else None

    @staticmethod
    def _proxy_not_found(name: str) -> ApiError:
        return ApiError(
            "DBProxyNotFoundFault",
            f"The specified proxy name {name} doesn't correspond to a proxy owned by your "
            "Amazon Web Services account in the specified Amazon Web Services Region.",
            404,
        )

    @staticmethod
    def _bad_marker() -> ApiError:
        return ApiError("InvalidParameterValue", "The marker is not valid.")

    def _describe_db_proxies(
        self, params: dict[str, Any], identity: Identity, account: str, region: str
    ) -> dict[str, Any]:
        size = self._max_records(params)
        ridx = self.index.region(account, region)
        name = params.get("DBProxyName")
        records: Sequence[ProxyRecord] = ridx.proxies
        keys: Sequence[tuple[Any, ...]] = ridx.proxy_keys
        if name not in (None, ""):
            record = ridx.by_name.get(str(name))
            if record is None:
                raise self._proxy_not_found(str(name))
            records, keys = [record], [(record.name,)]
        start, end, marker = self._page(keys, params.get("Marker"), size, self._bad_marker)
        out: dict[str, Any] = {"DBProxies": [r.item for r in records[start:end]]}
        if marker:
            out["Marker"] = marker
        return out

    def _describe_db_proxy_endpoints(
        self, params: dict[str, Any], identity: Identity, account: str, region: str
    ) -> dict[str, Any]:
        size = self._max_records(params)
        ridx = self.index.region(account, region)
        items: Sequence[dict[str, Any]] = ridx.endpoints
        keys: Sequence[tuple[Any, ...]] = ridx.endpoint_keys
        proxy_name = params.get("DBProxyName")
        endpoint_name = params.get("DBProxyEndpointName")
        if proxy_name not in (None, ""):
            if str(proxy_name) not in ridx.by_name:
                raise self._proxy_not_found(str(proxy_name))
            pairs = [(k, v) for k, v in zip(keys, items, strict=True) if k[0] == proxy_name]
            keys, items = [k for k, _ in pairs], [v for _, v in pairs]
        if endpoint_name not in (None, ""):
            pairs = [(k, v) for k, v in zip(keys, items, strict=True) if k[2] == endpoint_name]
            if not pairs:
                raise ApiError(
                    "DBProxyEndpointNotFoundFault",
                    f"The DB proxy endpoint {endpoint_name} doesn't exist.",
                    404,
                )
            keys, items = [k for k, _ in pairs], [v for _, v in pairs]
        start, end, marker = self._page(keys, params.get("Marker"), size, self._bad_marker)
        out: dict[str, Any] = {"DBProxyEndpoints": list(items[start:end])}
        if marker:
            out["Marker"] = marker
        return out

    def _list_tags_for_resource(
        self, params: dict[str, Any], identity: Identity, account: str, region: str
    ) -> dict[str, Any]:
        arn = str(params.get("ResourceName", ""))
        record = self.index.by_arn.get(arn)
        if record is not None and record.account == account and record.region == region:
            return {"TagList": record.tag_list}
        if arn in self.index.region(account, region).endpoint_arns:
            return {"TagList": []}
        raise ApiError(
            "DBProxyNotFoundFault",
            f"The specified proxy ARN {arn} doesn't correspond to a proxy owned by your "
            "Amazon Web Services account in the specified Amazon Web Services Region.",
            404,
        )

    def _get_resources(
        self, params: dict[str, Any], identity: Identity, account: str, region: str
    ) -> dict[str, Any]:
        def invalid(msg: str) -> ApiError:
            return ApiError("InvalidParameterException", msg)

        per_page = params.get("ResourcesPerPage", 50)
        if (
            isinstance(per_page, bool)
            or not isinstance(per_page, int)
            or not (1 <= per_page <= 100)
        ):
            raise invalid("ResourcesPerPage must be between 1 and 100")
        types = params.get("ResourceTypeFilters") or []
        if not isinstance(types, list):
            raise invalid("ResourceTypeFilters must be a list")
        records: list[ProxyRecord] = []
        if not types or any(t in ("rds", "rds:db-proxy") for t in types):
            records = [r for r in self.index.region(account, region).proxies if r.tag_list]
        arns = params.get("ResourceARNList")
        if arns:
            wanted = set(arns)
            records = [r for r in records if r.arn in wanted]
        tag_filters = params.get("TagFilters") or []
        if not isinstance(tag_filters, list):
            raise invalid("TagFilters must be a list")
        for tf in tag_filters:
            if not isinstance(tf, dict) or "Key" not in tf:
                raise invalid("each TagFilter needs a Key")
            key, values = tf["Key"], tf.get("Values") or []
            records = [
                r for r in records if key in r.tags and (not values or r.tags[key] in values)
            ]
        keys = [(r.name,) for r in records]

        def bad_token() -> ApiError:
            return invalid("The PaginationToken is not valid")

        start, end, token = self._page(keys, params.get("PaginationToken"), per_page, bad_token)
        return {
            "ResourceTagMappingList": [
                {"ResourceARN": r.arn, "Tags": r.tag_list} for r in records[start:end]
            ],
            "PaginationToken": token or "",
        }


_Handler = Callable[[Emulator, dict[str, Any], Identity, str, str], dict[str, Any]]
_HANDLERS: dict[str, _Handler] = {
    "AssumeRole": Emulator._assume_role,
    "GetCallerIdentity": Emulator._get_caller_identity,
    "DescribeDBProxies": Emulator._describe_db_proxies,
    "DescribeDBProxyEndpoints": Emulator._describe_db_proxy_endpoints,
    "ListTagsForResource": Emulator._list_tags_for_resource,
    "GetResources": Emulator._get_resources,
}

# ---------------------------------------------------------------------------------------------
# The aiohttp application.

EMULATOR_KEY = web.AppKey("emulator", Emulator)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status)


def _bad(message: str) -> web.Response:
    return _json({"ok": False, "error": message}, status=400)


async def _health(request: web.Request) -> web.Response:
    return _json({"ok": True})


async def _put_fleet(request: web.Request) -> web.Response:
    emu = request.app[EMULATOR_KEY]
    try:
        fleet = parse_fleet(await request.read())
    except FleetError as e:
        return _bad(str(e))
    emu.set_fleet(fleet)
    return _json({"ok": True, "accounts": len(fleet.accounts), "proxies": fleet.proxy_count})


async def _get_fleet(request: web.Request) -> web.Response:
    return _json(request.app[EMULATOR_KEY].fleet.model_dump(mode="json", exclude_defaults=True))


async def _put_faults(request: web.Request) -> web.Response:
    emu = request.app[EMULATOR_KEY]
    try:
        emu.set_faults(await request.read())
    except FleetError as e:
        return _bad(str(e))
    return _json({"ok": True, "faults": emu.faults.describe()})


async def _get_faults(request: web.Request) -> web.Response:
    return _json(request.app[EMULATOR_KEY].faults.describe())


async def _put_settings(request: web.Request) -> web.Response:
    emu = request.app[EMULATOR_KEY]
    try:
        data = json.loads(await request.read() or b"{}")
    except ValueError:
        return _bad("invalid settings: body must be a JSON object")
    if not isinstance(data, dict):
        return _bad("invalid settings: body must be a JSON object")
    try:
        emu.update_settings(data)
    except FleetError as e:
        return _bad(str(e))
    return _json({"ok": True, **emu.settings()})


async def _get_settings(request: web.Request) -> web.Response:
    return _json(request.app[EMULATOR_KEY].settings())


async def _get_stats(request: web.Request) -> web.Response:
    return _json(request.app[EMULATOR_KEY].stats.snapshot())


async def _reset_stats(request: web.Request) -> web.Response:
    request.app[EMULATOR_KEY].stats.reset()
    return _json({"ok": True})


async def _warm(request: web.Request) -> web.Response:
    emu = request.app[EMULATOR_KEY]
    size = request.query.get("page_size", "100")
    if not size.isdigit() or not 20 <= int(size) <= 100:
        return _bad("page_size must be between 20 and 100")
    t0 = time.perf_counter()
    pages = emu.warm(int(size))
    return _json({"ok": True, "pages": pages, "seconds": round(time.perf_counter() - t0, 3)})


async def _aws(request: web.Request) -> web.StreamResponse:
    return await request.app[EMULATOR_KEY].handle(request)


def build_app(
    fleet: Fleet | Mapping[str, Any] | str | bytes,
    *,
    faults: FaultsArg = (),
    latency_ms: float = 0,
    throttle: ThrottleArg = None,
) -> web.Application:
    """The emulator as an aiohttp application (raises EmulatorUnavailable without moto)."""
    emu = Emulator(parse_fleet(fleet), faults=faults, latency_ms=latency_ms, throttle=throttle)
    app = web.Application(client_max_size=1024**3)
    app[EMULATOR_KEY] = emu
    r = app.router
    r.add_get("/_emulator/health", _health)
    r.add_get("/_emulator/fleet", _get_fleet)
    r.add_put("/_emulator/fleet", _put_fleet)
    r.add_get("/_emulator/faults", _get_faults)
    r.add_put("/_emulator/faults", _put_faults)
    r.add_get("/_emulator/settings", _get_settings)
    r.add_put("/_emulator/settings", _put_settings)
    r.add_get("/_emulator/stats", _get_stats)
    r.add_post("/_emulator/stats/reset", _reset_stats)
    r.add_post("/_emulator/warm", _warm)
    r.add_route("POST", "/{tail:.*}", _aws)
    r.add_route("GET", "/{tail:.*}", _aws)
    return app


async def _start(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    bound = port
    for addr in runner.addresses:
        if isinstance(addr, tuple) and len(addr) >= 2:
            bound = int(addr[1])
            break
    return runner, bound


def _format_url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


async def serve(
    fleet: Fleet | Mapping[str, Any] | str | bytes,
    *,
    host: str = "127.0.0.1",
    port: int = 4566,
    faults: FaultsArg = (),
    latency_ms: float = 0,
    throttle: ThrottleArg = None,
    ready: Callable[[str], None] | None = None,
    stop: asyncio.Event | None = None,
    warm: bool = False,
) -> None:
    """Serve until ``stop`` is set or the task is cancelled; ``ready(url)`` once listening.

    ``warm`` pre-serializes every listing page before listening (see :meth:`Emulator.warm`).
    """
    app = build_app(fleet, faults=faults, latency_ms=latency_ms, throttle=throttle)
    if warm:
        app[EMULATOR_KEY].warm()
    runner, bound = await _start(app, host, port)
    try:
        if ready is not None:
            ready(_format_url(host, bound))
        if stop is None:
            await asyncio.Future()
        else:
            await stop.wait()
    finally:
        await runner.cleanup()


class EmulatorThread:
    """Runs the emulator on 127.0.0.1 (a free port) in a background thread with its own loop.

    Use as a context manager; ``url`` is the endpoint for ``AWS_ENDPOINT_URL``.
    """

    def __init__(
        self,
        fleet: Fleet | Mapping[str, Any] | str | bytes | None = None,
        *,
        faults: FaultsArg = (),
        latency_ms: float = 0,
        throttle: ThrottleArg = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self._app = build_app(
            fleet if fleet is not None else Fleet(),
            faults=faults,
            latency_ms=latency_ms,
            throttle=throttle,
        )
        self.emulator: Emulator = self._app[EMULATOR_KEY]
        self._host = host
        self._port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.url = ""
        self.port = 0

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> EmulatorThread:
        if self._thread is not None:
            raise RuntimeError("emulator already started")
        self._thread = threading.Thread(target=self._run, name="aws-emulator", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout=30):
            raise RuntimeError("the emulator did not start within 30 s")
        if self._error is not None:
            raise RuntimeError(f"the emulator failed to start: {self._error}") from self._error
        return self

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._main())
        finally:
            loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        try:
            runner, bound = await _start(self._app, self._host, self._port)
        except BaseException as e:
            self._error = e
            self._ready.set()
            return
        self.port = bound
        self.url = _format_url(self._host, bound)
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await runner.cleanup()

    def stop(self) -> None:
        loop, stop, thread = self._loop, self._stop, self._thread
        if loop is None or stop is None or thread is None:
            return
        if not loop.is_closed():
            loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=30)
        self._thread = None

    def __enter__(self) -> EmulatorThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- control (thread-safe: runs on the emulator's loop) ---------------------------------

    def _call(self, fn: Callable[[], Any]) -> Any:
        loop = self._loop
        if loop is None or self._thread is None:
            return fn()

        async def run() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), loop).result(timeout=60)

    def set_fleet(self, fleet: Fleet | Mapping[str, Any] | str | bytes) -> None:
        parsed = parse_fleet(fleet)  # validate in the caller's thread
        self._call(lambda: self.emulator.set_fleet(parsed))

    def set_faults(self, faults: FaultsArg) -> None:
        parsed = parse_faults(faults)
        self._call(lambda: self.emulator.set_faults(parsed))

    def set_settings(self, **settings: Any) -> None:
        """``latency_ms=...`` and/or ``throttle={"burst", "rate"} | (burst, rate) | None``."""
        if "throttle" in settings:
            t = parse_throttle(settings["throttle"])
            settings["throttle"] = t.model_dump() if t is not None else None
        self._call(lambda: self.emulator.update_settings(settings))

    def settings(self) -> dict[str, Any]:
        return cast(dict[str, Any], self._call(self.emulator.settings))

    def stats(self) -> dict[str, Any]:
        return cast(dict[str, Any], self._call(self.emulator.stats.snapshot))

    def reset_stats(self) -> None:
        self._call(self.emulator.stats.reset)

    def warm(self, page_size: int = 100) -> int:
        """Pre-serialize all listing pages (see :meth:`Emulator.warm`); returns the count."""
        return cast(int, self._call(lambda: self.emulator.warm(page_size)))

    def env(self, region: str = "us-east-1") -> dict[str, str]:
        """Environment for a client process pointed at this emulator with dummy credentials."""
        return {
            "AWS_ENDPOINT_URL": self.url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": region,
            "AWS_EC2_METADATA_DISABLED": "true",
        }
