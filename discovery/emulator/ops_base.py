"""What every AWS operation handler sees, and the keyset paging that RDS and tagging share.

A handler is a plain function over the emulator's current state (a :class:`World`): it checks
the request parameters, reads the fleet index or issues credentials, and returns the result
that moto's serializer puts on the wire, or raises :class:`ApiError`. Handlers know nothing of
HTTP, faults, throttling or the reply cache: the dispatcher (:mod:`.dispatch`) does those once for
every operation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from .state import CredentialStore, FleetIndex, Identity, decode_token, encode_token, page_start
from .wire import ApiError

__all__ = ["Handler", "World", "page"]


class World(Protocol):
    """The emulator state a handler reads: the fleet index and the credentials it issued."""

    @property
    def index(self) -> FleetIndex: ...

    @property
    def credentials(self) -> CredentialStore: ...


# (world, request parameters, caller identity, account, region) -> result for the serializer.
Handler = Callable[[World, dict[str, Any], Identity, str, str], dict[str, Any]]


def page(
    keys: Sequence[tuple[Any, ...]], marker: Any, size: int, bad: Callable[[], ApiError]
) -> tuple[int, int, str | None]:
    """The slice ``[start, end)`` of ``keys`` that one page covers, and the next page's token.

    ``bad`` builds the service's own error for a token it did not issue.
    """
    token = None
    if marker not in (None, ""):
        token = decode_token(str(marker))
        if token is None:
            raise bad()
    start = page_start(keys, token)
    end = min(start + size, len(keys))
    return start, end, encode_token(keys[end]) if end < len(keys) else None
