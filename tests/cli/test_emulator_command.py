"""`discovery emulator --fleet FILE` (the README's command) starts and answers."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

FLEET = Path(__file__).resolve().parents[2] / "discovery" / "demo" / "fleet.yaml"


def test_discovery_emulator_command_serves_the_fleet() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "discovery", "emulator", "--fleet", str(FLEET), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("emulator listening on http://127.0.0.1:"), line
        url = line.rsplit(" ", 1)[1].strip()
        assert not url.endswith(":0")
        with urllib.request.urlopen(f"{url}/_emulator/health", timeout=10) as response:
            assert json.load(response) == {"ok": True}
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
