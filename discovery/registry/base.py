"""The `Registry` seam: the reconciler sees only this Protocol, backends and fakes implement it."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from discovery.core.journal import JournalEntry

# Changes and Update are plain values of the core; re-exported here for backends.
from discovery.core.model import Changes, StoredResource, Update

__all__ = [
    "Changes",
    "Registry",
    "RegistryConflict",
    "RegistryError",
    "Update",
]


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
        With `changes.journal` set, the same transaction writes the apply's journal row
        (`discovery.core.journal.journal_entry`) and drops rows older than the retention.
        """
        ...

    async def history(
        self,
        *,
        discovery_group: str | None = None,
        since: datetime | None = None,
        limit: int | None = None,
    ) -> list[JournalEntry]:
        """Journal rows, newest first: of one group (or all), at or after `since`, at most
        `limit` of them."""
        ...

    async def close(self) -> None: ...
