"""`discovery doctor` with a Teleport registry: tctl, its identity and `tctl get db`, checked
first, through the CLI in a subprocess against the stand-in tctl and the emulator."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.cli.conftest import Harness, base_config
from tests.harness.tctl import StandinTctl


def tctl_lines(stdout: str) -> list[str]:
    return [ln for ln in stdout.splitlines() if ln[6:].startswith("tctl ")]


@pytest.fixture
def tctl(tmp_path: Path) -> StandinTctl:
    return StandinTctl(tmp_path / "teleport")


def config(harness: Harness, **registry: Any) -> Path:
    return harness.write_config(base_config(registry={"backend": "teleport", **registry}))


def test_a_working_tctl_passes(harness: Harness, tctl: StandinTctl, tmp_path: Path) -> None:
    (tmp_path / "identity").write_text("tbot identity\n")
    path = config(
        harness, tctl=str(tctl.path), auth_server="teleport.example.com:443", identity="identity"
    )
    result = harness.run("doctor", "--no-tcp", config=path)
    assert result.code == 0, result.stdout + result.stderr
    lines = tctl_lines(result.stdout)
    assert len(lines) == 3, result.stdout
    assert all(ln.startswith("ok") for ln in lines)
    assert "0 db resource(s) readable" in lines[2]
    assert tctl.subcommands() == ["get"]


@pytest.mark.parametrize(
    ("faults", "code_fix"),
    [
        ({"deny": ["list"]}, "verbs [list, read, create, update, delete]"),
        ({"expired": True}, "renew the bot identity"),
        ({"unreachable": True}, "check registry.auth_server"),
    ],
    ids=["denied", "expired", "unreachable"],
)
def test_a_failing_get_db_fails_with_its_fix(
    harness: Harness, tctl: StandinTctl, faults: dict[str, Any], code_fix: str
) -> None:
    tctl.set_faults(**faults)
    result = harness.run("doctor", "--no-tcp", config=config(harness, tctl=str(tctl.path)))
    assert result.code == 1
    failing = [ln for ln in result.stdout.splitlines() if ln.startswith("FAIL  tctl")]
    assert len(failing) == 1, result.stdout
    assert "get db" in failing[0]
    assert code_fix in result.stdout


def test_no_tctl_and_no_identity_fail(harness: Harness, tctl: StandinTctl) -> None:
    missing = harness.run("doctor", "--no-tcp", config=config(harness, tctl="./nowhere/tctl"))
    assert missing.code == 1
    assert "FAIL  tctl" in missing.stdout and "not found (registry.tctl)" in missing.stdout
    no_identity = harness.run(
        "doctor",
        "--no-tcp",
        config=config(harness, tctl=str(tctl.path), auth_server="t.example:443", identity="x"),
    )
    assert no_identity.code == 1
    assert "the identity file (registry.identity) is missing" in no_identity.stdout
    assert tctl.calls() == []
