"""`discovery run` as a real subprocess: its log in a file, its HTTP API, its SQLite registry.

Every wait polls with a deadline (never a fixed sleep used as an assertion), so the tests hold
on a loaded two-core machine. Whoever starts a daemon kills it at the end of the test.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families

from discovery.emulator import EmulatorThread
from discovery.registry.sqlite import SQLiteRegistry
from tests.harness.env import process_env
from tests.harness.wait import wait_until

_LISTENING = re.compile(r"listening on (http://[^\s\"]+)")


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
    """`python -m discovery run --config CONFIG --listen 127.0.0.1:0 ARGS` in `workdir`."""

    def __init__(
        self,
        endpoint: str,
        workdir: Path,
        config_path: Path,
        *,
        log_path: Path,
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.workdir = workdir
        self.config_path = config_path
        self.log_path = log_path
        self.args = list(args)
        self.extra_env = dict(env or {})
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""

    # --- process ------------------------------------------------------------------------------

    def write_config(self, config: Mapping[str, Any] | str) -> None:
        """The config the daemon reads (at start, and again on SIGHUP)."""
        text = config if isinstance(config, str) else yaml.safe_dump(dict(config))
        self.config_path.write_text(text)

    def env(self) -> dict[str, str]:
        return process_env(self.endpoint, self.extra_env)

    def command(self) -> list[str]:
        """The command line; a subclass may run the CLI another way (e.g. with a test seam)."""
        return [sys.executable, "-m", "discovery", *self.cli_args()]

    def cli_args(self) -> list[str]:
        return ["run", "--config", str(self.config_path), "--listen", "127.0.0.1:0", *self.args]

    def start(self) -> DaemonProcess:
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                self.command(),
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env(),
                cwd=self.workdir,
            )
        self.url = wait_until(self._bound_url, timeout=30, what="the daemon to listen")
        return self

    def _bound_url(self) -> str | None:
        self.assert_running()
        match = _LISTENING.search(self.log())
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
        """SIGKILL (kill -9): no handler runs, no transaction is finished; then reap it."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)

    def stop(self) -> int:
        """SIGTERM and the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.terminate()
        return self.proc.wait(timeout=30)

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

    def wait_completed(self, count: int, timeout: float = 60) -> dict[str, Any]:
        """Wait until `count` cycles have completed in all; the /status document then."""

        def done() -> dict[str, Any] | None:
            self.assert_running()
            status = self.status()
            return status if int(status["cycles"]["completed"]) >= count else None

        return wait_until(done, timeout=timeout, what=f"{count} completed cycle(s)")

    # --- the registry -------------------------------------------------------------------------

    def registry(self) -> dict[str, dict[str, Any]]:
        """The resources in the daemon's SQLite registry (`registry.db` in its workdir)."""
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


def issued_credentials(emulator: EmulatorThread) -> set[str]:
    """Every access key id, secret key and session token the emulator has handed out.

    The emulator has no public listing of what it issued; its credential store is read here
    only to know which strings must never show up in a daemon's output.
    """
    issued = emulator.emulator.credentials._issued
    return {
        secret
        for identity, secret_key, token in issued.values()
        for secret in (identity.access_key_id, secret_key, token)
    }
