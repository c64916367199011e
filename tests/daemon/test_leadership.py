"""The daemon and its `Leadership`, in-process: only the leader runs cycles, a follower stays
ready and takes over at once, a lost lock stops the cycle (`fenced`), a reload changes the
elector, stopping releases it after the apply. Fake leadership and registry, real scheduler.

The same behaviour against real PostgreSQL and real processes: tests/daemon/test_replicas.py.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

import discovery.daemon.election
from discovery.core.config import Config
from discovery.daemon.daemon import Daemon
from discovery.daemon.election import election_interval
from discovery.daemon.scheduler import JOB_ID
from discovery.output.logs import Redactor
from discovery.output.metrics import Metrics
from discovery.registry.base import Registry
from discovery.registry.leader import Leadership
from discovery.registry.memory import MemoryRegistry
from tests.daemon.inprocess import (
    ROLE,
    FakeLeadership,
    FakeSource,
    FencedRegistry,
    Lock,
    SlowApplyRegistry,
    a_proxy,
    eventually,
    make_config,
    no_registry,
    sample,
)
from tests.daemon.openers import backend_opener

# Election steps every 50 ms whatever the poll interval, so that a test with a poll interval of
# an hour shows a takeover or a loss that did not wait for the schedule.
STEP_S = 0.05


@pytest.fixture(autouse=True)
def fast_election(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(discovery.daemon.election, "ELECTION_INTERVAL_MAX_S", STEP_S)


@pytest.fixture
async def running() -> AsyncIterator[Callable[..., Awaitable[Daemon]]]:
    started: list[Daemon] = []

    async def start(
        config: Config,
        source: FakeSource,
        registry: Registry,
        leadership: Leadership,
        *,
        metrics: Metrics | None = None,
        config_path: Path = Path("unused.yaml"),
        open_registry: Any = no_registry,
        open_leadership: Callable[[Config, Path], Leadership] | None = None,
    ) -> Daemon:
        def no_leadership(config: Config, path: Path) -> Leadership:
            raise AssertionError("no new elector in this test")

        daemon = Daemon(
            config=config,
            config_path=config_path,
            source=source,
            registry=registry,
            open_backend=backend_opener(open_registry, open_leadership or no_leadership),
            metrics=metrics or Metrics(),
            leadership=leadership,
            redactor=Redactor(),
        )
        started.append(daemon)
        await daemon.start()
        return daemon

    yield start
    for daemon in started:
        await daemon.stop()


def cycles(metrics: Metrics) -> dict[str, float]:
    return {
        result: sample(metrics, "rdsproxy_discovery_cycles_total", result=result)
        for result in ("ok", "partial", "error", "fenced")
    }


async def test_a_follower_runs_no_cycle_is_ready_and_says_it_follows(
    running: Callable[..., Awaitable[Daemon]],
) -> None:
    lock = Lock()
    lock.holder = other = object()  # another replica leads
    source = FakeSource(proxies=(a_proxy("p1"),))
    registry = MemoryRegistry()
    metrics = Metrics()
    daemon = await running(
        make_config(poll_interval="200ms", poll_jitter="0s"),
        source,
        registry,
        FakeLeadership(lock),
        metrics=metrics,
    )
    await eventually(lambda: daemon.ready()[0], timeout=10, what="the follower to be ready")
    assert "following the leader of discovery group 'unit'" in daemon.ready()[1]
    await asyncio.sleep(1.0)  # five poll intervals, twenty election steps

    assert lock.holder is other
    assert source.started == 0 and registry.applied == []
    assert cycles(metrics) == {"ok": 0, "partial": 0, "error": 0, "fenced": 0}
    assert sample(metrics, "rdsproxy_discovery_leader") == 0
    assert sample(metrics, "rdsproxy_discovery_registry_up") == 1  # it reads the registry
    status = daemon.status()
    assert status["role"] == "follower"
    assert status["leadership"]["elected"] is True
    assert status["leadership"]["last_error"] == ""
    assert status["cycles"] == {
        "completed": 0,
        "skipped": 0,
        "running": None,
        "next_at": status["cycles"]["next_at"],
    }
    assert status["last_cycle"] is None
    assert daemon.live() == (True, "ok")


async def test_a_follower_takes_over_at_once_when_the_lock_is_free_and_stays_ready(
    running: Callable[..., Awaitable[Daemon]],
) -> None:
    lock = Lock()
    lock.holder = object()
    source = FakeSource(proxies=(a_proxy("p1"),), delay=0.3)
    registry = MemoryRegistry()
    metrics = Metrics()
    # An hour between cycles: a cycle within seconds can only be the takeover's own.
    daemon = await running(
        make_config(poll_interval="1h"), source, registry, FakeLeadership(lock), metrics=metrics
    )
    await eventually(lambda: daemon.ready()[0], timeout=10, what="the follower to be ready")
    assert source.started == 0

    lock.holder = None  # the leader died: the server freed its lock
    readiness: list[bool] = []

    def leading_and_done() -> bool:
        readiness.append(daemon.ready()[0])
        return sample(metrics, "rdsproxy_discovery_cycles_total", result="ok") == 1

    await eventually(leading_and_done, timeout=5, what="the takeover and its first cycle")
    assert all(readiness), "a follower that takes over must not turn unready meanwhile"
    assert sample(metrics, "rdsproxy_discovery_leader") == 1
    assert [s.resource.name for s in await registry.list_resources()] == [
        "p1-rdsproxy-us-east-1-111111111111"
    ]
    status = daemon.status()
    assert status["role"] == "leader"
    job = daemon.scheduler.get_job(JOB_ID) if daemon.scheduler else None
    assert job is not None and (job.next_run_time - datetime.now(UTC)).total_seconds() > 3000
    await asyncio.sleep(0.5)
    assert source.started == 1  # exactly one takeover cycle, not one per election step


async def test_a_leader_that_loses_its_lock_mid_fetch_stops_the_cycle_fenced(
    running: Callable[..., Awaitable[Daemon]], caplog: pytest.LogCaptureFixture
) -> None:
    lock = Lock()
    leadership = FakeLeadership(lock)
    registry = FencedRegistry(leadership)
    source = FakeSource(proxies=(a_proxy("p1"),))
    metrics = Metrics()
    config = make_config(
        poll_interval="1h",
        aws=[{"types": ["rdsproxy"], "regions": ["us-east-1"], "assume_role_arn": ROLE}],
    )
    daemon = await running(config, source, registry, leadership, metrics=metrics)
    await eventually(lambda: daemon.ready()[0], timeout=10, what="the first cycle")
    assert sample(metrics, "rdsproxy_discovery_owned_resources") == 1
    assert (
        sample(metrics, "rdsproxy_discovery_scope_up", account="111111111111", region="us-east-1")
        == 1
    )

    # The next cycle hangs in its fetch; meanwhile another replica takes the lock (this one's
    # session died).
    source.proxies = (a_proxy("p1"), a_proxy("p2"))
    source.block = asyncio.Event()
    source.fetching.clear()
    assert daemon.scheduler is not None
    daemon.scheduler.modify_job(JOB_ID, next_run_time=datetime.now(UTC))
    await asyncio.wait_for(source.fetching.wait(), timeout=10)
    caplog.set_level(logging.INFO, logger="discovery.daemon")
    lock.holder = object()

    await eventually(
        lambda: sample(metrics, "rdsproxy_discovery_cycles_total", result="fenced") == 1,
        timeout=5,
        what="the cycle to be fenced",
    )
    assert source.cancelled == 1  # its AWS calls were stopped, not left to run
    assert registry.refused == 0  # it never even tried to write
    assert [s.resource.name for s in await registry.list_resources()] == [
        "p1-rdsproxy-us-east-1-111111111111"
    ]
    assert sample(metrics, "rdsproxy_discovery_leader") == 0
    assert cycles(metrics) == {"ok": 1, "partial": 0, "error": 0, "fenced": 1}
    # A follower exports no last-cycle values: `max` across replicas is the leader's.
    assert sample(metrics, "rdsproxy_discovery_owned_resources") == 0
    assert (
        metrics.registry.get_sample_value(
            "rdsproxy_discovery_scope_up", {"account": "111111111111", "region": "us-east-1"}
        )
        is None
    )
    status = daemon.status()
    assert status["role"] == "follower"
    assert status["last_cycle"]["result"] == "fenced"
    assert "lost the leadership of discovery group 'unit'" in status["last_cycle"]["error"]
    assert status["leadership"]["last_lost_at"] is not None
    assert status["leadership"]["last_lost_reason"]
    assert daemon.ready()[0]  # a follower now, still a healthy one
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("cycle fenced: ") for m in messages), messages
    assert any("no longer the leader of discovery group 'unit'" in m for m in messages)


async def test_an_apply_refused_by_the_fence_is_a_fenced_cycle_and_writes_nothing(
    running: Callable[..., Awaitable[Daemon]], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="discovery.daemon")
    lock = Lock()
    leadership = FakeLeadership(lock)
    registry = FencedRegistry(leadership)
    registry.steal_on_apply = True  # the lock goes between the last check and the write
    metrics = Metrics()
    daemon = await running(
        make_config(poll_interval="1h"),
        FakeSource(proxies=(a_proxy("p1"),)),
        registry,
        leadership,
        metrics=metrics,
    )
    await eventually(
        lambda: sample(metrics, "rdsproxy_discovery_cycles_total", result="fenced") == 1,
        timeout=10,
        what="the fenced cycle",
    )
    assert registry.refused == 1
    assert await registry.list_resources() == []
    assert cycles(metrics) == {"ok": 0, "partial": 0, "error": 0, "fenced": 1}
    assert sample(metrics, "rdsproxy_discovery_changes_applied_total", action="create") == 0
    assert sample(metrics, "rdsproxy_discovery_leader") == 0
    last = daemon.status()["last_cycle"]
    assert last["result"] == "fenced"
    assert "refused the apply inside its transaction" in last["error"]
    assert any(r.getMessage().startswith("cycle fenced: ") for r in caplog.records)


async def test_a_conflict_while_still_leading_is_an_error_not_fenced(
    running: Callable[..., Awaitable[Daemon]],
) -> None:
    from discovery.registry.base import RegistryConflict

    class Racing(MemoryRegistry):
        async def apply(self, changes: Any) -> None:
            raise RegistryConflict("cannot create 'x': it already exists")

    metrics = Metrics()
    daemon = await running(
        make_config(poll_interval="1h"),
        FakeSource(proxies=(a_proxy("p1"),)),
        Racing(),
        FakeLeadership(Lock()),
        metrics=metrics,
    )
    await eventually(
        lambda: sample(metrics, "rdsproxy_discovery_cycles_total", result="error") == 1,
        timeout=10,
        what="the conflicting cycle",
    )
    assert sample(metrics, "rdsproxy_discovery_cycles_total", result="fenced") == 0
    assert daemon.status()["role"] == "leader"
    assert "another writer changed the registry" in daemon.status()["last_cycle"]["error"]


async def test_a_replica_that_lost_the_lock_lets_a_follower_take_it_first(
    running: Callable[..., Awaitable[Daemon]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(discovery.daemon.election, "ELECTION_INTERVAL_MAX_S", 0.5)
    lock = Lock()
    leadership = FakeLeadership(lock)
    metrics = Metrics()
    config = make_config(poll_interval="1h")
    daemon = await running(config, FakeSource(), MemoryRegistry(), leadership, metrics=metrics)
    await eventually(lambda: daemon.ready()[0], timeout=10, what="the first cycle")
    assert lock.holder is leadership

    lock.holder = None  # its session ended, nobody holds the lock yet
    await eventually(
        lambda: sample(metrics, "rdsproxy_discovery_leader") == 0, timeout=5, what="the loss"
    )
    # For the next election interval it leaves the free lock to a healthy follower...
    await asyncio.sleep(election_interval(config) * 0.8)
    assert lock.holder is None
    # ...then, nobody having taken it, it takes it back.
    await eventually(
        lambda: sample(metrics, "rdsproxy_discovery_leader") == 1, timeout=5, what="the retake"
    )
    assert lock.holder is leadership


async def test_an_elector_that_cannot_start_leaves_the_daemon_up_unready_and_retrying(
    running: Callable[..., Awaitable[Daemon]],
) -> None:
    leadership = FakeLeadership(
        Lock(), down="registry postgres u@db/x: cannot reach PostgreSQL (connection refused)"
    )
    source = FakeSource()
    metrics = Metrics()
    daemon = await running(
        make_config(poll_interval="200ms", poll_jitter="0s"),
        source,
        MemoryRegistry(),
        leadership,
        metrics=metrics,
    )
    await eventually(
        lambda: "cannot start" in daemon.ready()[1], timeout=5, what="the start failure"
    )
    ready, why = daemon.ready()
    assert not ready and "cannot reach PostgreSQL" in why
    assert daemon.live() == (True, "ok")
    status = daemon.status()
    assert status["role"] == "follower"
    assert "cannot reach PostgreSQL" in status["leadership"]["last_error"]
    assert source.started == 0 and sample(metrics, "rdsproxy_discovery_leader") == 0

    leadership.down = ""  # the database is back
    await eventually(lambda: daemon.ready()[0], timeout=10, what="readiness")
    assert leadership.log[0] == "start"
    assert daemon.status()["role"] == "leader" and source.started >= 1
    assert daemon.status()["leadership"]["last_error"] == ""


async def test_reload_to_another_group_releases_the_old_elector_and_starts_a_new_one(
    running: Callable[..., Awaitable[Daemon]], tmp_path: Path
) -> None:
    events: list[str] = []
    lock = Lock()
    old = FakeLeadership(lock, log=events)
    path = tmp_path / "discovery.yaml"
    doc: dict[str, Any] = {
        "discovery_group": "unit",
        "poll_interval": "1h",
        "aws": [{"types": ["rdsproxy"], "regions": ["us-east-1"], "assume_role_arn": ROLE}],
    }
    path.write_text(yaml.safe_dump(doc))
    new_lock = Lock()
    electors: list[tuple[str, FakeLeadership]] = []
    opened: list[tuple[str, Leadership]] = []

    def open_leadership(config: Config, config_path: Path) -> Leadership:
        elector = FakeLeadership(new_lock, log=events)
        electors.append((config.discovery_group, elector))
        return elector

    def open_registry(config: Config, config_path: Path, /, *, leadership: Leadership) -> Registry:
        opened.append((config.discovery_group, leadership))
        return MemoryRegistry()

    metrics = Metrics()
    daemon = await running(
        make_config(poll_interval="1h"),
        FakeSource(),
        MemoryRegistry(),
        old,
        metrics=metrics,
        config_path=path,
        open_registry=open_registry,
        open_leadership=open_leadership,
    )
    await eventually(lambda: daemon.ready()[0], timeout=10, what="the first cycle")
    assert lock.holder is old

    # Only the poll interval changes: the elector stays.
    path.write_text(yaml.safe_dump({**doc, "poll_interval": "2h"}))
    assert daemon.reload() is True
    assert electors == [] and opened == []

    path.write_text(yaml.safe_dump({**doc, "discovery_group": "other"}))
    assert daemon.reload() is True
    [(group, new)] = electors
    assert group == "other" and opened == [("other", new)]  # the registry fenced on it
    await eventually(lambda: lock.holder is None, timeout=5, what="the old lock released")
    await eventually(lambda: new_lock.holder is new, timeout=5, what="the new lock taken")
    assert events[:3] == ["start", "release", "start"]
    assert daemon.status()["role"] == "leader" and daemon.ready()[0]
    assert sample(metrics, "rdsproxy_discovery_leader") == 1


async def test_stop_releases_the_leadership_only_after_the_apply_finished(
    running: Callable[..., Awaitable[Daemon]],
) -> None:
    events: list[str] = []
    lock = Lock()
    leadership = FakeLeadership(lock, log=events)

    class Logged(SlowApplyRegistry):
        async def apply(self, changes: Any) -> None:
            await super().apply(changes)
            events.append("apply")

    registry = Logged(seconds=0.5)
    daemon = await running(
        make_config(), FakeSource(proxies=(a_proxy("p1"),)), registry, leadership
    )
    await asyncio.wait_for(registry.applying.wait(), timeout=10)
    await daemon.stop()
    assert events == ["start", "apply", "release"]
    assert lock.holder is None  # a follower can take over at once
    assert registry.finished == 1 and registry.closed
