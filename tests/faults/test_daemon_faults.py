"""The fault matrix, daemon side: `discovery run` killed with SIGKILL in the middle of an apply
(SQLite and PostgreSQL), and an assumed role that becomes unassumable between two cycles.

"Mid-apply" is hit deterministically with a pause injected before the commit
(`tests/faults/paused.py`, the registries' `before_commit` seam): the apply has written
everything and is about to commit when the daemon is killed, so the registry must be exactly as
before. The SQLite row also kills without the hook, when another process sees the write lock
taken (a real race): then the registry must be before or after, nothing in between.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from discovery.emulator import EmulatorThread
from tests.faults.invariants import check_cycle, check_recovered, frozen_areas
from tests.faults.paused import PausedDaemon
from tests.faults.support import (
    ACCOUNT_A,
    ACCOUNT_B,
    EAST,
    WEST,
    Daemon,
    World,
    make_config,
    make_fleet,
)
from tests.harness.wait import wait_until


def daemon_config(world: World) -> None:
    # One cycle at start, then none for an hour: each daemon here runs exactly one cycle.
    world.config["poll_interval"] = "1h"
    world.config.pop("aws_client", None)


@pytest.fixture(params=["sqlite", "postgres"])
def any_world(
    request: pytest.FixtureRequest, clean_emulator: EmulatorThread, tmp_path: Path
) -> Iterator[World]:
    if request.param == "sqlite":
        spec = f"sqlite:{tmp_path / 'registry.db'}"
        registry: dict[str, Any] = {"backend": "sqlite", "path": "registry.db"}
        cleanup = None
    else:
        from tests.registry import postgres_support

        dsn, schema = postgres_support.new_schema()
        spec = f"postgres:{dsn}"
        registry = {"backend": "postgres", "dsn": dsn}

        def cleanup() -> None:
            postgres_support.drop_schema(schema)

    made = World(
        emulator=clean_emulator,
        workdir=tmp_path,
        registry_spec=spec,
        config=make_config(registry=registry),
    )
    daemon_config(made)
    made.prepare()
    try:
        yield made
    finally:
        if cleanup is not None:
            cleanup()


def assert_registry_usable(world: World) -> None:
    """Nothing is left half-done: SQLite's file is intact and unlocked; PostgreSQL has no
    transaction of the killed daemon left open."""
    kind, _, rest = world.registry_spec.partition(":")
    if kind == "sqlite":
        conn = sqlite3.connect(rest, isolation_level=None, timeout=0)
        try:
            assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
            conn.execute("BEGIN IMMEDIATE")  # no one holds the write lock
            conn.execute("ROLLBACK")
        finally:
            conn.close()
        return
    from tests.registry.postgres_support import sql

    def no_open_transaction() -> bool:
        rows = sql(
            rest,
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'discovery' "
            "AND xact_start IS NOT NULL AND pid <> pg_backend_pid()",
        )
        return rows == [(0,)]

    wait_until(no_open_transaction, timeout=30, what="the killed daemon's session to end")


def test_daemon_killed_mid_apply_leaves_the_registry_as_before(any_world: World) -> None:
    world = any_world
    marker = world.workdir / "paused"
    before = world.snapshot()
    daemon = PausedDaemon(world, marker=marker, name="killed").start()
    try:
        wait_until(marker.exists, timeout=60, what="the first cycle's apply to reach its commit")
        daemon.kill()
    finally:
        daemon.kill()
        marker.unlink(missing_ok=True)
    assert world.snapshot() == before, "a killed apply left part of its writes"
    assert_registry_usable(world)

    restarted = Daemon(world, name="restarted").start()
    try:
        status = restarted.wait_completed(1)
        assert status["last_cycle"]["result"] == "ok", status["last_cycle"]
        check_recovered(world.snapshot(), world.desired(), world.foreign)
    finally:
        assert restarted.stop() == 0


def big_fleet(proxies: int) -> dict[str, Any]:
    fleet = make_fleet(1)
    account = next(a for a in fleet["accounts"] if a["id"] == ACCOUNT_A)
    account["regions"][WEST]["proxies"] += [
        {
            "name": f"bulk-{i:05d}",
            "tags": {"env": "prod", "index": str(i)},
            "endpoints": [{"name": f"bulk-{i:05d}-ro", "target_role": "READ_ONLY"}],
        }
        for i in range(proxies)
    ]
    return fleet


def test_daemon_killed_while_holding_the_sqlite_write_lock(
    clean_emulator: EmulatorThread, tmp_path: Path
) -> None:
    """No hook: a 3,000-resource apply; the daemon is killed the moment another process finds
    the file's write lock taken. The registry is exactly before or exactly after."""
    world = World(
        emulator=clean_emulator,
        workdir=tmp_path,
        registry_spec=f"sqlite:{tmp_path / 'registry.db'}",
        config=make_config(),
    )
    daemon_config(world)
    world.prepare()
    world.set_fleet(big_fleet(1500))
    before = world.snapshot()
    probe = sqlite3.connect(tmp_path / "registry.db", isolation_level=None, timeout=0)

    def write_lock_taken() -> bool:
        try:
            probe.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError:
            return True  # SQLITE_BUSY: the daemon's apply holds the write lock
        probe.execute("ROLLBACK")
        return False

    daemon = Daemon(world, name="killed").start()
    try:
        wait_until(write_lock_taken, timeout=120, what="the apply's write lock", interval=0.001)
        daemon.kill()
    finally:
        daemon.kill()
        probe.close()
    after = world.snapshot()
    outcome = "before" if after == before else "after"
    print(f"killed holding the write lock: the registry is as {outcome} the apply")
    if outcome == "after":
        check_recovered(after, world.desired(), world.foreign)
    assert_registry_usable(world)

    restarted = Daemon(world, name="restarted").start()
    try:
        restarted.wait_completed(1)
        check_recovered(world.snapshot(), world.desired(), world.foreign)
    finally:
        assert restarted.stop() == 0


