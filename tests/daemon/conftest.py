"""Daemon fixtures: `discovery run` as a real subprocess against the emulator over HTTP.

The process wrapper, fleet builder and emulator reset come from `tests.harness`; this file
holds the daemon suite's fleet and config and declares its fixtures. A daemon still running at
the end of a test is killed.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from discovery.emulator import EmulatorThread
from tests.harness.daemon import DaemonProcess
from tests.harness.emulator import reset_emulator, running_emulator
from tests.harness.fleet import proxy

ACCOUNT_A = "111111111111"
ACCOUNT_B = "222222222222"
# Distinctive, so that finding one in a log line, a metric or /status can only mean a leak.
EXTERNAL_ID_A = "xid-A-Qm7v2Lr9Tz"
EXTERNAL_ID_B = "xid-B-Wc4n8Hs1Kp"
REGIONS = ("us-east-1", "eu-west-1")
INTERVAL_S = 2.0


def base_fleet() -> dict[str, Any]:
    """Two accounts (assume-role with external ids) x two regions x two proxies: 16 resources."""
    return {
        "caller_account": "000000000000",
        "accounts": [
            {
                "id": account,
                "roles": [{"name": "discovery", "external_id": external_id}],
                "regions": {
                    region: {
                        "proxies": [proxy(f"{prefix}-{region.split('-')[1]}-{n}") for n in (1, 2)]
                    }
                    for region in REGIONS
                },
            }
            for account, external_id, prefix in (
                (ACCOUNT_A, EXTERNAL_ID_A, "a"),
                (ACCOUNT_B, EXTERNAL_ID_B, "b"),
            )
        ],
    }


def base_config(*, regions: tuple[str, ...] = REGIONS, **overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "discovery_group": "daemon",
        "poll_interval": f"{INTERVAL_S:g}s",
        "aws": [
            {
                "types": ["rdsproxy"],
                "regions": list(regions),
                "assume_role_arn": f"arn:aws:iam::{account}:role/discovery",
                "external_id": external_id,
            }
            for account, external_id in ((ACCOUNT_A, EXTERNAL_ID_A), (ACCOUNT_B, EXTERNAL_ID_B))
        ],
        "registry": {"backend": "sqlite", "path": "registry.db"},
    }
    config.update(overrides)
    return config


@pytest.fixture(scope="session")
def emulator() -> Iterator[EmulatorThread]:
    with running_emulator(base_fleet()) as emu:
        yield emu


@pytest.fixture
def fleet(emulator: EmulatorThread) -> Iterator[dict[str, Any]]:
    """The fleet this test starts from (a copy it may change and push with set_fleet)."""
    doc = base_fleet()
    reset_emulator(emulator, fleet=doc)
    yield copy.deepcopy(doc)
    reset_emulator(emulator)


@pytest.fixture
def daemons(
    emulator: EmulatorThread, fleet: dict[str, Any], tmp_path: Path
) -> Iterator[Callable[..., DaemonProcess]]:
    """A factory: daemons(config, log_format=..., env=...) → a started DaemonProcess.

    Each daemon gets its own directory (config, log, SQLite registry); every daemon still
    running at the end of the test is killed.
    """
    started: list[DaemonProcess] = []

    def start(
        config: dict[str, Any], *, log_format: str = "text", env: dict[str, str] | None = None
    ) -> DaemonProcess:
        workdir = tmp_path / f"d{len(started)}"
        workdir.mkdir()
        daemon = DaemonProcess(
            emulator.url,
            workdir,
            workdir / "discovery.yaml",
            log_path=workdir / "daemon.log",
            args=["--log-format", log_format],
            env=env,
        )
        daemon.write_config(config)
        started.append(daemon)
        return daemon.start()

    yield start
    for daemon in started:
        daemon.kill()
