"""End-to-end fixtures: the CLI as a subprocess against the emulator over real HTTP."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from discovery.emulator import EmulatorThread

ACCOUNT_A = "111111111111"
ACCOUNT_B = "222222222222"
ROLE_A = f"arn:aws:iam::{ACCOUNT_A}:role/discovery"
ROLE_B = f"arn:aws:iam::{ACCOUNT_B}:role/discovery"
REGIONS = ("us-east-1", "eu-west-1")


def proxy(
    name: str, *, family: str = "POSTGRESQL", tags: dict[str, str] | None = None, **extra: Any
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "name": name,
        "engine_family": family,
        "status": "available",
        "require_tls": True,
        "vpc_id": "vpc-1",
        "tags": tags if tags is not None else {"env": "prod"},
        # endpoint names are unique per account and region in AWS
        "endpoints": [{"name": f"{name}-ro", "target_role": "READ_ONLY", "status": "available"}],
    }
    doc.update(extra)
    return doc


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


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    def json(self) -> dict[str, Any]:
        return dict(json.loads(self.stdout))


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

    def run(self, *args: str, config: Path | None = None) -> Result:
        env = {
            k: v for k, v in os.environ.items() if not k.startswith("AWS_") or k == "AWS_CA_BUNDLE"
        }
        env.update(
            AWS_ENDPOINT_URL=self.emulator.url,
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",
            AWS_DEFAULT_REGION="us-east-1",
            AWS_CONFIG_FILE=os.devnull,
            AWS_SHARED_CREDENTIALS_FILE=os.devnull,
            AWS_EC2_METADATA_DISABLED="true",
            AWS_MAX_ATTEMPTS="2",
            AWS_RETRY_MODE="standard",
        )
        cmd = [sys.executable, "-m", "discovery", *args]
        if config is not None:
            cmd += ["--config", str(config)]
        proc = subprocess.run(
            cmd, capture_output=True, text=True, env=env, cwd=self.tmp_path, timeout=120
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    def scan(self, config: Path, *flags: str) -> Result:
        return self.run("scan", "--output", "json", *flags, config=config)

    def registry(self, config: Path) -> dict[str, dict[str, Any]]:
        result = self.run("registry", "export", "--all", config=config)
        assert result.code == 0, result.stderr
        docs = [d for d in yaml.safe_load_all(result.stdout) if d]
        return {d["metadata"]["name"]: d for d in docs}


@pytest.fixture(scope="session")
def emulator() -> Iterator[EmulatorThread]:
    with EmulatorThread(base_fleet()) as emu:
        yield emu


@pytest.fixture
def harness(emulator: EmulatorThread, tmp_path: Path) -> Iterator[Harness]:
    emulator.set_faults([])
    yield Harness(emulator, tmp_path)
    emulator.set_faults([])


def find_proxy(fleet: dict[str, Any], account: str, region: str, name: str) -> dict[str, Any]:
    for acct in fleet["accounts"]:
        if acct["id"] == account:
            for p in acct["regions"][region]["proxies"]:
                if p["name"] == name:
                    return p  # the live dict, so tests can edit the fleet in place
    raise KeyError(name)
