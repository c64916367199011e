"""The AWS wire protocol, done by moto's server-side response serializers.

moto is an optional extra, imported lazily: :func:`require_moto` raises
:class:`EmulatorUnavailable` with an install hint when it is missing.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any

__all__ = [
    "MOTO_MISSING_MESSAGE",
    "SERVICE_MODELS",
    "ApiError",
    "EmulatorUnavailable",
    "Reply",
    "Wire",
    "require_moto",
]

MOTO_MISSING_MESSAGE = (
    "the emulator needs the 'emulator' extra: pip install 'rdsproxy-discovery[emulator]'"
)

# Our service key (the SigV4 credential-scope service) -> botocore/moto service model name.
SERVICE_MODELS = {
    "sts": "sts",
    "rds": "rds",
    "tagging": "resourcegroupstaggingapi",
    "organizations": "organizations",
    "account": "account",
}

# An operation of each service whose serializer is used for errors on unknown operations.
_FALLBACK_OPERATION = {
    "sts": "GetCallerIdentity",
    "rds": "DescribeDBProxies",
    "tagging": "GetResources",
    "organizations": "ListRoots",
    "account": "ListRegions",
}

REQUEST_ID_PLACEHOLDER = "00000000-emul-ator0-requ-estid0000000"


class EmulatorUnavailable(RuntimeError):
    """moto (the 'emulator' extra) is not installed."""


def require_moto() -> None:
    if importlib.util.find_spec("moto") is None:
        raise EmulatorUnavailable(MOTO_MISSING_MESSAGE)


@dataclass
class ApiError(Exception):
    """An AWS error answer: code, message and HTTP status."""

    code: str
    message: str
    status: int = 400

    def __str__(self) -> str:
        return f"{self.code} ({self.status}): {self.message}"


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: str

    def with_request_id(self, request_id: str) -> Reply:
        headers = dict(self.headers)
        headers["x-amzn-RequestId"] = request_id
        return Reply(self.status, headers, self.body.replace(REQUEST_ID_PLACEHOLDER, request_id))


class Wire:
    """Serializes results and errors of the emulated operations, one instance per app.

    Serializer instances are cached per (service, operation). They are not thread-safe, so
    each emulator (event loop) has its own :class:`Wire`.
    """

    def __init__(self) -> None:
        require_moto()
        from moto.core.exceptions import ServiceException
        from moto.core.serialize import (
            SerializationContext,
            get_serializer_class,
        )
        from moto.core.utils import get_service_model

        self._get_serializer_class = get_serializer_class
        self._context_cls = SerializationContext
        self._models: dict[str, Any] = {k: get_service_model(v) for k, v in SERVICE_MODELS.items()}
        self._serializers: dict[tuple[str, str], Any] = {}
        self._error_shapes: dict[tuple[str, str, int], Any] = {}

        class EmulatorServiceException(ServiceException):
            """A moto ServiceException carrying the error shape it is serialized with."""

            def __init__(self, code: str, message: str, shape: Any) -> None:
                super().__init__(code, message)
                self.error_shape = shape

        self._exc_cls = EmulatorServiceException

    def has_operation(self, service: str, operation: str) -> bool:
        return operation in self._models[service].operation_names

    def _serializer(self, service: str, operation: str) -> Any:
        key = (service, operation)
        ser = self._serializers.get(key)
        if ser is None:
            model = self._models[service]
            base = self._get_serializer_class(SERVICE_MODELS[service], model.protocol)
            cls = _with_shaped_errors(base)
            ser = cls(
                operation_model=model.operation_model(operation),
                context=self._context_cls(REQUEST_ID_PLACEHOLDER),
            )
            self._serializers[key] = ser
        return ser

    def _error_shape(self, service: str, code: str, status: int) -> Any:
        key = (service, code, status)
        shape = self._error_shapes.get(key)
        if shape is not None:
            return shape
        from moto.core.errors import ErrorShape

        model = self._models[service]
        modelled = None
        for s in model.error_shapes:
            if code in (s.name, s.error_code):
                modelled = s
                break
        error_meta: dict[str, Any] = {"code": code, "httpStatusCode": status}
        if modelled is not None:
            shape_model = dict(modelled._shape_model)
            error_meta = {**shape_model.get("error", {}), **error_meta}
            error_meta["code"] = modelled.error_code or code
            shape_model["error"] = error_meta
            shape = ErrorShape(modelled.name, shape_model, modelled._shape_resolver)
        else:
            error_meta["senderFault"] = status < 500
            shape_model = {"exception": True, "type": "structure", "members": {}}
            shape_model["error"] = error_meta
            if status >= 500:
                shape_model["fault"] = True
            shape = ErrorShape(code, shape_model)
        self._error_shapes[key] = shape
        return shape

    def result(self, service: str, operation: str, result: dict[str, Any]) -> Reply:
        resp = self._serializer(service, operation).serialize(result)
        return _reply(resp)

    def error(self, service: str, operation: str | None, err: ApiError) -> Reply:
        if operation is None or not self.has_operation(service, operation):
            operation = _FALLBACK_OPERATION[service]
        shape = self._error_shape(service, err.code, err.status)
        exc = self._exc_cls(err.code, err.message, shape)
        resp = self._serializer(service, operation).serialize(exc)
        return _reply(resp)


def _reply(resp: Any) -> Reply:
    body = resp["body"]
    if isinstance(body, bytes):
        body = body.decode("utf-8")
    headers = {str(k): str(v) for k, v in resp["headers"].items()}
    return Reply(int(resp["status_code"]), headers, body)


_SHAPED: dict[type, type] = {}


def _with_shaped_errors(base: type) -> type:
    """A subclass of a moto serializer that serializes an error with the shape it carries.

    moto looks error shapes up in the service model (and warns when a code is not modelled,
    e.g. ``Throttling`` or ``AccessDenied`` for RDS); we supply the shape ourselves so that
    unmodelled codes get the HTTP status we want and no warning is emitted.
    """
    cls = _SHAPED.get(base)
    if cls is None:

        def _serialize_error(self: Any, resp: Any, error: Exception) -> Any:
            shape = error.error_shape  # type: ignore[attr-defined]
            serialized = self.MAP_TYPE()
            self._serialize_error_metadata(serialized, error, shape)
            return self._serialized_error_to_response(resp, error, shape, serialized)

        cls = type(f"Emulator{base.__name__}", (base,), {"_serialize_error": _serialize_error})
        _SHAPED[base] = cls
    return cls
