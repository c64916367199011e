"""`registry list --output text|json|yaml`, and `registry list`/`export` never creating a
registry: the CLI as a subprocess against the emulator and a real SQLite file."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import yaml

from tests.cli.conftest import Harness, base_config, base_fleet
from tests.harness.fleet import fleet_names


def _scanned(harness: Harness) -> Path:
    config = harness.write_config(base_config())
    result = harness.scan(config)
    assert result.code == 0, result.stderr
    return config


def test_list_as_json_and_yaml_holds_every_resource(harness: Harness) -> None:
    config = _scanned(harness)
    expected = fleet_names(base_fleet())

    as_json = harness.run("registry", "list", "--output", "json", config=config)
    assert as_json.code == 0, as_json.stderr
    docs = json.loads(as_json.stdout)
    assert isinstance(docs, list) and [d["metadata"]["name"] for d in docs] == sorted(expected)
    assert all(d["kind"] == "db" and d["version"] == "v3" for d in docs)
    owned = {d["metadata"]["labels"]["teleport.internal/discovery-group-name"] for d in docs}
    assert owned == {"e2e"}

    as_yaml = harness.run("registry", "list", "-o", "yaml", config=config)
    assert as_yaml.code == 0, as_yaml.stderr
    assert [d for d in yaml.safe_load_all(as_yaml.stdout) if d] == docs

    as_text = harness.run("registry", "list", config=config)
    assert as_text.code == 0, as_text.stderr
    lines = as_text.stdout.splitlines()
    assert lines[0].split() == ["NAME", "OWNED", "PROTOCOL", "URI", "ACCOUNT", "REGION"]
    assert lines[-1] == f"{len(expected)} resource(s)"
    assert as_text.stdout == harness.run("registry", "list", "-o", "text", config=config).stdout


def test_list_rejects_an_unknown_output(harness: Harness) -> None:
    config = harness.write_config(base_config())
    result = harness.run("registry", "list", "--output", "xml", config=config)
    assert result.code == 2 and "invalid choice" in result.stderr


@pytest.mark.parametrize(
    "command", [["list"], ["list", "-o", "json"], ["export"], ["export", "--all"]]
)
def test_a_missing_registry_is_exit_1_and_is_not_created(
    harness: Harness, tmp_path: Path, command: list[str]
) -> None:
    config = harness.write_config(base_config())
    before = sorted(p.name for p in tmp_path.iterdir())
    result = harness.run("registry", *command, config=config)
    assert result.code == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert str(tmp_path / "registry.db") in lines[0] and "does not exist" in lines[0]
    assert "registry.path" in lines[0]
    assert result.stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no file, no -wal, no lock


def test_list_never_migrates_or_writes_the_file(harness: Harness, tmp_path: Path) -> None:
    config = harness.write_config(base_config())
    # An empty file: a writer would set the schema up in it; a reader must refuse it as it is.
    (tmp_path / "registry.db").write_bytes(b"")
    result = harness.run("registry", "list", config=config)
    assert result.code == 1, result.stderr
    assert "registry migrate" in result.stderr and "Traceback" not in result.stderr
    assert (tmp_path / "registry.db").read_bytes() == b""

    config = _scanned(harness)
    path = tmp_path / "registry.db"
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    before = path.read_bytes()
    path.chmod(0o444)  # read-only file: a reader still reads it
    try:
        result = harness.run("registry", "list", "-o", "json", config=config)
    finally:
        path.chmod(0o644)
    assert result.code == 0, result.stderr
    assert len(json.loads(result.stdout)) == len(fleet_names(base_fleet()))
    assert path.read_bytes() == before
