"""`discovery.wiring`: which registry and elector a config gets, and that they fit together.

Only the local PostgreSQL test server is reached (the fenced case); never AWS."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from discovery import wiring
from discovery.core.config import Config, ConfigError, config_from_mapping
from discovery.core.model import Changes
from discovery.registry.postgres import LeadershipLost, PostgresRegistry
from discovery.registry.postgres_leader import PostgresLeaderElector
from discovery.registry.sqlite import LockLost, SQLiteRegistry
from discovery.registry.sqlite_leader import SQLiteLeaderLock
from tests.registry.postgres_support import fresh_schema
from tests.registry.registry_support import make_resource

MATCHERS = [{"types": ["rdsproxy"], "regions": ["us-east-1", "eu-west-1"]}]


def _config(**registry: Any) -> Config:
    return config_from_mapping({"discovery_group": "g", "aws": MATCHERS, "registry": registry})


async def test_sqlite_gets_a_lock_file_elector_and_a_registry_fenced_on_it(tmp_path: Path) -> None:
    registry, leadership = wiring.open_backend(
        _config(backend="sqlite", path="r.db"), tmp_path / "discovery.yaml"
    )
    assert isinstance(leadership, SQLiteLeaderLock)
    assert leadership.path == tmp_path / "r.db.lock"
    assert isinstance(registry, SQLiteRegistry)
    assert registry.path == tmp_path / "r.db"
    with pytest.raises(LockLost):  # not started, so not leader: nothing is written
        await registry.apply(Changes(create=(make_resource("a"),)))
    await leadership.start()
    assert await leadership.try_acquire()
    await registry.apply(Changes(create=(make_resource("a"),)))
    assert [s.resource.name for s in await registry.list_resources()] == ["a"]
    await leadership.release()


async def test_postgres_gets_an_elector_and_a_registry_fenced_on_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with fresh_schema() as dsn:
        monkeypatch.setenv("DISCOVERY_REGISTRY_DSN", dsn)
        await _fenced_until_elected()


async def _fenced_until_elected() -> None:
    registry, leadership = wiring.open_backend(_config(backend="postgres"), Path("d.yaml"))
    assert isinstance(leadership, PostgresLeaderElector)
    assert leadership.discovery_group == "g"
    assert isinstance(registry, PostgresRegistry)
    try:
        with pytest.raises(LeadershipLost):  # not started, so not leader: nothing is written
            await registry.apply(Changes(create=(make_resource("a"),)))
        await leadership.start()
        assert await leadership.try_acquire()
        await registry.apply(Changes(create=(make_resource("a"),)))
        assert [s.resource.name for s in await registry.list_resources()] == ["a"]
    finally:
        await registry.close()
        await leadership.release()


def test_a_postgres_elector_without_a_dsn_names_the_config_file(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("DISCOVERY_REGISTRY_DSN", raising=False)
    with pytest.raises(ConfigError, match=r"^conf/d\.yaml: .*registry\.dsn"):
        wiring.open_leadership(_config(backend="postgres"), Path("conf/d.yaml"))


async def test_open_source_is_an_async_context_manager_for_the_config() -> None:
    calls: list[str] = []
    async with wiring.open_source(
        _config(backend="sqlite"), on_call=lambda op, outcome, retries: calls.append(op)
    ) as source:
        assert source is not None
    assert calls == []  # nothing was fetched
