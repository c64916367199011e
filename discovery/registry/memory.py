"""An in-memory registry with the exact semantics of the durable backends.

It is the fake the reconciler's unit tests run against ("fakes over patches"), so it is a real
implementation, not a recorder: compare-and-swap on revisions, conflicts on existing names, one
registry-wide revision counter, all-or-nothing applies. The shared contract tests in
tests/registry run the same cases against it and against SQLite, and a property test checks that
both give the same results for random change sequences.

For tests it also records every successful non-empty apply (`applied`), exposes the revision
counter, and can be told to fail the next apply.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from discovery.core.journal import JournalEntry, journal_entry, prune_before
from discovery.core.model import Resource, StoredResource
from discovery.registry.base import Changes, RegistryConflict, RegistryError

__all__ = ["MemoryRegistry"]


class MemoryRegistry:
    """A `Registry` held in a dict; lost when the process exits."""

    def __init__(self, *, initial: Iterable[Resource] = ()) -> None:
        self._rows: dict[str, StoredResource] = {}
        self._revision = 0
        self._fail_next: RegistryError | None = None
        self._closed = False
        self.applied: list[Changes] = []
        self._journal: list[JournalEntry] = []  # in write order
        """Every apply that wrote something, in order (a test's view of "what was written")."""
        for resource in initial:
            if resource.name in self._rows:
                raise ValueError(f"duplicate initial resource {resource.name!r}")
            self._revision += 1
            self._rows[resource.name] = StoredResource(resource=resource, revision=self._revision)

    @property
    def revision(self) -> int:
        """The registry-wide counter: the revision most recently handed out (0 when none)."""
        return self._revision

    @property
    def closed(self) -> bool:
        return self._closed

    def fail_next_apply(self, error: RegistryError) -> None:
        """Make the next non-empty `apply` raise `error` and write nothing."""
        self._fail_next = error

    async def list_resources(self) -> list[StoredResource]:
        self._check_open()
        return [self._rows[name] for name in sorted(self._rows)]

    async def apply(self, changes: Changes) -> None:
        """Same order and numbering as `SQLiteRegistry.apply`: creates, updates, deletes."""
        self._check_open()
        if not changes:
            return
        if self._fail_next is not None:
            error, self._fail_next = self._fail_next, None
            raise error
        # Work on a copy and swap it in at the end: a conflict anywhere leaves nothing written.
        # There is no await below, so no other task can interleave with this apply.
        rows = dict(self._rows)
        revision = self._revision
        for resource in changes.create:
            revision += 1
            if resource.name in rows:
                raise RegistryConflict(f"cannot create {resource.name!r}: it already exists")
            rows[resource.name] = StoredResource(resource=resource, revision=revision)
        for update in changes.update:
            revision += 1
            name = update.before.resource.name
            current = rows.get(name)
            if current is None or current.revision != update.before.revision:
                raise _moved(update.before, "update")
            rows[name] = StoredResource(resource=update.after, revision=revision)
        for stored in changes.delete:
            name = stored.resource.name
            current = rows.get(name)
            if current is None or current.revision != stored.revision:
                raise _moved(stored, "delete")
            del rows[name]
        entry = journal_entry(changes)
        if entry is not None:
            cutoff = prune_before(entry.at)
            self._journal = [e for e in self._journal if e.at >= cutoff] + [entry]
        self._rows = rows
        self._revision = revision
        self.applied.append(changes)

    async def history(
        self,
        *,
        discovery_group: str | None = None,
        since: datetime | None = None,
        limit: int | None = None,
    ) -> list[JournalEntry]:
        self._check_open()
        rows = [
            e
            for e in reversed(self._journal)
            if (discovery_group is None or e.discovery_group == discovery_group)
            and (since is None or e.at >= since)
        ]
        rows.sort(key=lambda e: e.at, reverse=True)  # stable: same time, newest write first
        return rows if limit is None else rows[:limit]

    async def close(self) -> None:
        self._closed = True

    def _check_open(self) -> None:
        if self._closed:
            raise RegistryError("in-memory registry is closed")


def _moved(stored: StoredResource, action: str) -> RegistryConflict:
    return RegistryConflict(
        f"cannot {action} {stored.resource.name!r} at revision {stored.revision}: it was "
        "changed or deleted since it was read"
    )
