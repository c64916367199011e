"""The README's first command: `discovery demo` tells its story and checks it."""

from __future__ import annotations

import os
import socket
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


def demo_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    (tmp_path / "tmp").mkdir(exist_ok=True)
    env["TMPDIR"] = str(tmp_path / "tmp")  # where the demo's temporary folder goes
    return env


def try_commands(out: str) -> list[str]:
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Try: "))
    commands = [lines[start].removeprefix("Try: ")]
    commands += [line.strip() for line in lines[start + 1 :] if line.startswith("     ")]
    return commands


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_demo_is_short_and_removes_its_temporary_folder(tmp_path: Path) -> None:
    env = demo_env(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "discovery", "demo"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert list((tmp_path / "tmp").iterdir()) == []
    assert "the demo's files were removed" in out
    # At a glance: counts per step, a few sample rows, no full 48-row tables, scopes only failed.
    assert len(out.splitlines()) < 70, out
    assert "… and 45 more" in out
    assert out.count("Scopes: 6 of 6 ok") == 3 and "Scopes: 5 of 6 ok" in out


def test_every_try_command_works_as_printed(tmp_path: Path) -> None:
    """Run in order, from the folder the demo ran in (the emulator one on a free port)."""
    env = demo_env(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "discovery", "demo"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stdout[-3000:]
    commands = try_commands(proc.stdout)
    assert len(commands) == 5, commands
    port = str(free_port())
    emulator = None
    try:
        for command in commands:
            command = command.replace("4566", port)
            if " emulator " in command:
                emulator = subprocess.Popen(
                    command.split("#")[0], shell=True, cwd=tmp_path, env=env,
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                )  # fmt: skip
                wait_for_port(int(port))
                continue
            done = subprocess.run(
                command, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True,
                timeout=180,
            )  # fmt: skip
            assert done.returncode == 0, (command, done.stdout[-2000:], done.stderr[-2000:])
    finally:
        if emulator is not None:
            emulator.terminate()
            emulator.wait(timeout=30)
    assert emulator is not None
    assert (tmp_path / "discovery-demo" / "discovery.db").exists()


def wait_for_port(port: int) -> None:
    from tests.harness.wait import wait_until

    def listening() -> bool:
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0

    wait_until(listening, timeout=60, what=f"the emulator on port {port}")
