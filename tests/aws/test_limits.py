"""Caller's limits: per (account, region) under a global ceiling, halved when AWS throttles."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from discovery.aws import limits
from discovery.aws.calls import Caller
from discovery.aws.limits import KeyLimit


class Keyed:
    """A fake API method carrying a limit key (as a ScopedClient's methods do)."""

    def __init__(self, key: tuple[str, str], body: Callable[[], Awaitable[Any]]) -> None:
        self.limit_key = key
        self._body = body

    async def __call__(self, **params: Any) -> Any:
        return await self._body()


async def test_calls_are_limited_per_account_region_and_in_all() -> None:
    caller = Caller(max_concurrency=5, per_key_concurrency=2)
    gate = asyncio.Event()
    active: dict[tuple[str, str], int] = {}
    peak: dict[str, int] = {"all": 0}
    peak_key: dict[tuple[str, str], int] = {}

    def method(key: tuple[str, str]) -> Keyed:
        async def body() -> dict[str, Any]:
            active[key] = active.get(key, 0) + 1
            peak_key[key] = max(peak_key.get(key, 0), active[key])
            peak["all"] = max(peak["all"], sum(active.values()))
            await gate.wait()
            active[key] -= 1
            return {}

        return Keyed(key, body)

    keys = [("111111111111", r) for r in ("us-east-1", "eu-west-1", "ap-south-1", "sa-east-1")]
    tasks = [
        asyncio.ensure_future(caller.call("rds:DescribeDBProxies", method(k)))
        for k in keys
        for _ in range(4)
    ]
    for _ in range(20):
        await asyncio.sleep(0)  # let every call take its slot or queue
    assert peak["all"] == 5  # the global ceiling
    assert max(peak_key.values()) == 2  # per (account, region)
    gate.set()
    await asyncio.gather(*tasks)
    assert max(peak_key.values()) == 2
    assert caller.tracked_keys == 0  # no state left for keys with nothing in flight


async def test_throttling_halves_a_keys_limit_once_a_second_and_successes_restore_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [100.0]
    monkeypatch.setattr(limits.time, "monotonic", lambda: now[0])
    limit = KeyLimit(16)
    limit.throttled()
    limit.throttled()  # the same storm: halved once
    assert limit.limit == 8
    now[0] += 1.5
    limit.throttled()
    assert limit.limit == 4
    assert not limit.idle  # recovering: kept
    for _ in range(4 + 5 + 6 + 7 + 8 + 9 + 10 + 11 + 12 + 13 + 14 + 15):
        limit.succeeded()
    assert limit.limit == 16
    assert limit.idle


async def test_a_cancelled_waiter_gives_its_slot_back() -> None:
    limit = KeyLimit(1)
    await limit.acquire()
    waiter = asyncio.ensure_future(limit.acquire())
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    limit.release()
    assert limit.idle
    await asyncio.wait_for(limit.acquire(), timeout=5)  # the slot is free, not leaked
    assert limit.active == 1


async def test_a_throttle_seen_during_a_call_slows_its_key() -> None:
    caller = Caller(max_concurrency=10, per_key_concurrency=8)
    key = ("111111111111", "us-east-1")
    seen: list[KeyLimit] = []

    async def body() -> dict[str, Any]:
        # What AWSClients' needs-retry observer does when botocore sees a throttling answer.
        caller.throttled(limits.CURRENT_LIMIT_KEY.get())
        seen.append(caller._keys[key])
        return {}

    await caller.call("rds:DescribeDBProxies", Keyed(key, body))
    assert seen[0].limit == 4
