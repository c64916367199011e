"""Daemon fixtures: `discovery run` as a real subprocess against the emulator over HTTP.

Every wait polls with a deadline (never a fixed sleep used as an assertion), so the tests hold on
a loaded two-core machine; a daemon still running at the end of a test is killed.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from discovery.emulator import EmulatorThread
from discovery.registry.sqlite import SQLiteRegistry
from tests.tools import wait_until

ACCOUNT_A = "111111111111"
ACCOUNT_B = "222222222222"
# Distinctive, so that finding one in a log line, a metric or /status can only mean a leak.
EXTERNAL_ID_A = "xid-A-Qm7v2Lr9Tz"
EXTERNAL_ID_B = "xid-B-Wc4n8Hs1Kp"
REGIONS = ("us-east-1", "eu-west-1")
INTERVAL_S = 2.0

T = TypeVar("T")


def proxy(name: str, *, tags: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "engine_family": "POSTGRESQL",
        "tags": tags if tags is not None else {"env": "prod"},
        "endpoints": [{"name": f"{name}-ro", "target_role": "READ_ONLY"}],
    }


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


def resource_name(proxy_name: str, region: str, account: str) -> str:
    return f"{proxy_name}-rdsproxy-{region}-{account}"


def fleet_names(fleet: dict[str, Any]) -> set[str]:
    """The names the daemon should hold for `fleet` (every proxy and its custom endpoint)."""
    names = set()
    for account in fleet["accounts"]:
        for region, spec in account["regions"].items():
            for p in spec["proxies"]:
                names.add(resource_name(p["name"], region, account["id"]))
                for e in p["endpoints"]:
                    names.add(resource_name(f"{p['name']}-{e['name']}", region, account["id"]))
    return names


class Metrics:
    """One parsed scrape: samples by name, looked up by labels."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.samples: dict[str, list[tuple[dict[str, str], float]]] = {}
        self.types: dict[str, str] = {}
        for family in text_string_to_metric_families(text):
            self.types[family.name] = family.type
            for sample in family.samples:
                self.samples.setdefault(sample.name, []).append((sample.labels, sample.value))

    def get(self, name: str, **labels: str) -> float | None:
        for sample_labels, value in self.samples.get(name, []):
            if all(sample_labels.get(k) == v for k, v in labels.items()):
                return value
        return None

    def value(self, name: str, **labels: str) -> float:
        found = self.get(name, **labels)
        assert found is not None, f"no sample {name}{labels} in the scrape"
        return found

    def series(self, name: str) -> list[tuple[dict[str, str], float]]:
        return list(self.samples.get(name, []))


