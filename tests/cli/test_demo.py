"""The README's first command: `discovery demo` tells its story and checks it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_demo_tells_the_story(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    proc = subprocess.run(
        [sys.executable, "-m", "discovery", "demo", "--workdir", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert "1. Dry run" in out and "4. Scan after the changes" in out
    assert "0 to create, 0 to update, 0 to delete" in out  # the steady-state scan
    assert "1 scope(s) failed; their resources were left as they are." in out
    assert "DEMO FAILED" not in out
    assert (tmp_path / "discovery.db").exists()


def test_demo_into_a_teleport_cluster_played_by_the_stand_in(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    proc = subprocess.run(
        [sys.executable, "-m", "discovery", "demo", "--teleport", "--workdir", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert "a Teleport cluster: the stand-in tctl" in out
    assert "(tctl: one `get db`, no `create` or `rm`)" in out
    assert "tctl wrote with 2 `tctl create` call(s) and 3 `tctl rm`" in out
    assert "DEMO FAILED" not in out
    assert not (tmp_path / "discovery.db").exists()
    assert (tmp_path / "tctl-state.json").exists()
