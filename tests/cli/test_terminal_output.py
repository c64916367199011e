"""`discovery scan` at a terminal (a real pseudo-terminal): tables fit, colour unless NO_COLOR;
piped, the same scan prints the plain text scripts read."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
from pathlib import Path

from tests.harness.env import process_env

from .conftest import RETRIES, Harness, base_config, proxy

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
LONG = "payments-ledger-primary-postgres-cluster-with-a-long-name"


def run_in_a_terminal(harness: Harness, config: Path, env_extra: dict[str, str]) -> str:
    env = {**process_env(harness.emulator.url, RETRIES), "COLUMNS": "90", "LINES": "40"}
    env.update(env_extra)
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "discovery", "scan", "--dry-run", "--config", str(config)],
        stdin=follower,
        stdout=follower,
        stderr=subprocess.DEVNULL,
        env=env,
        cwd=harness.tmp_path,
    )
    os.close(follower)
    chunks: list[bytes] = []
    while True:
        ready, _, _ = select.select([leader], [], [], 120)
        assert ready, "no output from the scan within 120 s"
        try:
            data = os.read(leader, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    assert proc.wait(timeout=120) == 0
    os.close(leader)
    return b"".join(chunks).decode()


def long_named_fleet(harness: Harness) -> Path:
    fleet = harness.fleet
    fleet["accounts"][0]["regions"]["us-east-1"]["proxies"].append(proxy(LONG))
    harness.update_fleet(fleet)
    return harness.write_config(base_config())


def test_a_terminal_gets_tables_that_fit_with_colour(harness: Harness) -> None:
    out = run_in_a_terminal(harness, long_named_fleet(harness), {})
    assert "\x1b[32m" in out  # the create rows are green
    lines = [ANSI.sub("", line) for line in out.replace("\r", "").splitlines()]
    assert lines and all(len(line) <= 90 for line in lines), max(lines, key=len)
    assert any(line.lstrip().startswith("create") for line in lines)


def test_no_color_keeps_the_terminal_layout_without_colour(harness: Harness) -> None:
    out = run_in_a_terminal(harness, long_named_fleet(harness), {"NO_COLOR": "1"})
    assert not re.search(r"\x1b\[[0-9;]*m", out)
    assert "create" in out


def test_piped_output_is_the_plain_text_with_every_name_whole(harness: Harness) -> None:
    config = long_named_fleet(harness)
    result = harness.run("scan", "--dry-run", config=config)
    assert result.code == 0, result.stderr
    assert not ANSI.search(result.stdout)
    assert any(
        line.split()[:2] == ["create", f"{LONG}-rdsproxy-us-east-1-111111111111"]
        for line in result.stdout.splitlines()
    )
