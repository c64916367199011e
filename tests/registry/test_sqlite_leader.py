"""`SQLiteLeaderLock`: one writer per SQLite file, through an `flock` on `<registry.path>.lock`,
and the registry's fence on it (issue 12, hole 5). Real files, real processes; no network."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from discovery.core.model import Changes
from discovery.registry.base import RegistryError
from discovery.registry.sqlite import LockLost, SQLiteRegistry
from discovery.registry.sqlite_leader import SQLiteLeaderLock, lock_path
from tests.registry.registry_support import make_resource

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "registry.db"


@pytest.fixture
def other_process(path: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process that holds the lock (as `discovery run`) until it is killed."""
    code = textwrap.dedent(
        f"""
        import asyncio, sys
        from pathlib import Path
        from discovery.registry.sqlite_leader import SQLiteLeaderLock

        async def main():
            lock = SQLiteLeaderLock(Path({str(path)!r}))
            await lock.start()
            assert await lock.try_acquire()
            print("locked", flush=True)
            sys.stdin.read()

        asyncio.run(main())
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    yield proc
    proc.kill()
    proc.wait(timeout=30)


async def test_one_holder_at_a_time_and_a_release_hands_over(path: Path) -> None:
    first, second = SQLiteLeaderLock(path), SQLiteLeaderLock(path)
    await first.start()
    await second.start()
    assert await first.try_acquire() and first.is_leader and first.held()
    assert not await second.try_acquire() and not second.is_leader and not second.held()
    assert second.last_error == ""  # refused, not broken: a ready follower
    assert second.other_holder == f"pid {os.getpid()} (discovery run)"
    assert await first.check()

    await first.release()
    assert not first.is_leader and not first.held()
    assert await second.try_acquire() and second.held()
    assert not await first.try_acquire()
    await second.release()
    await first.release()
    assert lock_path(path).exists()  # never deleted: a newcomer must lock the same file


async def test_a_refused_try_names_the_holders_pid_and_the_fix(
    path: Path, other_process: subprocess.Popen[str]
) -> None:
    lock = SQLiteLeaderLock(path, holder="discovery scan")
    await lock.start()
    assert not await lock.try_acquire()
    refusal = lock.refusal()
    assert f"pid {other_process.pid} (discovery run)" in refusal
    assert str(lock_path(path)) in refusal and "registry.path" in refusal
    await lock.release()


async def test_the_lock_of_a_killed_holder_is_free_at_once(
    path: Path, other_process: subprocess.Popen[str]
) -> None:
    lock = SQLiteLeaderLock(path)
    assert not await lock.try_acquire()
    other_process.send_signal(signal.SIGKILL)  # no handler runs: the kernel drops the flock
    other_process.wait(timeout=30)
    assert await lock.try_acquire()
    assert lock_path(path).read_text() == f"{os.getpid()} discovery run\n"
    await lock.release()
    assert lock_path(path).read_text() == ""  # released: nobody's pid


async def test_a_deleted_lock_file_ends_the_leadership(path: Path) -> None:
    lock, newcomer = SQLiteLeaderLock(path), SQLiteLeaderLock(path)
    assert await lock.try_acquire()
    lock_path(path).unlink()
    assert not lock.held()  # the fence refuses at once, before any check
    assert await newcomer.try_acquire()  # a newcomer locks the new file...
    assert not await lock.check()  # ...and the old holder steps down, saying why
    assert "deleted or replaced" in lock.last_error
    assert not await lock.try_acquire()  # it reopens the path: the newcomer holds that
    await newcomer.release()
    await lock.release()


async def test_a_lock_file_that_cannot_exist_is_led_vacantly_and_fences_every_apply(
    tmp_path: Path,
) -> None:
    """The registry's directory is missing: nobody can hold (or write) there, so the process
    leads, its cycles fail at the registry with the registry's own error, and the fence refuses
    every apply until the lock is really taken; then another holder makes it step down."""
    path = tmp_path / "missing" / "registry.db"
    lock = SQLiteLeaderLock(path)
    await lock.start()
    assert await lock.try_acquire() and lock.is_leader and lock.last_error == ""
    assert not lock.held()
    with pytest.raises(RegistryError, match="directory exists"):
        await SQLiteRegistry(path, fence=lock.held).list_resources()

    path.parent.mkdir()
    other = SQLiteLeaderLock(path)
    assert await other.try_acquire() and other.held()  # it got there first
    assert not await lock.check() and not lock.is_leader
    await other.release()
    assert await lock.check() is False and await lock.try_acquire() and lock.held()
    await lock.release()


async def test_a_fenced_registry_commits_only_while_its_lock_is_held(path: Path) -> None:
    lock, other = SQLiteLeaderLock(path), SQLiteLeaderLock(path)
    registry = SQLiteRegistry(path, fence=lock.held)
    with pytest.raises(LockLost, match=r"does not hold its lock file registry\.db\.lock"):
        await registry.apply(Changes(create=(make_resource("a"),)))  # not leader yet
    assert await registry.list_resources() == []  # reading needs no lock

    assert await lock.try_acquire()
    await registry.apply(Changes(create=(make_resource("a"),)))
    assert [s.resource.name for s in await registry.list_resources()] == ["a"]

    await lock.release()
    assert await other.try_acquire()  # another process leads now
    with pytest.raises(LockLost):
        await registry.apply(Changes(create=(make_resource("b"),)))
    assert [s.resource.name for s in await registry.list_resources()] == ["a"]
    await other.release()


async def test_the_fence_is_asked_inside_the_transaction_after_the_writes(path: Path) -> None:
    """The lock lost while the apply holds SQLite's write lock (the test seam runs there, just
    before the commit): the whole apply rolls back."""
    lock, other = SQLiteLeaderLock(path), SQLiteLeaderLock(path)
    assert await lock.try_acquire()
    lost: list[bool] = []

    def lose_the_lock() -> None:
        lock_path(path).unlink()  # from here on, the path names a file `lock` does not hold
        lost.append(True)

    registry = SQLiteRegistry(path, fence=lock.held, before_commit=lose_the_lock)
    with pytest.raises(LockLost):
        await registry.apply(Changes(create=(make_resource("a"), make_resource("b"))))
    assert lost == [True]
    assert await SQLiteRegistry(path).list_resources() == []
    await other.release()
    await lock.release()
