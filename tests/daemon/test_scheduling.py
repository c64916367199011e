"""The daemon in-process, with a fake AWS source and the in-memory registry: scheduling, overlap,
stopping mid-fetch and mid-apply, readiness, reload. Real APScheduler, real event loop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from discovery.core.config import Config
from discovery.core.model import Changes
from discovery.daemon.backend import GuardedRegistry
from discovery.daemon.daemon import Daemon
from discovery.daemon.scheduler import JOB_ID, make_trigger
from discovery.output.logs import Redactor
from discovery.output.metrics import Metrics
from discovery.registry.base import Registry, RegistryError
from discovery.registry.leader import Leadership
from discovery.registry.memory import MemoryRegistry
from discovery.registry.sqlite_leader import SQLiteLeaderLock
from tests.daemon.inprocess import (
    ACCOUNT,
    ROLE,
    FakeSource,
    SlowApplyRegistry,
    a_proxy,
    eventually,
    make_config,
    no_registry,
    sample,
)
from tests.daemon.openers import RegistryOpener, backend_opener


@pytest.fixture
async def running() -> AsyncIterator[Callable[..., Awaitable[Daemon]]]:
    """A factory for started daemons; each is stopped at the end of the test."""
    started: list[Daemon] = []

    async def start(
        config: Config,
        source: FakeSource,
        registry: Registry | None = None,
        *,
        metrics: Metrics | None = None,
        config_path: Path = Path("unused.yaml"),
        open_registry: RegistryOpener = no_registry,
    ) -> Daemon:
        daemon = Daemon(
            config=config,
            config_path=config_path,
            source=source,
            registry=registry if registry is not None else MemoryRegistry(),
            open_backend=backend_opener(open_registry),
            metrics=metrics or Metrics(),
            redactor=Redactor(),
        )
        started.append(daemon)
        await daemon.start()
        return daemon

    yield start
    for daemon in started:
        await daemon.stop()


async def test_the_first_cycle_runs_at_once(running: Callable[..., Awaitable[Daemon]]) -> None:
    source = FakeSource()
    daemon = await running(make_config(poll_interval="1h"), source)
    await eventually(lambda: daemon.ready()[0], timeout=10, what="the first cycle")
    assert source.started == 1
    job = daemon.scheduler.get_job(JOB_ID) if daemon.scheduler else None
    assert job is not None and job.next_run_time > datetime.now(UTC) + timedelta(minutes=59)


def test_the_interval_gets_a_fresh_jitter_each_time() -> None:
    config = make_config(poll_interval="5m")  # default jitter: 10% of the interval
    assert config.poll_jitter_seconds == 30
    trigger = make_trigger(config)
    assert trigger.jitter == 30
    now = datetime.now(UTC)
    fire = now
    gaps = []
    for _ in range(200):
        nxt = trigger.get_next_fire_time(fire, now)
        gaps.append((nxt - fire).total_seconds())
        fire = nxt
    assert all(300 <= gap <= 330 for gap in gaps)
    assert len({round(gap, 3) for gap in gaps}) > 100  # random, not a fixed offset
    assert make_trigger(make_config(poll_interval="5m", poll_jitter="0s")).jitter is None


async def test_a_late_cycle_is_skipped_and_counted_never_run_alongside(
    running: Callable[..., Awaitable[Daemon]],
) -> None:
    metrics = Metrics()
    source = FakeSource(delay=0.35)  # longer than the interval
    daemon = await running(
        make_config(poll_interval="100ms", poll_jitter="0s"), source, metrics=metrics
    )
    await eventually(
        lambda: (
            sample(metrics, "rdsproxy_discovery_cycles_skipped_total") >= 3
            and sample(metrics, "rdsproxy_discovery_cycles_total", result="ok") >= 2
        ),
        timeout=15,
        what="skipped and completed cycles",
    )
    assert source.max_active == 1  # one scope, so more than one fetch means two cycles
    assert daemon.status()["cycles"]["skipped"] == sample(
        metrics, "rdsproxy_discovery_cycles_skipped_total"
    )


async def test_stop_cancels_a_fetch_at_once(running: Callable[..., Awaitable[Daemon]]) -> None:
    source = FakeSource()
    source.block = asyncio.Event()  # never set: the fetch hangs like a dead endpoint
    registry = MemoryRegistry()
    metrics = Metrics()
    daemon = await running(make_config(), source, registry, metrics=metrics)
    await asyncio.wait_for(source.fetching.wait(), timeout=10)
    began = time.monotonic()
    await daemon.stop()
    assert time.monotonic() - began < 2
    assert source.cancelled == 1
    assert registry.applied == []
    for result in ("ok", "partial", "error"):
        assert sample(metrics, "rdsproxy_discovery_cycles_total", result=result) == 0
    assert daemon.ready() == (False, "stopping")


async def test_stop_lets_a_started_apply_finish(
    running: Callable[..., Awaitable[Daemon]],
) -> None:
    source = FakeSource(proxies=(a_proxy("p1"), a_proxy("p2")))
    registry = SlowApplyRegistry(seconds=0.5)
    metrics = Metrics()
    daemon = await running(make_config(), source, registry, metrics=metrics)
    await asyncio.wait_for(registry.applying.wait(), timeout=10)
    await daemon.stop()
    assert registry.finished == 1
    assert len(registry.applied) == 1 and len(registry.applied[0].create) == 2
    assert sample(metrics, "rdsproxy_discovery_cycles_total", result="ok") == 1
    assert sample(metrics, "rdsproxy_discovery_changes_applied_total", action="create") == 2
    assert registry.closed


async def test_a_cancelled_cycle_never_abandons_its_apply() -> None:
    inner = SlowApplyRegistry(seconds=0.3)
    guarded = GuardedRegistry(inner)
    from discovery.core.model import AWSInfo, Resource

    resource = Resource(
        name="r",
        description="",
        labels={},
        protocol="postgres",
        uri="h:5432",
        aws=AWSInfo(
            region="us-east-1", account_id=ACCOUNT, rdsproxy_name="r", rdsproxy_resource_id=""
        ),
    )
    cycle = asyncio.create_task(guarded.apply(Changes(create=(resource,))))
    await asyncio.wait_for(inner.applying.wait(), timeout=10)
    assert guarded.applying
    cycle.cancel()  # what stop() would do if the race put it mid-apply
    with pytest.raises(asyncio.CancelledError):
        await cycle
    await guarded.drain()
    assert inner.finished == 1 and [s.resource.name for s in await inner.list_resources()] == ["r"]
    assert guarded.reachable is True


async def test_readiness_needs_a_completed_cycle_and_a_reachable_registry(
    running: Callable[..., Awaitable[Daemon]],
) -> None:
    class Flaky(MemoryRegistry):
        down = True

        async def list_resources(self) -> Any:
            if self.down:
                raise RegistryError("cannot open registry /nowhere/discovery.db")
            return await super().list_resources()

    registry = Flaky()
    metrics = Metrics()
    daemon = await running(
        make_config(poll_interval="100ms", poll_jitter="0s"),
        FakeSource(),
        registry,
        metrics=metrics,
    )
    await eventually(
        lambda: sample(metrics, "rdsproxy_discovery_cycles_total", result="error") >= 1,
        timeout=10,
        what="a failed cycle",
    )
    ready, why = daemon.ready()
    assert not ready and "registry unreachable" in why and "/nowhere" in why
    assert sample(metrics, "rdsproxy_discovery_registry_up") == 0
    assert daemon.status()["last_cycle"]["result"] == "error"
    assert daemon.live() == (True, "ok")

    registry.down = False
    await eventually(lambda: daemon.ready()[0], timeout=10, what="readiness")
    assert sample(metrics, "rdsproxy_discovery_registry_up") == 1

    registry.down = True
    await eventually(lambda: not daemon.ready()[0], timeout=10, what="unreadiness")


async def test_reload_takes_a_good_config_from_the_next_cycle(
    running: Callable[..., Awaitable[Daemon]], tmp_path: Path
) -> None:
    path = tmp_path / "discovery.yaml"
    first = make_config(poll_interval="1h")
    path.write_text(
        yaml.safe_dump(
            {
                "discovery_group": "unit",
                "poll_interval": "1h",
                "aws": [{"types": ["rdsproxy"], "regions": ["us-east-1"], "assume_role_arn": ROLE}],
            }
        )
    )
    opened: list[Config] = []

    def open_registry(config: Config, config_path: Path, /, *, leadership: Leadership) -> Registry:
        assert isinstance(leadership, SQLiteLeaderLock)  # the wiring's elector for SQLite
        opened.append(config)
        return MemoryRegistry()

    metrics = Metrics()
    daemon = await running(
        first, FakeSource(), metrics=metrics, config_path=path, open_registry=open_registry
    )
    await eventually(lambda: daemon.ready()[0], timeout=10, what="the first cycle")

    path.write_text("discovery_group: unit\naws: []\n")
    assert daemon.reload() is False
    assert daemon.config is first
    assert sample(metrics, "rdsproxy_discovery_config_reloads_total", result="rejected") == 1

    path.write_text(
        yaml.safe_dump(
            {
                "discovery_group": "unit",
                "poll_interval": "2h",
                "poll_jitter": "1m",
                "aws": [{"types": ["rdsproxy"], "regions": ["eu-west-1"]}],
                "registry": {"backend": "sqlite", "path": "other.db"},
            }
        )
    )
    assert daemon.reload() is True
    assert daemon.config.poll_interval == 7200
    assert [c.registry.path for c in opened] == ["other.db"]
    assert sample(metrics, "rdsproxy_discovery_poll_interval_seconds") == 7200
    job = daemon.scheduler.get_job(JOB_ID) if daemon.scheduler else None
    assert job is not None
    assert job.trigger.interval_length == 7200 and job.trigger.jitter == 60
