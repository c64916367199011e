"""The CLI with the PostgreSQL registry: the DSN from the config or the environment,
`registry migrate`, `registry copy` between SQLite and PostgreSQL, and a real `scan`."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from discovery.cli.main import main
from discovery.core.config import DEFAULT_DSN_ENV, ConfigError, config_from_mapping
from discovery.core.model import Resource
from discovery.registry.base import Changes
from discovery.registry.postgres import PostgresRegistry
from discovery.registry.postgres_schema import SCHEMA_VERSION
from discovery.registry.sqlite import SQLiteRegistry
from tests.registry.postgres_support import fresh_schema, sql
from tests.registry.registry_support import make_resource, minimal_resource

MATCHERS = [{"types": ["rdsproxy"], "regions": ["us-east-1"]}]
FOREIGN = make_resource("foreign-db")  # labelled for group "prod", not ours below: kept as is


@pytest.fixture
def dsn(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.delenv(DEFAULT_DSN_ENV, raising=False)
    with fresh_schema() as made:
        yield made


def _config(tmp_path: Path, registry: dict[str, Any]) -> Path:
    path = tmp_path / "discovery.yaml"
    path.write_text(
        yaml.safe_dump({"discovery_group": "cli", "aws": MATCHERS, "registry": registry})
    )
    return path


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _resources(registry: PostgresRegistry | SQLiteRegistry) -> list[Resource]:
    async def read() -> list[Resource]:
        try:
            return [s.resource for s in await registry.list_resources()]
        finally:
            await registry.close()

    return asyncio.run(read())


def _seed(registry: PostgresRegistry | SQLiteRegistry, *resources: Resource) -> None:
    async def write() -> None:
        try:
            await registry.apply(Changes(create=resources))
        finally:
            await registry.close()

    asyncio.run(write())


SEEDED = (make_resource("a", full=True), minimal_resource("b"), FOREIGN)


# --- config --------------------------------------------------------------------------------


def _registry_config(**registry: str) -> Any:
    return config_from_mapping(
        {"discovery_group": "g", "aws": MATCHERS, "registry": registry}
    ).registry


def test_the_dsn_comes_from_the_environment_first_then_the_file() -> None:
    registry = _registry_config(backend="postgres", dsn="host=from-file")
    assert registry.resolve_dsn({}) == "host=from-file"
    assert registry.resolve_dsn({DEFAULT_DSN_ENV: "host=from-env"}) == "host=from-env"
    custom = _registry_config(backend="postgres", dsn_env="PG_DSN")
    assert custom.resolve_dsn({"PG_DSN": "host=x", DEFAULT_DSN_ENV: "host=y"}) == "host=x"


def test_postgres_without_any_dsn_names_registry_dsn_and_the_variable() -> None:
    registry = _registry_config(backend="postgres", dsn_env="PG_DSN")
    with pytest.raises(ConfigError, match=r"^registry\.dsn: .*PG_DSN"):
        registry.resolve_dsn({"PG_DSN": "  "})


def test_a_bad_dsn_env_name_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"registry\.dsn_env: 'no-dashes'"):
        _registry_config(backend="postgres", dsn_env="no-dashes")


def test_commands_without_a_dsn_exit_2_naming_the_file_and_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(DEFAULT_DSN_ENV, raising=False)
    config = _config(tmp_path, {"backend": "postgres"})

    code, _, err = _run(capsys, "registry", "list", "--config", str(config))

    assert code == 2
    assert f"{config}: registry.dsn: backend postgres needs a DSN" in err
    assert "Traceback" not in err


# --- migrate -------------------------------------------------------------------------------


def test_registry_migrate_is_idempotent_with_the_dsn_from_the_environment(
    dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(DEFAULT_DSN_ENV, dsn)
    config = _config(tmp_path, {"backend": "postgres"})

    first = _run(capsys, "registry", "migrate", "--config", str(config))
    second = _run(capsys, "registry", "migrate", "--config", str(config))

    assert first[0] == second[0] == 0
    assert f"from version 0 to {SCHEMA_VERSION}" in first[1]
    assert f"already at version {SCHEMA_VERSION}; nothing to do" in second[1]
    assert sql(dsn, "SELECT version FROM discovery_schema_version") == [(SCHEMA_VERSION,)]
    code, out, _ = _run(capsys, "registry", "list", "--config", str(config))
    assert (code, out.splitlines()[-1]) == (0, "0 resource(s)")


def test_registry_migrate_for_sqlite_creates_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path, {"backend": "sqlite", "path": "r.db"})
    code, out, _ = _run(capsys, "registry", "migrate", "--config", str(config))
    assert code == 0
    assert f"schema is at version {SCHEMA_VERSION}" in out
    assert (tmp_path / "r.db").is_file()


def test_an_unreachable_server_exits_1_with_the_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(
        tmp_path, {"backend": "postgres", "dsn": "host=127.0.0.1 port=1 connect_timeout=2"}
    )
    code, _, err = _run(capsys, "registry", "migrate", "--config", str(config))
    assert code == 1
    assert "cannot reach PostgreSQL; check the host, port" in err


# --- copy ----------------------------------------------------------------------------------


def test_copy_round_trip_sqlite_to_postgres_to_sqlite_preserves_every_document(
    dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    original = tmp_path / "original.db"
    _seed(SQLiteRegistry(original), *SEEDED)

    code, out, err = _run(
        capsys, "registry", "copy", "--from", f"sqlite:{original}", "--to", f"postgres:{dsn}"
    )
    assert code == 0, err
    assert out.startswith("copied 3 resource(s) from sqlite")
    assert "(created 3, updated 0, deleted 0, unchanged 0)" in out
    assert _resources(PostgresRegistry(dsn)) == sorted(SEEDED, key=lambda r: r.name)

    back = tmp_path / "back.db"
    code, out, err = _run(
        capsys, "registry", "copy", "--from", f"postgres:{dsn}", "--to", f"sqlite:{back}"
    )
    assert code == 0, err
    assert _resources(SQLiteRegistry(back)) == _resources(SQLiteRegistry(original))
    # The exports (what Teleport gets) are byte for byte the same.
    exports = []
    for path in (original, back):
        config = _config(tmp_path, {"backend": "sqlite", "path": str(path)})
        exports.append(_run(capsys, "registry", "export", "--all", "--config", str(config))[1])
    assert exports[0] == exports[1] != ""


def test_copy_refuses_a_non_empty_target_unless_replace(
    dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "source.db"
    _seed(SQLiteRegistry(source), *SEEDED)
    _seed(PostgresRegistry(dsn), make_resource("a", variant=9), make_resource("only-in-target"))
    monkeypatch.setenv(DEFAULT_DSN_ENV, dsn)  # `postgres:` alone: the DSN from the environment

    code, _, err = _run(
        capsys, "registry", "copy", "--from", f"sqlite:{source}", "--to", "postgres:"
    )
    assert code == 1
    assert "already holds 2 resource(s); nothing was copied" in err
    assert "--replace" in err
    assert [r.name for r in _resources(PostgresRegistry(dsn))] == ["a", "only-in-target"]

    code, out, err = _run(
        capsys, "registry", "copy", "--from", f"sqlite:{source}", "--to", "postgres:", "--replace"
    )
    assert code == 0, err
    assert "(created 2, updated 1, deleted 1, unchanged 0)" in out
    assert _resources(PostgresRegistry(dsn)) == sorted(SEEDED, key=lambda r: r.name)


def test_copy_from_a_missing_sqlite_file_creates_nothing(
    dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "missing.db"
    code, _, err = _run(
        capsys, "registry", "copy", "--from", f"sqlite:{missing}", "--to", f"postgres:{dsn}"
    )
    assert code == 2
    assert f"--from: {missing} does not exist" in err
    assert not missing.exists()


def test_copy_from_a_schema_without_a_registry_creates_nothing_there(
    dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(
        capsys, "registry", "copy", "--from", f"postgres:{dsn}", "--to", f"sqlite:{tmp_path}/t.db"
    )
    assert code == 1
    assert "run `discovery registry migrate`" in err
    assert sql(dsn, "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()") == [(0,)]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("mysql:x", "write sqlite:PATH or postgres:DSN"),
        ("registry.db", "write sqlite:PATH or postgres:DSN"),
        ("sqlite:", "sqlite: needs a path"),
    ],
)
def test_copy_with_a_bad_spec_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], spec: str, message: str
) -> None:
    code, _, err = _run(capsys, "registry", "copy", "--from", spec, "--to", f"sqlite:{tmp_path}/t")
    assert code == 2
    assert message in err


# --- a real scan ---------------------------------------------------------------------------


def test_scan_into_postgres_gives_the_same_registry_as_into_sqlite(
    dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from discovery.emulator import EmulatorThread
    from tests.cli.conftest import Harness, base_config, base_fleet
    from tests.registry.postgres_support import revision_counter

    monkeypatch.setenv(DEFAULT_DSN_ENV, dsn)  # the CLI subprocess inherits it
    with EmulatorThread(base_fleet()) as emulator:
        harness = Harness(emulator, tmp_path)
        postgres = harness.write_config(base_config(registry={"backend": "postgres"}), "pg.yaml")
        sqlite = harness.write_config(base_config(), "sqlite.yaml")
        for config in (postgres, sqlite):
            result = harness.scan(config)
            assert result.code == 0, result.stderr
            assert len(result.json()["plan"]["create"]) == 16

        assert harness.registry(postgres) == harness.registry(sqlite)
        assert len(harness.registry(postgres)) == 16
        counter = revision_counter(dsn)
        steady = harness.scan(postgres)
        assert steady.code == 0, steady.stderr
        assert steady.json()["plan"]["create"] == []
        assert revision_counter(dsn) == counter  # a steady-state cycle writes nothing