def test_role_unassumable_between_cycles(clean_emulator: EmulatorThread, tmp_path: Path) -> None:
    """The daemon keeps its assumed-role sessions between cycles. Role B's credentials live
    2 s, then its trust policy stops accepting us: B's scopes fail and are frozen while the
    other accounts' changes are applied; the trust restored, the next cycles catch up."""
    world = World(
        emulator=clean_emulator,
        workdir=tmp_path,
        registry_spec=f"sqlite:{tmp_path / 'registry.db'}",
        config=make_config(),
    )
    world.config.pop("aws_client")
    world.config["poll_interval"] = "1s"
    world.config["poll_jitter"] = "0s"
    world.fleet = make_fleet(0, credential_duration_seconds=2)
    world.prepare()
    world.set_fleet(make_fleet(0, credential_duration_seconds=2))  # nothing pending yet
    before = world.snapshot()
    daemon = Daemon(world).start()
    try:
        status = daemon.wait_completed(1)
        assert status["last_cycle"]["result"] == "ok", status["last_cycle"]
        assert world.snapshot() == before  # steady state: nothing written

        changed = make_fleet(1, credential_duration_seconds=2)
        for account in changed["accounts"]:
            if account["id"] == ACCOUNT_B:
                account["roles"] = [{"name": "discovery", "external_id": "rotated"}]
        world.set_fleet(changed)
        done = daemon.completed()
        daemon.wait_completed(done + 1)  # the cycle that may have straddled the change
        middle = world.snapshot()
        status = daemon.wait_completed(done + 2)  # a cycle wholly after the change
        scopes = status["last_cycle"]["scopes"]
        assert frozen_areas(scopes) == {(ACCOUNT_B, EAST), (ACCOUNT_B, WEST)}, scopes
        assert all("sts:AssumeRole" in s["error"] for s in scopes if s["status"] == "failed"), (
            scopes
        )
        check_cycle(
            before=middle,
            after=world.snapshot(),
            desired=world.desired(),
            foreign=world.foreign,
            frozen=frozen_areas(scopes),
            require_pending=True,
        )
        assert all(
            middle[name] == before[name]
            for name, stored in before.items()
            if stored.resource.aws.account_id == ACCOUNT_B
        ), "role B's resources changed although it could not be assumed"

        world.set_fleet(make_fleet(1, credential_duration_seconds=2))  # trust restored
        done = daemon.completed()
        status = daemon.wait_completed(done + 2)
        assert status["last_cycle"]["result"] == "ok", status["last_cycle"]
        check_recovered(world.snapshot(), world.desired(), world.foreign)
        # one line per failed scope; aiobotocore's refresh traceback stays out of the log
        assert "Traceback" not in daemon.log(), daemon.log()
    finally:
        assert daemon.stop() == 0
