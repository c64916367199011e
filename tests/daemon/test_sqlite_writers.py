"""One SQLite file, several processes (issue 12, holes 5 and 8), end to end: real `discovery run`
and `discovery scan` processes, the emulator over HTTP, a real file.

Two daemons on one `registry.path` elect one leader through the file's lock (`<path>.lock`):
the other is a ready follower and takes over within one poll interval of the leader's kill -9;
a `scan` (say from cron, with an older config) that finds the lock held exits 1 naming the
holder and writes nothing; and a registry file deleted or moved aside under a running daemon is
re-created, resources and all, by its next cycle.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from discovery.emulator import EmulatorThread
from discovery.registry.sqlite import SQLiteRegistry
from tests.daemon.conftest import ACCOUNT_B, base_config
from tests.harness.cli import Result, run_subprocess
from tests.harness.daemon import DaemonProcess
from tests.harness.env import process_env
from tests.harness.fleet import fleet_names, proxy, remove_proxy
from tests.harness.wait import wait_until

Daemons = Callable[..., DaemonProcess]
# A follower tries every min(poll_interval / 2, 10 s) = 2 s: a takeover within one poll
# interval leaves it one missed try of slack (as in test_replicas.py for PostgreSQL).
POLL_S = 4.0


def shared_config(path: Path, **overrides: Any) -> dict[str, Any]:
    return base_config(
        poll_interval=f"{POLL_S:g}s",
        registry={"backend": "sqlite", "path": str(path)},
        **overrides,
    )


def documents(path: Path) -> dict[str, dict[str, Any]]:
    async def read() -> dict[str, dict[str, Any]]:
        registry = SQLiteRegistry(path)
        try:
            return {s.resource.name: s.resource.to_dict() for s in await registry.list_resources()}
        finally:
            await registry.close()

    return asyncio.run(read())


def in_step(path: Path, fleet: dict[str, Any]) -> bool:
    return path.exists() and set(documents(path)) == fleet_names(fleet)


def leader_value(daemon: DaemonProcess) -> float:
    daemon.assert_running()
    return daemon.scrape().value("rdsproxy_discovery_leader")


def applied(daemon: DaemonProcess) -> dict[str, float]:
    metrics = daemon.scrape()
    return {
        action: metrics.value("rdsproxy_discovery_changes_applied_total", action=action)
        for action in ("create", "update", "delete")
    }


def cycles(daemon: DaemonProcess) -> float:
    metrics = daemon.scrape()
    return sum(
        metrics.value("rdsproxy_discovery_cycles_total", result=result)
        for result in ("ok", "partial", "error", "fenced")
    )


def the_leader(replicas: list[DaemonProcess]) -> tuple[DaemonProcess, DaemonProcess]:
    wait_until(
        lambda: sum(leader_value(d) for d in replicas) == 1, timeout=30, what="exactly one leader"
    )
    [leader] = [d for d in replicas if leader_value(d) == 1]
    [follower] = [d for d in replicas if d is not leader]
    return leader, follower


def scan(emulator: EmulatorThread, workdir: Path, config: dict[str, Any], *flags: str) -> Result:
    workdir.mkdir(exist_ok=True)
    config_path = workdir / "scan.yaml"
    config_path.write_text(yaml.safe_dump(config))
    return run_subprocess(
        ["scan", *flags, "--config", str(config_path)],
        env=process_env(emulator.url, {}),
        cwd=workdir,
    )


def change_the_fleet(emulator: EmulatorThread, fleet: dict[str, Any]) -> None:
    """One proxy added, one removed: 2 creates, 2 deletes (with the proxies' custom endpoints)."""
    fleet["accounts"][0]["regions"]["us-east-1"]["proxies"].append(proxy("a-east-3"))
    remove_proxy(fleet, ACCOUNT_B, "eu-west-1", "b-west-2")
    emulator.set_fleet(fleet)


# --- hole 5: two writers on one file ------------------------------------------------------


def test_two_daemons_on_one_sqlite_file_one_leads_the_other_follows_and_takes_over_on_kill_9(
    daemons: Daemons, emulator: EmulatorThread, fleet: dict[str, Any], tmp_path: Path
) -> None:
    path = tmp_path / "shared" / "registry.db"
    path.parent.mkdir()
    replicas = [daemons(shared_config(path)) for _ in range(2)]
    for replica in replicas:
        replica.wait_ready()  # the follower too: its lock file opens, the registry answers
    leader, follower = the_leader(replicas)
    wait_until(lambda: in_step(path, fleet), timeout=30, what="the registry to be in step")

    # Over two poll intervals: still exactly one leader, and only it runs cycles.
    deadline = time.monotonic() + 2 * POLL_S
    while time.monotonic() < deadline:
        assert (leader_value(leader), leader_value(follower)) == (1, 0)
        time.sleep(0.5)
    assert cycles(follower) == 0 and cycles(leader) >= 2
    status = follower.status()
    assert status["role"] == "follower" and status["ready"] is True
    assert status["leadership"]["elected"] is True and status["leadership"]["last_error"] == ""
    assert status["cycles"]["completed"] == 0 and status["last_cycle"] is None
    code, body, _ = follower.get("/readyz")
    assert code == 200 and "following" in body, body
    assert leader.status()["role"] == "leader"
    assert leader.proc is not None
    assert path.with_name("registry.db.lock").read_text() == f"{leader.proc.pid} discovery run\n"

    change_the_fleet(emulator, fleet)
    leader.kill()  # kill -9: the kernel drops its flock
    killed = time.monotonic()
    wait_until(lambda: leader_value(follower) == 1, timeout=30, what="the follower to take over")
    took = time.monotonic() - killed
    print(f"takeover after kill -9 of the SQLite leader: {took:.2f}s")
    assert took <= POLL_S, f"took {took:.2f}s, more than one poll interval ({POLL_S:g}s)"

    wait_until(lambda: in_step(path, fleet), timeout=POLL_S * 4 + 20, what="the registry in step")
    follower.wait_cycles(1, timeout=POLL_S * 3 + 10)
    assert in_step(path, fleet)
    # The new leader wrote exactly the change, once: nothing twice, nothing lost.
    assert applied(follower) == {"create": 2, "update": 0, "delete": 2}
    status = follower.status()
    assert status["role"] == "leader" and status["last_cycle"]["result"] == "ok"
    assert "Traceback" not in follower.log()


def test_a_scan_while_a_daemon_holds_the_lock_exits_1_naming_its_pid_and_writes_nothing(
    daemons: Daemons, emulator: EmulatorThread, fleet: dict[str, Any], tmp_path: Path
) -> None:
    path = tmp_path / "shared" / "registry.db"
    path.parent.mkdir()
    daemon = daemons(shared_config(path))
    daemon.wait_ready()
    wait_until(lambda: in_step(path, fleet), timeout=30, what="the registry to be in step")
    before = documents(path)

    # A cron scan with an older config (one region only): were it to write, it would delete
    # every eu-west-1 resource the daemon keeps, and the daemon would re-create them.
    older = shared_config(path, regions=("us-east-1",))
    result = scan(emulator, tmp_path / "cron", older)
    print(result.stderr)
    assert result.code == 1, result.stderr
    [line] = result.stderr.strip().splitlines()  # one line, no progress, no traceback
    assert daemon.proc is not None and f"pid {daemon.proc.pid} (discovery run)" in line
    assert str(path) in line and "registry.path" in line and "stop that process" in line
    assert result.stdout == ""
    assert documents(path) == before

    # Reading needs no lock: a dry run and `registry list` work beside the daemon.
    dry = scan(emulator, tmp_path / "cron", older, "--dry-run", "--output", "json")
    # Exit 4: it plans to delete half the registry, which the delete guard withholds.
    assert dry.code == 4, dry.stderr
    assert dry.json()["dry_run"] is True
    listed = run_subprocess(
        ["registry", "list", "--config", str(tmp_path / "cron" / "scan.yaml")],
        env=process_env(emulator.url, {}),
        cwd=tmp_path / "cron",
    )
    assert listed.code == 0, listed.stderr
    assert documents(path) == before

    assert daemon.stop() == 0  # the daemon gone, its lock is free: the scan runs
    ran = scan(emulator, tmp_path / "cron", shared_config(path))
    assert ran.code == 0, ran.stderr


# --- hole 8: a deleted or moved file --------------------------------------------------------


def test_a_registry_file_moved_aside_under_the_daemon_is_recreated_by_its_next_cycle(
    daemons: Daemons, fleet: dict[str, Any]
) -> None:
    daemon = daemons(base_config())
    daemon.wait_ready()
    path = daemon.workdir / "registry.db"
    wait_until(lambda: in_step(path, fleet), timeout=30, what="the registry to be in step")
    created = applied(daemon)["create"]
    assert created == len(fleet_names(fleet))

    path.rename(path.with_name("registry.db.aside"))  # as the corrupt-file hint says to
    daemon.wait_cycles(1, timeout=30)
    wait_until(lambda: in_step(path, fleet), timeout=30, what="the registry to be re-created")
    assert applied(daemon)["create"] == 2 * created  # every resource, once more
    wait_until(lambda: daemon.get("/readyz")[0] == 200, timeout=30, what="/readyz 200")
    status = daemon.status()
    assert status["ready"] is True and status["last_cycle"]["result"] == "ok"
    assert status["registry"]["reachable"] is True
    assert "no such table" not in daemon.log()

    path.unlink()  # deleted outright this time
    daemon.wait_cycles(1, timeout=30)
    wait_until(lambda: in_step(path, fleet), timeout=30, what="the registry to be re-created")
    assert applied(daemon)["create"] == 3 * created
    assert daemon.status()["last_cycle"]["result"] == "ok"
