"""The `Registry` seam: the reconciler sees only this Protocol, backends and fakes implement it."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Protocol

# Changes and Update are plain values of the core; re-exported here for backends.
from discovery.core.model import Changes, StoredResource, Update

__all__ = [
    "PAUSE_BEFORE_COMMIT_ENV",
    "Changes",
    "Registry",
    "RegistryConflict",
    "RegistryError",
    "Update",
    "pause_before_commit",
]

# Test-only (docs/RELIABILITY.md): when this environment variable names a file, every apply,
# with all its writes done and its transaction still open, creates that file and waits until
# it is deleted (at most PAUSE_LIMIT_S), then commits. The fault tests use it to kill the
# process, or drop its connection, at a known point inside the transaction. Unset, it costs
# one environment lookup per apply.
PAUSE_BEFORE_COMMIT_ENV = "DISCOVERY_TEST_PAUSE_BEFORE_COMMIT"
PAUSE_LIMIT_S = 120.0


def pause_before_commit() -> None:
    """The test hook above; blocking, so async backends run it in a thread."""
    marker = os.environ.get(PAUSE_BEFORE_COMMIT_ENV, "")
    if not marker:
        return
    path = Path(marker)
    path.write_text(f"{os.getpid()}\n")
    deadline = time.monotonic() + PAUSE_LIMIT_S
    while path.exists() and time.monotonic() < deadline:
        time.sleep(0.02)


class RegistryError(Exception):
    """The registry could not be read or written (I/O, locked, corrupt, unreachable)."""


class RegistryConflict(RegistryError):
    """An apply raced with another writer: a revision moved or a created name already exists.

    The whole apply was rolled back; the next cycle re-reads and re-plans.
    """


class Registry(Protocol):
    async def list_resources(self) -> list[StoredResource]:
        """Every resource in the registry (any owner), sorted by name."""
        ...

    async def apply(self, changes: Changes) -> None:
        """Write all changes in one transaction, or none (raising RegistryConflict/RegistryError).

        Updates and deletes are compare-and-swap on `before.revision`; a create of an existing
        name is a conflict. Each created or updated resource gets a new, larger revision.
        """
        ...

    async def close(self) -> None: ...
