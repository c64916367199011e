"""The fault matrix, registry side: SQLite locked, read-only or on a full disk, and PostgreSQL
losing its connection in the middle of an apply. `discovery scan` runs in a subprocess (or, to
hold root to file modes, in a forked child that runs the same `main`) against the emulator.

A cycle whose write fails exits 1 and must leave the registry exactly as it was; the next good
cycle must leave it exactly at the desired state.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import multiprocessing
import os
import resource
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from discovery.cli.main import main
from discovery.emulator import EmulatorThread
from tests.faults import paused
from tests.faults.invariants import check_cycle, check_recovered
from tests.faults.support import (
    ACCOUNT_A,
    EXIT_OK,
    EXIT_RUNTIME,
    WEST,
    Result,
    World,
    client_env,
    make_config,
    make_fleet,
)
from tests.harness.privileges import respect_file_modes
from tests.harness.wait import wait_until

SCAN = [sys.executable, "-m", "discovery", "scan", "--output", "json"]


def hold_lock(path: Path) -> subprocess.Popen[str]:
    """Another process holding the SQLite file's write lock (BEGIN EXCLUSIVE) until its stdin
    closes."""
    code = (
        "import sqlite3, sys\n"
        f"conn = sqlite3.connect({str(path)!r}, isolation_level=None)\n"
        "conn.execute('BEGIN EXCLUSIVE')\n"
        "print('locked', flush=True)\n"
        "sys.stdin.read()\n"
        "conn.execute('ROLLBACK')\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


def release(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None
    proc.stdin.close()
    assert proc.wait(timeout=30) == 0


# --- SQLite: locked by another process -----------------------------------------------------------


def test_sqlite_locked_longer_than_the_busy_timeout(world: World) -> None:
    """The write lock is held past the busy timeout (10 s): the apply gives up, writes nothing,
    exits 1 naming the lock; the fetch and plan still ran (readers are not blocked in WAL)."""
    holder = hold_lock(world.workdir / "registry.db")
    try:
        result = world.cycle(code=EXIT_RUNTIME)
    finally:
        release(holder)
    print(result.stderr)
    assert "is locked" in result.stderr and "busy timeout" in result.stderr
    world.recover()


def test_sqlite_locked_briefly_waits_and_applies(world: World) -> None:
    """The lock is held until the scan has fetched everything and waits to apply, then
    released: the apply goes through within the busy timeout."""
    before = world.snapshot()
    world.emulator.reset_stats()
    holder = hold_lock(world.workdir / "registry.db")
    try:
        scan = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "discovery",
                "scan",
                "--output",
                "json",
                "--config",
                str(world.config_path),
            ],
            env=client_env(world.emulator),
            cwd=world.workdir,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

        def fetched() -> bool:  # every scope's last listing answered: the plan comes next
            assert scan.poll() is None, scan.communicate()
            stats = world.emulator.stats()["by_operation"]
            return stats.get("DescribeDBProxyEndpoints", {}).get("ok", 0) >= 5

        wait_until(fetched, timeout=60, what="the scan to fetch every scope")
        time.sleep(1.0)  # the scan plans and then waits on the lock (10 s busy timeout)
        assert scan.poll() is None, "the scan did not wait for the lock"
        assert world.snapshot() == before
    finally:
        release(holder)
    out, err = scan.communicate(timeout=60)
    assert scan.returncode == EXIT_OK, err
    check_recovered(world.snapshot(), world.desired(), world.foreign)
    assert Result(scan.returncode, out, err).json()["plan"]["create"]


# --- SQLite: read-only ---------------------------------------------------------------------------


def _scan_respecting_file_modes(world: World, out: Path, err: Path) -> None:
    """A forked child that runs the CLI's main held to file modes (root ignores them).

    It stays the same user (see tests/harness/privileges.py), so it can still read the
    checkout and the venv wherever they live; no exec, so no new interpreter to start.
    """
    # pytest's capture replaced sys.stdout/stderr and the root logger's handlers: undo both
    sys.stdout = out.open("w")
    sys.stderr = err.open("w")
    logging.root.handlers.clear()
    code = 1
    try:
        os.environ.clear()
        os.environ.update(client_env(world.emulator))
        os.chdir(world.workdir)
        respect_file_modes()
        code = main(["scan", "--output", "json", "--config", str(world.config_path)])
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


@pytest.mark.parametrize("directory_writable", [True, False], ids=["file-ro", "file-and-dir-ro"])
def test_sqlite_read_only(world: World, directory_writable: bool) -> None:
    path = world.workdir / "registry.db"
    path.chmod(0o444)
    world.workdir.chmod(0o777 if directory_writable else 0o555)
    out, err = Path(tempfile.mktemp()), Path(tempfile.mktemp())
    before = world.snapshot()
    try:
        child = multiprocessing.get_context("fork").Process(
            target=_scan_respecting_file_modes, args=(world, out, err)
        )
        child.start()
        child.join(timeout=120)
        result = Result(child.exitcode or 0, out.read_text(), err.read_text())
    finally:
        path.chmod(0o644)
        world.workdir.chmod(0o755)
        out.unlink(missing_ok=True)
        err.unlink(missing_ok=True)
    print(result.stderr)
    assert result.code == EXIT_RUNTIME, result.stderr
    assert "Traceback" not in result.stderr
    assert str(path) in result.stderr
    assert "read-only" in result.stderr or "writable" in result.stderr, result.stderr
    check_cycle(
        before=before,
        after=world.snapshot(),
        desired=world.desired(),
        foreign=world.foreign,
        frozen=set(),
        registry_failed=True,
    )
    world.recover()


# --- SQLite: a full disk -------------------------------------------------------------------------


def bulk_fleet(proxies: int) -> dict[str, Any]:
    """Fleet v1 plus `proxies` more in A/eu-west-1: an apply of about 3 KB per proxy."""
    fleet = make_fleet(1)
    account = next(a for a in fleet["accounts"] if a["id"] == ACCOUNT_A)
    account["regions"][WEST]["proxies"] += [
        {
            "name": f"fill-{i:04d}",
            "tags": {"env": "prod", "padding": "x" * 200},
            "endpoints": [{"name": f"fill-{i:04d}-ro", "target_role": "READ_ONLY"}],
        }
        for i in range(proxies)
    ]
    return fleet


def fill(directory: Path, leave: int) -> Path:
    """Fill the file system of `directory` until less than `leave` bytes are free."""
    filler = directory / "filler"
    with filler.open("wb") as f:
        chunk = b"\0" * 65536
        while True:
            free = os.statvfs(directory).f_bavail * os.statvfs(directory).f_frsize
            if free <= leave:
                break
            try:
                f.write(chunk[: max(4096, min(len(chunk), free - leave))])
                f.flush()
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                break
    return filler


@contextlib.contextmanager
def small_disk(path: Path, size: str) -> Iterator[bool]:
    """A tmpfs of `size` mounted at `path` (True), or False where mounting is not allowed."""
    path.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        yield done.returncode == 0
    finally:
        if done.returncode == 0:
            subprocess.run(["umount", "-l", str(path)], check=True)


def test_sqlite_on_a_full_disk(clean_emulator: EmulatorThread, tmp_path: Path) -> None:
    """A 4 MiB tmpfs filled up to its last 128 KiB; the cycle's apply (about 1 MB of new
    resources) cannot fit: SQLite rolls back, the scan exits 1 naming the full disk, nothing is
    written. Space freed, the next cycle applies. Where mounting is not allowed (not root), the
    same is simulated with a file size limit (RLIMIT_FSIZE) on the scan process."""
    with small_disk(tmp_path / "disk", "4m") as mounted:
        world = World(
            emulator=clean_emulator,
            workdir=tmp_path,
            registry_spec=f"sqlite:{tmp_path / 'disk' / 'registry.db'}",
            config=make_config(registry={"backend": "sqlite", "path": "disk/registry.db"}),
        )
        world.prepare()
        world.set_fleet(bulk_fleet(300))
        before = world.snapshot()
        if mounted:
            filler = fill(tmp_path / "disk", leave=128 * 1024)
            result = world.scan()
        else:
            size = (tmp_path / "disk" / "registry.db").stat().st_size
            filler = None
            result = _scan_with_file_limit(world, size + 64 * 1024)
        print(result.stderr)
        assert result.code == EXIT_RUNTIME, result.stderr
        assert "disk is full" in result.stderr or "I/O error" in result.stderr, result.stderr
        print("full disk simulated with", "tmpfs" if mounted else "RLIMIT_FSIZE")
        check_cycle(
            before=before,
            after=world.snapshot(),
            desired=world.desired(),
            foreign=world.foreign,
            frozen=set(),
            registry_failed=True,
        )
        integrity = sqlite3.connect(tmp_path / "disk" / "registry.db")
        try:
            assert integrity.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        finally:
            integrity.close()
        if filler is not None:
            filler.unlink()
        world.recover()


def _scan_with_file_limit(world: World, limit: int) -> Result:
    def limit_files() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a kill
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    proc = subprocess.run(
        [*SCAN, "--config", str(world.config_path)],
        capture_output=True,
        text=True,
        env=client_env(world.emulator),
        cwd=world.workdir,
        timeout=120,
        preexec_fn=limit_files,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


# --- PostgreSQL: the connection dropped in the middle of an apply -------------------------------


@pytest.fixture
def pg_world(clean_emulator: EmulatorThread, tmp_path: Path) -> Iterator[World]:
    from tests.registry import postgres_support

    dsn, schema = postgres_support.new_schema()
    made = World(
        emulator=clean_emulator,
        workdir=tmp_path,
        registry_spec=f"postgres:{dsn}",
        config=make_config(registry={"backend": "postgres", "dsn": dsn}),
    )
    made.prepare()
    try:
        yield made
    finally:
        postgres_support.drop_schema(schema)


def discovery_backends(dsn: str, *, in_transaction: bool) -> list[int]:
    from tests.registry.postgres_support import sql

    state = "AND xact_start IS NOT NULL" if in_transaction else ""
    rows = sql(
        dsn,
        "SELECT pid FROM pg_stat_activity WHERE application_name = 'discovery' "
        f"AND pid <> pg_backend_pid() {state}",
    )
    return [int(str(pid)) for (pid,) in rows]


def terminate(dsn: str, pids: list[int]) -> None:
    from tests.registry.postgres_support import sql

    for pid in pids:
        sql(dsn, "SELECT pg_terminate_backend(%s)", (pid,))


def test_postgres_connection_dropped_mid_apply(pg_world: World) -> None:
    """The apply has written everything and is about to commit (the test hook holds it there)
    when the server terminates its connection: the transaction is lost, the scan exits 1
    naming it, the registry is as before; the next cycle applies everything."""
    world = pg_world
    dsn = world.registry_spec.removeprefix("postgres:")
    marker = world.workdir / "paused"
    before = world.snapshot()
    scan = subprocess.Popen(
        paused.command(marker, "scan", "--output", "json", "--config", str(world.config_path)),
        env=client_env(world.emulator),
        cwd=world.workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(marker.exists, timeout=60, what="the apply to reach its commit")
        pids = discovery_backends(dsn, in_transaction=True)
        assert len(pids) == 1, pids
        terminate(dsn, pids)
    finally:
        marker.unlink(missing_ok=True)
    _, err = scan.communicate(timeout=60)
    print(err)
    assert scan.returncode == EXIT_RUNTIME, err
    assert "Traceback" not in err
    assert "terminated the connection" in err or "cannot reach PostgreSQL" in err, err
    check_cycle(
        before=before,
        after=world.snapshot(),
        desired=world.desired(),
        foreign=world.foreign,
        frozen=set(),
        registry_failed=True,
    )
    world.recover()


def test_postgres_connection_dropped_during_a_large_apply(pg_world: World) -> None:
    """No hook: a 2,000-resource apply, its connection terminated as soon as PostgreSQL shows
    it inside a transaction. Whenever the cut lands, the registry is before or after."""
    world = pg_world
    dsn = world.registry_spec.removeprefix("postgres:")
    world.set_fleet(bulk_fleet(1000))
    before = world.snapshot()
    scan = subprocess.Popen(
        [*SCAN, "--config", str(world.config_path)],
        env=client_env(world.emulator),
        cwd=world.workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    cut: list[int] = []

    def in_transaction() -> bool:
        if scan.poll() is not None:
            return True
        pids = discovery_backends(dsn, in_transaction=True)
        if pids:
            terminate(dsn, pids)
            cut.extend(pids)
        return bool(pids)

    wait_until(in_transaction, timeout=60, what="the apply's transaction", interval=0.005)
    _, err = scan.communicate(timeout=60)
    after = world.snapshot()
    print(f"exit {scan.returncode}, connection cut: {bool(cut)}")
    if scan.returncode == EXIT_RUNTIME:
        assert after == before, "a failed apply left part of its writes"
    else:
        assert scan.returncode == EXIT_OK, err
        check_recovered(after, world.desired(), world.foreign)
    world.recover()
