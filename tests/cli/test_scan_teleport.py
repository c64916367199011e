"""`discovery scan` into a Teleport cluster: the CLI in a subprocess, the emulator over HTTP,
the stand-in tctl (tests/harness/tctl_standin.py) as the cluster."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from tests.cli.conftest import ACCOUNT_A, ROLE_A, Harness, base_config
from tests.harness.tctl import StandinTctl

EXIT_OK, EXIT_RUNTIME, EXIT_SCOPES_FAILED = 0, 1, 3
ALL = 16  # base_fleet: 8 proxies, each with a read-only endpoint


@pytest.fixture
def tctl(tmp_path: Path) -> StandinTctl:
    return StandinTctl(tmp_path / "teleport")


def teleport_config(tctl: StandinTctl, **registry: Any) -> dict[str, Any]:
    return base_config(
        registry={"backend": "teleport", "tctl": str(tctl.path), "timeout": "10s", **registry}
    )


def test_first_scan_creates_everything_in_one_create_call(
    harness: Harness, tctl: StandinTctl
) -> None:
    config = harness.write_config(teleport_config(tctl))
    result = harness.scan(config)
    assert result.code == EXIT_OK, result.stderr
    assert len(result.json()["plan"]["create"]) == ALL
    stored = tctl.resources()
    assert len(stored) == ALL
    for doc in stored.values():
        assert doc["metadata"]["labels"]["teleport.dev/origin"] == "dynamic"  # tctl's doing
        assert doc["metadata"]["labels"]["teleport.internal/discovery-group-name"] == "e2e"
    assert [c[:1] for c in tctl.writes()] == [["create"]]
    assert "-f" not in tctl.writes()[0]


def test_second_scan_makes_no_write(harness: Harness, tctl: StandinTctl) -> None:
    config = harness.write_config(teleport_config(tctl))
    assert harness.scan(config).code == EXIT_OK
    tctl.clear_calls()
    result = harness.scan(config)
    assert result.code == EXIT_OK, result.stderr
    plan = result.json()["plan"]
    assert (plan["create"], plan["update"], plan["delete"]) == ([], [], [])
    assert plan["unchanged"] == ALL
    assert tctl.subcommands() == ["get"]
