"""The backend slot alone: a reload's backend is swapped in whole, the old one released and
closed; of two reloads between cycles the last wins; and when a reload needs a new backend."""

from __future__ import annotations

import logging
import os
import resource
from pathlib import Path
from typing import Any

import pytest

from discovery.daemon.backend import Backend, BackendSlot, GuardedRegistry, needs_new_backend
from discovery.daemon.fds import EMFILE_HINT
from discovery.registry.base import RegistryError
from discovery.registry.leader import AlwaysLeader
from discovery.registry.memory import MemoryRegistry
from discovery.registry.sqlite import SQLiteRegistry
from tests.daemon.inprocess import FakeLeadership, Lock, make_config


def a_backend(events: list[str]) -> tuple[Backend, MemoryRegistry, FakeLeadership]:
    registry, leadership = MemoryRegistry(), FakeLeadership(Lock(), log=events)
    return Backend.of(registry, leadership), registry, leadership


async def test_swap_puts_the_offered_backend_in_and_closes_the_old_one() -> None:
    events: list[str] = []
    first, first_registry, _ = a_backend(events)
    second, second_registry, _ = a_backend(events)
    slot = BackendSlot(first)
    assert await slot.swap() is None  # nothing offered: nothing changes
    assert slot.current is first and not slot.pending

    slot.offer(second)
    assert slot.pending and slot.current is first  # not before the swap
    assert await slot.swap() is first
    assert slot.current is second and not slot.pending
    assert events == ["release"] and first_registry.closed and not second_registry.closed


async def test_of_two_reloads_between_cycles_the_last_wins_and_the_first_is_closed() -> None:
    events: list[str] = []
    first, _, _ = a_backend(events)
    unused, unused_registry, _ = a_backend(events)
    last, last_registry, _ = a_backend(events)
    slot = BackendSlot(first)
    slot.offer(unused)
    slot.offer(last)
    await slot.swap()
    assert slot.current is last
    assert unused_registry.closed and not last_registry.closed

    await slot.close()
    assert last_registry.closed


async def test_closing_the_slot_closes_an_offered_backend_too() -> None:
    events: list[str] = []
    first, first_registry, _ = a_backend(events)
    offered, offered_registry, _ = a_backend(events)
    slot = BackendSlot(first)
    slot.offer(offered)
    await slot.close()
    assert first_registry.closed and offered_registry.closed
    assert events == ["release", "release"]


SQLITE: dict[str, Any] = {"backend": "sqlite", "path": "discovery.db"}


@pytest.mark.parametrize(
    ("change", "elected", "expected"),
    [
        ({"poll_interval": "2h"}, True, False),
        ({"registry": {"backend": "sqlite", "path": "other.db"}}, False, True),
        ({"discovery_group": "other"}, True, True),  # the lock is per group
        ({"discovery_group": "other"}, False, False),  # one writer: no lock to change
    ],
)
def test_a_new_backend_only_for_a_new_registry_or_a_contended_group(
    change: dict[str, Any], elected: bool, expected: bool
) -> None:
    old = make_config(registry=SQLITE)
    new = make_config(**{"registry": SQLITE, **change})
    leadership = FakeLeadership(Lock()) if elected else AlwaysLeader()
    assert needs_new_backend(old, new, Backend.of(MemoryRegistry(), leadership)) is expected


async def test_running_out_of_fds_is_told_as_such_once_not_as_a_missing_registry(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """At the fd limit SQLite says "unable to open database file" on every call; the daemon's
    registry says what it is (naming the fix) and logs it once."""
    registry = GuardedRegistry(SQLiteRegistry(tmp_path / "registry.db"))
    await registry.list_resources()  # schema created, the file exists
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    in_use = len(os.listdir("/proc/self/fd")) - 1  # not the one listdir itself had open
    errors = []
    with caplog.at_level(logging.ERROR, logger="discovery.daemon.backend"):
        resource.setrlimit(resource.RLIMIT_NOFILE, (in_use, hard))
        try:
            for _ in range(5):
                with pytest.raises(RegistryError) as raised:
                    await registry.list_resources()
                errors.append(str(raised.value))
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert all(e.startswith(EMFILE_HINT) for e in errors), errors
    assert not any("check that its directory exists" in e for e in errors)
    assert registry.reachable is False and registry.error.startswith(EMFILE_HINT)
    assert [r.getMessage() for r in caplog.records].count(
        f"the registry cannot be opened: {EMFILE_HINT}"
    ) == 1
    await registry.list_resources()  # fds back: it answers again
    assert registry.reachable is True
