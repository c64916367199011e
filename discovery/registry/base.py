"""The `Registry` seam: the reconciler sees only this Protocol, backends and fakes implement it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from discovery.core.journal import JournalEntry

# Changes and Update are plain values of the core; re-exported here for backends.
from discovery.core.model import Changes, StoredResource, Update

__all__ = [
    "Changes",
    "PartialApply",
    "Registry",
    "RegistryConflict",
    "RegistryError",
    "Update",
    "WriteFailure",
]


class RegistryError(Exception):
    """The registry could not be read or written (I/O, locked, corrupt, unreachable)."""


class RegistryConflict(RegistryError):
    """An apply raced with another writer: a revision moved or a created name already exists.

    The whole apply was rolled back; the next cycle re-reads and re-plans.
    """


@dataclass(frozen=True, kw_only=True)
class WriteFailure:
    action: str  # create | update | delete
    name: str
    reason: str


class PartialApply(RegistryError):
    """A backend without transactions (the Teleport cluster) wrote some changes and not others.

    Nothing is rolled back; the next cycle re-reads the registry and plans what is left.
    `written` are (action, name) pairs, `failed` says why each of the others was not written.
    """

    def __init__(
        self, *, written: Sequence[tuple[str, str]], failed: Sequence[WriteFailure]
    ) -> None:
        self.written = tuple(written)
        self.failed = tuple(failed)
        done = ", ".join(f"{a} {n}" for a, n in self.written[:10])
        if len(self.written) > 10:
            done += f", and {len(self.written) - 10} more"
        shown = self.failed[:5]
        missing = "; ".join(f"{f.action} {f.name}: {f.reason}" for f in shown)
        if len(self.failed) > len(shown):
            missing += f"; and {len(self.failed) - len(shown)} more"
        super().__init__(
            f"partial apply: wrote {len(self.written)} of "
            f"{len(self.written) + len(self.failed)} changes ({done}); not written: {missing}; "
            "the next cycle re-reads the registry and retries what was not written"
        )


class Registry(Protocol):
    async def list_resources(self) -> list[StoredResource]:
        """Every resource in the registry (any owner), sorted by name."""
        ...

    async def apply(self, changes: Changes) -> None:
        """Write all changes in one transaction, or none (raising RegistryConflict/RegistryError).

        Updates and deletes are compare-and-swap on `before.revision`; a create of an existing
        name is a conflict. Each created or updated resource gets a new, larger revision.
        A backend without transactions (Teleport) checks the revisions just before writing and
        raises `PartialApply` when it wrote only part of the changes.
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
