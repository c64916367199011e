"""`discovery run --once` and `run --once --dry-run`: one daemon cycle in the foreground, as a
subprocess against the emulator, with scan's exit codes (0 done, 1 no cycle, 3 scopes failed,
4 deletes withheld)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from discovery.registry.sqlite_leader import SQLiteLeaderLock
from tests.cli.conftest import ACCOUNT_A, Harness, base_config, base_fleet
from tests.harness.fleet import fleet_names


def test_once_applies_one_cycle_and_exits_0(harness: Harness) -> None:
    config = harness.write_config(base_config())
    result = harness.run("run", "--once", config=config)
    assert result.code == 0, result.stderr
    assert result.stdout == ""  # the daemon's log lines go to stderr, as `run`'s do
    assert "cycle finished" in result.stderr and "16 created" in result.stderr
    assert "listening on" not in result.stderr  # no HTTP server, no schedule
    assert set(harness.registry(config)) == fleet_names(base_fleet())

    again = harness.run("run", "--once", config=config)
    assert again.code == 0, again.stderr
    assert "0 created, 0 updated, 0 deleted, 16 unchanged" in again.stderr


def test_once_exit_3_when_a_scope_fails(harness: Harness) -> None:
    config = harness.write_config(base_config())
    harness.emulator.set_faults(
        [
            {
                "account": ACCOUNT_A,
                "region": "eu-west-1",
                "operation": "DescribeDBProxies",
                "code": "AccessDenied",
            }
        ]
    )
    result = harness.run("run", "--once", config=config)
    assert result.code == 3, result.stderr
    assert "scope failed" in result.stderr and "AccessDenied" in result.stderr


def test_once_exit_4_when_deletes_are_withheld(harness: Harness) -> None:
    config = harness.write_config(base_config())
    assert harness.run("run", "--once", config=config).code == 0
    fleet = base_fleet()
    fleet["accounts"][0]["regions"]["us-east-1"]["proxies"] = []  # 4 resources gone at once
    harness.update_fleet(fleet)
    result = harness.run("run", "--once", config=config)
    assert result.code == 4, result.stderr
    assert "[empty-scope]" in result.stderr
    assert set(harness.registry(config)) == fleet_names(base_fleet())  # nothing deleted


def test_once_dry_run_plans_and_writes_nothing(harness: Harness) -> None:
    config = harness.write_config(base_config())
    result = harness.run("run", "--once", "--dry-run", config=config)
    assert result.code == 0, result.stderr
    assert "dry-run, nothing written" in result.stderr and "would create 16" in result.stderr
    assert harness.registry(config) == {}


def test_once_is_exit_1_when_another_process_holds_the_registry(
    harness: Harness, tmp_path: Path
) -> None:
    config = harness.write_config(base_config())
    lock = SQLiteLeaderLock(tmp_path / "registry.db", holder="a test")

    async def take() -> bool:
        await lock.start()
        return await lock.try_acquire()

    assert asyncio.run(take())
    try:
        result = harness.run("run", "--once", config=config)
        assert result.code == 1, result.stderr
        lines = [line for line in result.stderr.splitlines() if line.startswith("discovery:")]
        assert len(lines) == 1 and "run --once ran no cycle" in lines[0], result.stderr
        assert "Traceback" not in result.stderr
        # a dry run takes no lock: it still plans
        shadow = harness.run("run", "--once", "--dry-run", config=config)
        assert shadow.code == 0, shadow.stderr
    finally:
        asyncio.run(lock.release())
