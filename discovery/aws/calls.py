"""Every AWS call goes through here: one wrapper, one paging loop, one error→fix table.

Library errors are caught at this boundary and re-raised as `FetchError`, chained, naming the
IAM action that failed and the fix. The cycle shows the message; `doctor` reads the same
error's `action`, `code` and `kind` to say which single call failed and why. Paging refuses a
repeated token and a page without its result key, so a misbehaving endpoint fails the call
instead of looping or reading "no more".
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from enum import StrEnum
from typing import Any

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    ProfileNotFound,
)
from botocore.parsers import ResponseParserError

from discovery.aws.limits import CURRENT_LIMIT_KEY, KeyLimit

PAGE_SIZE = 100


class ErrorKind(StrEnum):
    """What a failed call means for the operator, whatever the service said it with."""

    DENIED = "denied"
    THROTTLED = "throttled"
    CREDENTIALS_REJECTED = "credentials-rejected"
    NO_CREDENTIALS = "no-credentials"
    NO_PROFILE = "no-profile"
    UNREACHABLE = "unreachable"
    MALFORMED = "malformed"
    NOT_FOUND = "not-found"  # a targeted read of a named proxy/endpoint that does not exist
    ERROR = "error"


# The one error table: AWS error code → kind. Doctor's checks and the cycle's messages both
# classify through it, so they cannot disagree about what a code means.
ERROR_KINDS: Mapping[str, ErrorKind] = {
    **dict.fromkeys(
        ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "UnauthorizedException"),
        ErrorKind.DENIED,
    ),
    **dict.fromkeys(
        (
            "Throttling",
            "ThrottlingException",
            "ThrottledException",
            "RequestThrottledException",
            "TooManyRequestsException",
            "RequestLimitExceeded",
            "SlowDown",
        ),
        ErrorKind.THROTTLED,
    ),
    **dict.fromkeys(
        (
            "InvalidClientTokenId",
            "ExpiredToken",
            "ExpiredTokenException",
            "SignatureDoesNotMatch",
            "UnrecognizedClientException",
        ),
        ErrorKind.CREDENTIALS_REJECTED,
    ),
    **dict.fromkeys(("DBProxyNotFoundFault", "DBProxyEndpointNotFoundFault"), ErrorKind.NOT_FOUND),
}
DENIED_CODES = frozenset(c for c, k in ERROR_KINDS.items() if k is ErrorKind.DENIED)
THROTTLE_CODES = frozenset(c for c, k in ERROR_KINDS.items() if k is ErrorKind.THROTTLED)

# The fix a cycle's message ends with, by kind ("" when the error text is all there is).
KIND_FIXES: Mapping[ErrorKind, str] = {
    ErrorKind.DENIED: "grant {action} to the identity used for this matcher",
    ErrorKind.THROTTLED: "still throttled after retries; lower concurrency or scan less often",
    ErrorKind.CREDENTIALS_REJECTED: "the credentials are expired or invalid; refresh them",
}
ASSUME_ROLE_DENIED_FIX = (
    "check the role's trust policy allows this identity and that "
    "external_id matches the sts:ExternalId condition"
)

CallObserver = Callable[[str, str, int], None]
"""(operation, outcome "ok"|"error"|"denied"|"throttled"|"not-found", retries) → None;
counted by the shell."""


def error_kind(code: str) -> ErrorKind:
    return ERROR_KINDS.get(code, ErrorKind.ERROR)


class FetchError(Exception):
    """An AWS call failed after retries; the message names the action and the fix.

    `action` is the IAM action ("rds:DescribeDBProxies"), `code` the AWS error code ("" when
    the failure was not an AWS answer) and `kind` what it means; the library error is the
    `__cause__`. `account_id` is the scope's account when it is known (so the plan freezes
    only that account's resources in the region, not every account's), "" otherwise.
    """

    def __init__(
        self,
        message: str,
        *,
        action: str = "",
        code: str = "",
        kind: ErrorKind = ErrorKind.ERROR,
        account_id: str = "",
    ) -> None:
        super().__init__(message)
        self.action = action
        self.code = code
        self.kind = kind
        self.account_id = account_id


def _ignore_call(operation: str, outcome: str, retries: int) -> None:
    return None


_OUTCOMES: Mapping[ErrorKind, str] = {
    ErrorKind.DENIED: "denied",
    ErrorKind.THROTTLED: "throttled",
    ErrorKind.NOT_FOUND: "not-found",  # a confirming read's answer for a gone resource
}


class Caller:
    """The call wrapper: bounded concurrency, one observation per call, errors mapped.

    Two limits: `max_concurrency` calls in flight in all, and `per_key_concurrency` per
    (account, region) — the `limit_key` a scoped client's method carries (`clients.ScopedClient`);
    a method without one counts against the global limit only. A key's state lives while it has
    calls in flight or waiting (or is recovering from throttling), so memory follows the calls
    in flight, not the scopes ever seen.
    """

    def __init__(
        self,
        *,
        max_concurrency: int,
        on_call: CallObserver = _ignore_call,
        per_key_concurrency: int | None = None,
    ) -> None:
        self._limit = asyncio.Semaphore(max_concurrency)
        self._per_key = per_key_concurrency or max_concurrency
        self._keys: dict[tuple[str, str], KeyLimit] = {}
        self._on_call = on_call

    @property
    def tracked_keys(self) -> int:
        return len(self._keys)

    def throttled(self, key: tuple[str, str] | None) -> None:
        """AWS throttled a call of `key`: slow that (account, region) down."""
        limit = self._keys.get(key) if key is not None else None
        if limit is not None:
            limit.throttled()

    async def call(
        self, action: str, method: Callable[..., Awaitable[Any]], **params: Any
    ) -> Mapping[str, Any]:
        key: tuple[str, str] | None = getattr(method, "limit_key", None)
        if key is None:
            async with self._limit:
                return await self._call(action, method, params)
        limit = self._keys.get(key)
        if limit is None:
            limit = self._keys[key] = KeyLimit(self._per_key)
        await limit.acquire()
        try:
            async with self._limit:
                token = CURRENT_LIMIT_KEY.set(key)
                try:
                    response = await self._call(action, method, params)
                finally:
                    CURRENT_LIMIT_KEY.reset(token)
            limit.succeeded()
            return response
        finally:
            limit.release()
            if limit.idle and self._keys.get(key) is limit:
                del self._keys[key]

    async def _call(
        self, action: str, method: Callable[..., Awaitable[Any]], params: dict[str, Any]
    ) -> Mapping[str, Any]:
        operation = action.split(":", 1)[1]
        try:
            response: Mapping[str, Any] = await method(**params)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", "Unknown"))
            retries = int(exc.response.get("ResponseMetadata", {}).get("RetryAttempts", 0))
            kind = error_kind(code)
            self._on_call(operation, _OUTCOMES.get(kind, "error"), retries)
            raise FetchError(
                explain(action, code, str(error.get("Message", ""))),
                action=action,
                code=code,
                kind=kind,
            ) from exc
        except NoCredentialsError as exc:
            self._on_call(operation, "error", 0)
            raise FetchError(
                f"{action}: no AWS credentials found; provide them through the environment, "
                "shared credentials files, or an instance/IRSA role",
                action=action,
                kind=ErrorKind.NO_CREDENTIALS,
            ) from exc
        except ResponseParserError as exc:
            # A truncated or garbled body. botocore's parser error is not a BotoCoreError:
            # uncaught, it would fail the whole cycle instead of this one scope.
            self._on_call(operation, "error", 0)
            raise FetchError(
                f"{action}: malformed response (AWS's answer could not be parsed); "
                f"retry later: {_first_line(str(exc))}",
                action=action,
                kind=ErrorKind.MALFORMED,
            ) from exc
        except (TimeoutError, BotoCoreError, OSError) as exc:
            self._on_call(operation, "error", 0)
            raise FetchError(
                f"{action} failed: {type(exc).__name__}: {exc}",
                action=action,
                kind=library_error_kind(exc),
            ) from exc
        retries = int(response.get("ResponseMetadata", {}).get("RetryAttempts", 0))
        self._on_call(operation, "ok", retries)
        return response

    async def pages(
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
            response = await self.call(action, method, **call_params)
            if result_key not in response:
                # botocore turns a truncated JSON body into {}: never read that as "no more".
                raise FetchError(
                    f"{action}: malformed response (no {result_key}); retry later",
                    action=action,
                    kind=ErrorKind.MALFORMED,
                )
            items.extend(response[result_key])
            token = str(response.get(token_out) or "")
            if not token:
                return items
            if token in seen:
                raise FetchError(
                    f"{action}: AWS returned the same page token twice ({token!r})",
                    action=action,
                    kind=ErrorKind.MALFORMED,
                )
            seen.add(token)


def library_error_kind(exc: BaseException) -> ErrorKind:
    """What a failure that is not an AWS answer (no error code) means."""
    if isinstance(exc, EndpointConnectionError):
        return ErrorKind.UNREACHABLE
    if isinstance(exc, ProfileNotFound):  # AWS_PROFILE names a profile no file has
        return ErrorKind.NO_PROFILE
    # botocore's credential-chain errors (partial keys, a failing credential_process, SSO)
    # share no base class beyond BotoCoreError; their messages all name the credentials.
    if isinstance(exc, BotoCoreError) and "credential" in str(exc).lower():
        return ErrorKind.NO_CREDENTIALS
    return ErrorKind.ERROR


def explain(action: str, code: str, message: str) -> str:
    """The message of a failed call: what AWS said, then the fix from the table."""
    text = f"{action} failed: {code}: {message}".rstrip(": ")
    kind = error_kind(code)
    if kind is ErrorKind.DENIED and action == "sts:AssumeRole":
        return f"{text} — {ASSUME_ROLE_DENIED_FIX}"
    fix = KIND_FIXES.get(kind, "")
    return f"{text} — {fix.format(action=action)}" if fix else text


def _first_line(text: str) -> str:
    """botocore's parser errors carry the whole body after the first line; keep the line."""
    return text.split("\n", 1)[0].strip().rstrip(":")