class DaemonProcess:
    """`python -m discovery run` in a subprocess, its log in a file, its HTTP API at `url`."""

    def __init__(
        self,
        emulator: EmulatorThread,
        workdir: Path,
        config: dict[str, Any],
        *,
        log_format: str = "text",
        env: dict[str, str] | None = None,
    ) -> None:
        self.emulator = emulator
        self.workdir = workdir
        self.config_path = workdir / "discovery.yaml"
        self.log_path = workdir / "daemon.log"
        self.log_format = log_format
        self.extra_env = dict(env or {})
        self.write_config(config)
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""

    # --- process ------------------------------------------------------------------------------

    def write_config(self, config: dict[str, Any] | str) -> None:
        text = config if isinstance(config, str) else yaml.safe_dump(config)
        self.config_path.write_text(text)

    def env(self) -> dict[str, str]:
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
            PYTHONUNBUFFERED="1",
        )
        env.update(self.extra_env)
        return env

    def start(self) -> DaemonProcess:
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "discovery",
                    "run",
                    "--config",
                    str(self.config_path),
                    "--listen",
                    "127.0.0.1:0",
                    "--log-format",
                    self.log_format,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env(),
                cwd=self.workdir,
            )
        self.url = wait_until(self._bound_url, timeout=30, what="the daemon to listen")
        return self

    def _bound_url(self) -> str | None:
        self.assert_running()
        match = re.search(r"listening on (http://[^\s\"]+)", self.log())
        return match.group(1) if match else None

    def assert_running(self) -> None:
        assert self.proc is not None
        code = self.proc.poll()
        if code is not None:
            raise AssertionError(f"the daemon exited with {code}:\n{self.log()[-4000:]}")

    def send(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait_exit(self, timeout: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        """SIGKILL (kill -9): no cleanup of any kind, then reap the process."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def json_log(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log().splitlines() if line.strip()]

    # --- HTTP ---------------------------------------------------------------------------------

    def get(self, path: str) -> tuple[int, str, str]:
        """(status, body, content type); 5xx answers are answers, not errors."""
        try:
            with urllib.request.urlopen(self.url + path, timeout=10) as response:
                body = response.read().decode()
                return response.status, body, response.headers.get("Content-Type", "")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(), exc.headers.get("Content-Type", "")

    def status(self) -> dict[str, Any]:
        code, body, _ = self.get("/status")
        assert code == 200, body
        return dict(json.loads(body))

    def scrape(self) -> Metrics:
        code, body, _ = self.get("/metrics")
        assert code == 200, body
        return Metrics(body)

    def wait_ready(self, timeout: float = 30) -> None:
        def ready() -> bool:
            self.assert_running()
            return self.get("/readyz")[0] == 200

        wait_until(ready, timeout=timeout, what="/readyz to answer 200")

    def completed(self) -> int:
        return int(self.status()["cycles"]["completed"])

    def wait_cycles(self, count: int, timeout: float = 20) -> None:
        """Wait until `count` more cycles have completed than now."""
        target = self.completed() + count

        def done() -> bool:
            self.assert_running()
            return self.completed() >= target

        wait_until(done, timeout=timeout, what=f"{count} more completed cycle(s)")

    # --- the registry -------------------------------------------------------------------------

    def registry(self) -> dict[str, dict[str, Any]]:
        path = self.workdir / "registry.db"
        assert path.exists(), "the daemon has not created its registry"

        async def read() -> dict[str, dict[str, Any]]:
            registry = SQLiteRegistry(path)
            try:
                rows = await registry.list_resources()
            finally:
                await registry.close()
            return {row.resource.name: row.resource.to_dict() for row in rows}

        return asyncio.run(read())


@pytest.fixture(scope="session")
def emulator() -> Iterator[EmulatorThread]:
    with EmulatorThread(base_fleet()) as emu:
        yield emu


@pytest.fixture
def fleet(emulator: EmulatorThread) -> Iterator[dict[str, Any]]:
    """The fleet this test starts from (a copy it may change and push with set_fleet)."""
    emulator.set_faults([])
    doc = base_fleet()
    emulator.set_fleet(doc)
    yield copy.deepcopy(doc)
    emulator.set_faults([])


@pytest.fixture
def daemons(
    emulator: EmulatorThread, fleet: dict[str, Any], tmp_path: Path
) -> Iterator[Callable[..., DaemonProcess]]:
    """A factory: daemons(config, log_format=..., env=...) → a started DaemonProcess.

    Every daemon still running at the end of the test is killed.
    """
    started: list[DaemonProcess] = []

    def start(
        config: dict[str, Any], *, log_format: str = "text", env: dict[str, str] | None = None
    ) -> DaemonProcess:
        workdir = tmp_path / f"d{len(started)}"
        workdir.mkdir()
        daemon = DaemonProcess(emulator, workdir, config, log_format=log_format, env=env)
        started.append(daemon)
        return daemon.start()

    yield start
    for daemon in started:
        daemon.kill()


def find_proxy(fleet: dict[str, Any], account: str, region: str, name: str) -> dict[str, Any]:
    for acct in fleet["accounts"]:
        if acct["id"] == account:
            for p in acct["regions"][region]["proxies"]:
                if p["name"] == name:
                    return dict(p)
    raise KeyError(name)


def remove_proxy(fleet: dict[str, Any], account: str, region: str, name: str) -> None:
    for acct in fleet["accounts"]:
        if acct["id"] == account:
            proxies = acct["regions"][region]["proxies"]
            acct["regions"][region]["proxies"] = [p for p in proxies if p["name"] != name]
            return
    raise KeyError(account)


def issued_credentials(emulator: EmulatorThread) -> set[str]:
    """Every access key id, secret key and session token the emulator has handed out.

    The emulator has no public listing of what it issued; its credential store is read here
    only to know which strings must never show up in the daemon's output.
    """
    issued = emulator.emulator.credentials._issued
    return {
        secret
        for identity, secret_key, token in issued.values()
        for secret in (identity.access_key_id, secret_key, token)
    }
