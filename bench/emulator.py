"""The AWS emulator in its own process, with its control API and its CPU seconds.

The emulator runs as `python -m discovery emulator` (a separate process), so its CPU does not
show in the scanner's figures; its CPU is read from /proc/<pid>/stat around each cycle.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

_LISTENING = re.compile(r"emulator listening on (\S+)")
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a running process (Linux /proc, no psutil)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # The command name (field 2) may hold spaces; the fields after its ")" are fixed.
    fields = stat[stat.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / _CLOCK_TICKS


class EmulatorProcess:
    """`discovery emulator --fleet FILE --latency-ms N --throttle B,R --warm` on a free port."""

    def __init__(
        self,
        *,
        fleet: Path,
        latency_ms: float,
        throttle: tuple[float, float],
        warm: bool = True,
        faults: Path | None = None,
    ) -> None:
        self.fleet = fleet
        self.faults = faults
        self.latency_ms = latency_ms
        self.throttle = throttle
        self.warm = warm
        self.url = ""
        self.startup_s = 0.0
        self._proc: subprocess.Popen[str] | None = None

    def start(self, timeout: float = 600.0) -> EmulatorProcess:
        cmd = [
            sys.executable,
            "-m",
            "discovery",
            "emulator",
            "--fleet",
            str(self.fleet),
            "--port",
            "0",
            "--latency-ms",
            f"{self.latency_ms:g}",
            "--throttle",
            f"{self.throttle[0]:g},{self.throttle[1]:g}",
        ]
        if self.warm:
            cmd.append("--warm")
        if self.faults is not None:
            cmd += ["--faults", str(self.faults)]
        started = time.perf_counter()
        self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        assert self._proc.stdout is not None
        deadline = time.monotonic() + timeout
        for line in self._proc.stdout:
            match = _LISTENING.search(line)
            if match:
                self.url = match.group(1)
                break
            if time.monotonic() > deadline:
                break
        if not self.url:
            self.stop()
            raise RuntimeError("the emulator did not start (see its output above)")
        self.startup_s = time.perf_counter() - started
        return self

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def cpu_seconds(self) -> float:
        return process_cpu_seconds(self.pid)

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()

    def __enter__(self) -> EmulatorProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- control API ------------------------------------------------------------------------

    def _request(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())

    def stats(self) -> dict[str, Any]:
        return dict(self._request("GET", "/_emulator/stats"))

    def reset(self) -> None:
        """Zero the call counters and refill every token bucket.

        Each measured cycle starts as a scheduled cycle would, minutes after the last one: with
        full buckets, so no cycle pays for the calls of the one measured before it.
        """
        self._request("POST", "/_emulator/stats/reset")
        burst, rate = self.throttle
        self._request("PUT", "/_emulator/settings", {"throttle": {"burst": burst, "rate": rate}})
