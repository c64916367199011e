"""End-to-end fixtures: the CLI as a subprocess against the emulator over real HTTP.

The emulator, its environment, the fleet pieces and the CLI runner come from `tests.harness`;
this file holds the e2e suite's fleet and config and declares its fixtures.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from discovery.emulator import EmulatorThread
from tests.harness import fleet as fleet_docs
from tests.harness.cli import Result, run_subprocess
from tests.harness.emulator import reset_emulator, running_emulator
from tests.harness.env import process_env

ACCOUNT_A = "111111111111"
ACCOUNT_B = "222222222222"
ROLE_A = f"arn:aws:iam::{ACCOUNT_A}:role/discovery"
ROLE_B = f"arn:aws:iam::{ACCOUNT_B}:role/discovery"
REGIONS = ("us-east-1", "eu-west-1")
# The e2e scans retry a failed call once, not the CLI's default three times.
RETRIES = {"AWS_MAX_ATTEMPTS": "2", "AWS_RETRY_MODE": "standard"}


def proxy(name: str, **fields: Any) -> dict[str, Any]:
    """The suite's proxies sit in vpc-1 unless a test says otherwise."""
    return fleet_docs.proxy(name, **{"vpc_id": "vpc-1", **fields})


def base_fleet() -> dict[str, Any]:
    """Two accounts reached by assume-role (B with an external id), two regions, 8 proxies."""
    return {
        "caller_account": "000000000000",
        "accounts": [
            {
                "id": ACCOUNT_A,
                "roles": [{"name": "discovery"}],
                "regions": {
                    "us-east-1": {
                        "proxies": [proxy("a-east-1"), proxy("a-east-2", family="MYSQL")]
                    },
                    "eu-west-1": {"proxies": [proxy("a-west-1"), proxy("a-west-2")]},
                },
            },
            {
                "id": ACCOUNT_B,
                "roles": [{"name": "discovery", "external_id": "ext-b"}],
                "regions": {
                    "us-east-1": {"proxies": [proxy("b-east-1"), proxy("b-east-2")]},
                    "eu-west-1": {"proxies": [proxy("b-west-1"), proxy("b-west-2")]},
                },
            },
        ],
    }


def base_config(group: str = "e2e", **overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "discovery_group": group,
        "aws": [
            {"types": ["rdsproxy"], "regions": list(REGIONS), "assume_role_arn": ROLE_A},
            {
                "types": ["rdsproxy"],
                "regions": list(REGIONS),
                "assume_role_arn": ROLE_B,
                "external_id": "ext-b",
            },
        ],
        "registry": {"backend": "sqlite", "path": "registry.db"},
    }
    config.update(overrides)
    return config


class Harness:
    def __init__(self, emulator: EmulatorThread, tmp_path: Path) -> None:
        self.emulator = emulator
        self.tmp_path = tmp_path
        self.fleet = base_fleet()
        emulator.set_fleet(self.fleet)

    def update_fleet(self, fleet: dict[str, Any]) -> None:
        self.fleet = copy.deepcopy(fleet)
        self.emulator.set_fleet(self.fleet)

    def write_config(self, config: dict[str, Any], name: str = "discovery.yaml") -> Path:
        path = self.tmp_path / name
        path.write_text(yaml.safe_dump(config))
        return path

    def run(self, *args: str, config: Path | None = None, timeout: float = 120) -> Result:
        argv = [*args, "--config", str(config)] if config is not None else list(args)
        env = process_env(self.emulator.url, RETRIES)
        return run_subprocess(argv, env=env, cwd=self.tmp_path, timeout=timeout)

    def scan(self, config: Path, *flags: str) -> Result:
        return self.run("scan", "--output", "json", *flags, config=config)

    def registry(self, config: Path) -> dict[str, dict[str, Any]]:
        result = self.run("registry", "export", "--all", config=config)
        if result.code == 1 and "nothing to export: the registry is empty" in result.stderr:
            return {}  # an empty export is refused (tctl rejects empty input), not written
        assert result.code == 0, result.stderr
        docs = [d for d in yaml.safe_load_all(result.stdout) if d]
        return {d["metadata"]["name"]: d for d in docs}


@pytest.fixture(scope="session")
def emulator() -> Iterator[EmulatorThread]:
    with running_emulator(base_fleet()) as emu:
        yield emu


@pytest.fixture
def harness(emulator: EmulatorThread, tmp_path: Path) -> Iterator[Harness]:
    reset_emulator(emulator)
    yield Harness(emulator, tmp_path)
    reset_emulator(emulator)
