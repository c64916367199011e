"""In-process daemon tests' fakes: an AWS source, a slow registry, a leadership the test steers.

Fakes, not patches: each implements the seam the daemon sees (`ProxySource`, `Registry`,
`Leadership`) and records what a test needs to assert on.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from discovery.aws.rds_proxy import FetchedScope
from discovery.core.config import Config, config_from_mapping
from discovery.core.confirm import Answer, Check
from discovery.core.model import Changes, Proxy, Scope
from discovery.output.metrics import Metrics
from discovery.registry.base import Registry, RegistryConflict, RegistryError
from discovery.registry.leader import Leadership
from discovery.registry.memory import MemoryRegistry
from tests.harness.env import TEST_MIN_POLL_INTERVAL_S

ACCOUNT = "111111111111"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/discovery"


def make_config(**overrides: Any) -> Config:
    doc: dict[str, Any] = {
        "discovery_group": "unit",
        "poll_interval": "1h",
        "aws": [{"types": ["rdsproxy"], "regions": ["us-east-1"], "assume_role_arn": ROLE}],
    }
    doc.update(overrides)
    return config_from_mapping(doc, min_poll_interval=TEST_MIN_POLL_INTERVAL_S)


def a_proxy(name: str) -> Proxy:
    return Proxy(
        name=name,
        arn=f"arn:aws:rds:us-east-1:{ACCOUNT}:db-proxy:prx-{name}",
        endpoint=f"{name}.proxy-x.us-east-1.rds.amazonaws.com",
        engine_family="POSTGRESQL",
        status="available",
        require_tls=True,
    )


class FakeSource:
    """A `ProxySource` whose fetch runs `behaviour` and records concurrency and cancellation."""

    def __init__(self, proxies: tuple[Proxy, ...] = (), delay: float = 0.0) -> None:
        self.proxies = proxies
        self.delay = delay
        self.block: asyncio.Event | None = None
        self.started = 0
        self.active = 0
        self.max_active = 0
        self.cancelled = 0
        self.fetching = asyncio.Event()

    async def fetch(self, scope: Scope) -> FetchedScope:
        self.started += 1
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        self.fetching.set()
        try:
            if self.block is not None:
                await self.block.wait()
            if self.delay:
                await asyncio.sleep(self.delay)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            self.active -= 1
        return FetchedScope(account_id=ACCOUNT, proxies=self.proxies)

    async def confirm(self, scope: Scope, check: Check) -> Answer:
        """The targeted reads, answered from `proxies` as they are now."""
        proxy = next((p for p in self.proxies if p.name == check.proxy_name), None)
        if check.kind == "tags":
            return Answer(tags=dict(proxy.tags)) if proxy is not None else Answer(error="gone")
        if check.kind == "endpoint":
            names = {e.name for e in proxy.endpoints} if proxy is not None else set()
            return Answer(exists=check.endpoint_name in names)
        return Answer(exists=proxy is not None)


class SlowApplyRegistry(MemoryRegistry):
    """Like SQLite: the apply runs in a worker thread and takes a while."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds
        self.applying = asyncio.Event()
        self.finished = 0

    async def apply(self, changes: Changes) -> None:
        self.applying.set()
        await asyncio.to_thread(time.sleep, self.seconds)
        await super().apply(changes)
        self.finished += 1


def no_registry(config: Config, path: Path, /, *, leadership: Leadership) -> Registry:
    raise AssertionError("the registry is not reopened in this test")


async def eventually(check: Callable[[], bool], *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        await asyncio.sleep(0.02)


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    assert value is not None, f"no sample {name}{labels}"
    return value


class Lock:
    """The leader lock of one discovery group, shared by the `FakeLeadership`s contending for it."""

    def __init__(self) -> None:
        self.holder: object | None = None


class FakeLeadership:
    """A `Leadership` on a shared `Lock`; `down` makes its database unreachable."""

    def __init__(self, lock: Lock, *, down: str = "", log: list[str] | None = None) -> None:
        self.lock = lock
        self.down = down
        self.log = log if log is not None else []  # what happened, in order
        self._leader = False
        self._last_error = ""

    @property
    def is_leader(self) -> bool:
        return self._leader

    @property
    def last_error(self) -> str:
        return self._last_error

    async def start(self) -> None:
        if self.down:
            raise RegistryError(self.down)
        self.log.append("start")

    async def try_acquire(self) -> bool:
        if self.down:
            self._last_error, self._leader = self.down, False
            return False
        self._last_error = ""
        if self.lock.holder in (None, self):
            self.lock.holder, self._leader = self, True
        return self._leader

    async def check(self) -> bool:
        if self.down:
            self._last_error = self.down
        self._leader = self._leader and not self.down and self.lock.holder is self
        return self._leader

    async def release(self) -> None:
        if self.lock.holder is self:
            self.lock.holder = None
        self._leader = False
        self.log.append("release")


class FencedRegistry(MemoryRegistry):
    """A `MemoryRegistry` whose applies commit only while `leadership` holds the lock.

    `steal_on_apply`: another replica takes the lock just as the apply begins, as if this
    replica's session died between its last check and its write.
    """

    def __init__(self, leadership: FakeLeadership, *, log: list[str] | None = None) -> None:
        super().__init__()
        self.leadership = leadership
        self.steal_on_apply = False
        self.refused = 0
        self.log = log if log is not None else []

    async def apply(self, changes: Changes) -> None:
        if self.steal_on_apply:
            self.leadership.lock.holder = object()
        if self.leadership.lock.holder is not self.leadership:
            self.refused += 1
            raise RegistryConflict("not writing: this replica is not the leader (any more)")
        await super().apply(changes)
        self.log.append("apply")
