"""`discovery.registry.open`: specs → registries, and the messages of the specs it refuses.

No database is reached here: opening a registry never connects (the first call does), so the
PostgreSQL cases only check what was built and what was refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from discovery.core.config import DEFAULT_DSN_ENV, Config, ConfigError, config_from_mapping
from discovery.registry.base import RegistryError
from discovery.registry.open import (
    RegistrySpecError,
    open_configured,
    open_spec,
    postgres_registry,
)
from discovery.registry.postgres import PostgresRegistry
from discovery.registry.sqlite import SQLiteRegistry

MATCHERS = [{"types": ["rdsproxy"], "regions": ["us-east-1"]}]
DSN = "host=db.internal port=5433 dbname=reg user=svc password=hunter2"


def _config(**registry: Any) -> Config:
    return config_from_mapping({"discovery_group": "g", "aws": MATCHERS, "registry": registry})


# --- from a config -------------------------------------------------------------------------


def test_a_relative_sqlite_path_is_taken_against_the_configs_folder(tmp_path: Path) -> None:
    registry = open_configured(
        _config(backend="sqlite", path="state/r.db"), tmp_path / "conf" / "discovery.yaml"
    )
    assert isinstance(registry, SQLiteRegistry)
    assert registry.path == tmp_path / "conf" / "state" / "r.db"


def test_an_absolute_sqlite_path_is_kept(tmp_path: Path) -> None:
    registry = open_configured(
        _config(backend="sqlite", path=str(tmp_path / "r.db")), Path("elsewhere/discovery.yaml")
    )
    assert isinstance(registry, SQLiteRegistry)
    assert registry.path == tmp_path / "r.db"


def test_the_dsn_variable_wins_over_the_file() -> None:
    config = _config(backend="postgres", dsn="host=file dbname=f", dsn_env="MY_DSN")
    registry = open_configured(config, Path("discovery.yaml"), environ={"MY_DSN": DSN})
    assert isinstance(registry, PostgresRegistry)
    assert registry.where == "postgres svc@db.internal:5433/reg"


def test_postgres_without_a_dsn_names_the_file_the_key_and_the_variable() -> None:
    with pytest.raises(ConfigError) as raised:
        open_configured(_config(backend="postgres"), Path("conf/discovery.yaml"), environ={})
    message = str(raised.value)
    assert message.startswith("conf/discovery.yaml: ")
    assert "registry.dsn" in message
    assert DEFAULT_DSN_ENV in message


def test_a_malformed_dsn_names_the_key_and_never_the_password() -> None:
    config = _config(backend="postgres", dsn="host=db password=hunter2 'unterminated")
    with pytest.raises(ConfigError) as raised:
        open_configured(config, Path("discovery.yaml"), environ={})
    message = str(raised.value)
    assert message.startswith(f"discovery.yaml: registry.dsn (or ${DEFAULT_DSN_ENV}): ")
    assert "not a valid connection string" in message
    assert "hunter2" not in message


# --- from a spec string (`registry copy`) --------------------------------------------------


def test_a_sqlite_spec(tmp_path: Path) -> None:
    registry, name = open_spec(f"sqlite:{tmp_path}/t.db", flag="--to", source=False)
    assert isinstance(registry, SQLiteRegistry)
    assert registry.path == tmp_path / "t.db"
    assert name == f"sqlite {tmp_path}/t.db"


def test_a_sqlite_source_must_exist(tmp_path: Path) -> None:
    with pytest.raises(RegistrySpecError, match=r"^--from: .*missing\.db does not exist"):
        open_spec(f"sqlite:{tmp_path}/missing.db", flag="--from", source=True)
    assert not (tmp_path / "missing.db").exists()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("sqlite:", "--to: sqlite: needs a path, e.g. sqlite:discovery.db"),
        ("mysql:x", "--to: 'mysql:x': write sqlite:PATH or postgres:DSN"),
        ("registry.db", "--to: 'registry.db': write sqlite:PATH or postgres:DSN"),
        ("postgres:", "--to: postgres: needs a DSN (postgres:'host=... dbname=...') or, with "),
        ("postgres:  ", f"nothing after the colon, the DSN in ${DEFAULT_DSN_ENV}"),
    ],
)
def test_refused_specs(spec: str, message: str) -> None:
    with pytest.raises(RegistrySpecError) as raised:
        open_spec(spec, flag="--to", source=False, environ={})
    assert message in str(raised.value)


@pytest.mark.parametrize(
    "spec",
    [f"postgres:{DSN}", f"postgresql:{DSN}", "postgresql://svc@db.internal:5433/reg"],
)
def test_postgres_specs(spec: str) -> None:
    registry, name = open_spec(spec, flag="--to", source=False, environ={})
    assert isinstance(registry, PostgresRegistry)
    assert name == "postgres svc@db.internal:5433/reg"


def test_an_empty_postgres_spec_takes_the_dsn_from_the_environment() -> None:
    registry, name = open_spec(
        "postgres:", flag="--from", source=True, environ={DEFAULT_DSN_ENV: f" {DSN} "}
    )
    assert isinstance(registry, PostgresRegistry)
    assert name == "postgres svc@db.internal:5433/reg"


def test_a_malformed_postgres_spec_is_a_spec_error_without_the_password() -> None:
    with pytest.raises(RegistrySpecError) as raised:
        open_spec("postgres:password=hunter2 'x", flag="--from", source=True, environ={})
    assert str(raised.value).startswith("--from: the PostgreSQL DSN is not a valid")
    assert "hunter2" not in str(raised.value)


def test_postgres_registry_raises_registry_error_for_a_malformed_dsn() -> None:
    with pytest.raises(RegistryError, match="not a valid connection string"):
        postgres_registry("host=db 'x")
