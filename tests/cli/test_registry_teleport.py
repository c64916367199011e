"""`registry list` and `registry copy --to teleport:` with a Teleport cluster (the stand-in
tctl), through the CLI in a subprocess."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.conftest import Harness, base_config
from tests.cli.test_scan_teleport import ALL, HAND_MADE
from tests.harness.tctl import StandinTctl


@pytest.fixture
def tctl(tmp_path: Path) -> StandinTctl:
    return StandinTctl(tmp_path / "teleport")


def test_registry_list_shows_ours_and_the_others(harness: Harness, tctl: StandinTctl) -> None:
    tctl.seed(HAND_MADE)
    config = harness.write_config(
        base_config(registry={"backend": "teleport", "tctl": str(tctl.path)})
    )
    assert harness.scan(config).code == 0
    result = harness.run("registry", "list", config=config)
    assert result.code == 0, result.stderr
    rows = {ln.split()[0]: ln.split()[1] for ln in result.stdout.splitlines()[2:-1]}
    assert rows.pop("hand-made") == "no"
    assert len(rows) == ALL and set(rows.values()) == {"yes"}
    assert f"{ALL + 1} resource(s)" in result.stdout


def test_copy_an_sqlite_registry_into_teleport(
    harness: Harness, tctl: StandinTctl, monkeypatch: pytest.MonkeyPatch
) -> None:
    sqlite_config = harness.write_config(base_config(), name="sqlite.yaml")
    assert harness.scan(sqlite_config).code == 0
    monkeypatch.setenv("DISCOVERY_TCTL", str(tctl.path))

    copied = harness.run("registry", "copy", "--from", "sqlite:registry.db", "--to", "teleport:")

    assert copied.code == 0, copied.stderr
    assert f"copied {ALL} resource(s)" in copied.stdout
    assert len(tctl.resources()) == ALL
    # The imported resources are ours: a scan against the cluster finds nothing to do.
    teleport_config = harness.write_config(
        base_config(registry={"backend": "teleport", "tctl": str(tctl.path)}),
        name="teleport.yaml",
    )
    tctl.clear_calls()
    result = harness.scan(teleport_config)
    assert result.code == 0, result.stderr
    assert result.json()["plan"]["unchanged"] == ALL
    assert tctl.writes() == []


def test_copy_into_a_non_empty_cluster_is_refused(
    harness: Harness, tctl: StandinTctl, monkeypatch: pytest.MonkeyPatch
) -> None:
    tctl.seed(HAND_MADE)
    sqlite_config = harness.write_config(base_config(), name="sqlite.yaml")
    assert harness.scan(sqlite_config).code == 0
    monkeypatch.setenv("DISCOVERY_TCTL", str(tctl.path))
    copied = harness.run("registry", "copy", "--from", "sqlite:registry.db", "--to", "teleport:")
    assert copied.code == 1
    assert "Traceback" not in copied.stderr
    assert list(tctl.resources()) == ["hand-made"]


def test_registry_migrate_has_nothing_to_do(harness: Harness, tctl: StandinTctl) -> None:
    config = harness.write_config(
        base_config(registry={"backend": "teleport", "tctl": str(tctl.path)})
    )
    result = harness.run("registry", "migrate", config=config)
    assert result.code == 0, result.stderr
    assert "nothing to do" in result.stdout
    assert tctl.calls() == []
