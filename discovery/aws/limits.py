"""Concurrency per (account, region): AWS throttles there, so that is where calls are limited.

`Caller` holds one `KeyLimit` per key with calls in flight; the key travels with a scoped
client's methods (`clients.ScopedClient.limit_key`) and, during a call, in `CURRENT_LIMIT_KEY`
for botocore's handlers that run inside it (the throttle observer).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from contextvars import ContextVar

# The (account, region) whose call the current task is making, for botocore's handlers
# (the throttle observer) that run inside the call; None outside of one.
CURRENT_LIMIT_KEY: ContextVar[tuple[str, str] | None] = ContextVar("limit_key", default=None)

THROTTLE_BACKOFF_S = 1.0  # a key's limit halves at most once per this many seconds


class KeyLimit:
    """One (account, region)'s concurrency: at most `ceiling` calls in flight, halved when AWS
    throttles (at most once a second), grown back by one after `limit` calls that succeed.

    AWS throttles per account and region (RDS: a burst of ~300, then ~12 calls/s), so a storm
    in one account slows that account alone; botocore's own backoff still spaces the retries.
    """

    __slots__ = ("_halved_at", "_successes", "_waiters", "active", "ceiling", "limit")

    def __init__(self, ceiling: int) -> None:
        self.ceiling = ceiling
        self.limit = ceiling
        self.active = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._successes = 0
        self._halved_at = -THROTTLE_BACKOFF_S

    @property
    def idle(self) -> bool:
        """Nothing in flight or waiting, and fully recovered: safe to forget."""
        return self.active == 0 and not self._waiters and self.limit == self.ceiling

    async def acquire(self) -> None:
        if self.active < self.limit and not self._waiters:
            self.active += 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # granted, then cancelled before it ran: give the slot back
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            raise

    def release(self) -> None:
        self.active -= 1
        self._wake()

    def succeeded(self) -> None:
        if self.limit >= self.ceiling:
            return
        self._successes += 1
        if self._successes >= self.limit:
            self.limit += 1
            self._successes = 0
            self._wake()

    def throttled(self) -> None:
        now = time.monotonic()
        if now - self._halved_at < THROTTLE_BACKOFF_S:
            return
        self._halved_at = now
        self.limit = max(1, self.limit // 2)
        self._successes = 0

    def _wake(self) -> None:
        while self._waiters and self.active < self.limit:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self.active += 1
                waiter.set_result(None)
