"""The apply journal: one row per applied cycle, kept in the registry next to the resources.

It exists for the delete guard's sliding window (a slow drain, 40 → 28 → 20 → … → 0, is a
series of cycles each under `safety.max_delete_fraction`; the journal lets the guard add them
up) and for `discovery registry history`. The backends write a row in the same transaction as
the apply it records, so an apply that rolls back leaves no row; the values and the rules that
read them live here, pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from discovery.core.durations import MAX_DELETE_WINDOW
from discovery.core.model import Changes

__all__ = [
    "JOURNAL_RETENTION",
    "JournalEntry",
    "format_at",
    "journal_entry",
    "names_from",
    "parse_at",
    "prune_before",
    "window_deletes",
]

# Rows older than this are pruned on every journal write: the longest window the config allows
# (`safety.delete_window` is at most 7 days), so a row is kept exactly as long as a guard can
# still count it, and the journal cannot grow forever.
JOURNAL_RETENTION = timedelta(seconds=MAX_DELETE_WINDOW)


@dataclass(frozen=True, kw_only=True)
class JournalEntry:
    """One applied cycle: when, which cycle and group, and the names per action."""

    cycle_id: str
    discovery_group: str
    at: datetime  # UTC, timezone-aware
    forced: bool
    created: tuple[str, ...]
    updated: tuple[str, ...]
    deleted: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "time": format_at(self.at),
            "cycle_id": self.cycle_id,
            "discovery_group": self.discovery_group,
            "forced": self.forced,
            "counts": {
                "created": len(self.created),
                "updated": len(self.updated),
                "deleted": len(self.deleted),
            },
            "names": self.names(),
        }

    def names(self) -> dict[str, list[str]]:
        """The names per action, as every backend stores them (a JSON object of lists)."""
        return {
            "created": list(self.created),
            "updated": list(self.updated),
            "deleted": list(self.deleted),
        }


Names = tuple[str, ...]


def names_from(document: Mapping[str, object]) -> tuple[Names, Names, Names]:
    """(created, updated, deleted) back from `JournalEntry.names()`; a key missing (KeyError)
    or not a list (TypeError) is a malformed row for the backend to report."""

    def names(key: str) -> Names:
        value = document[key]
        if not isinstance(value, list):
            raise TypeError(f"{key} is not a list")
        return tuple(str(v) for v in value)

    return names("created"), names("updated"), names("deleted")


def journal_entry(changes: Changes) -> JournalEntry | None:
    """The row an apply of `changes` writes: None without a stamp, or with nothing to write."""
    stamp = changes.journal
    if stamp is None or not changes:
        return None
    return JournalEntry(
        cycle_id=stamp.cycle_id,
        discovery_group=stamp.discovery_group,
        at=stamp.at.astimezone(UTC),
        forced=stamp.forced,
        created=tuple(r.name for r in changes.create),
        updated=tuple(u.after.name for u in changes.update),
        deleted=tuple(s.resource.name for s in changes.delete),
    )


def window_deletes(entries: Iterable[JournalEntry]) -> int:
    """Deletes the guard counts from a window's entries (one group's, any order).

    A forced apply is where an operator looked at the fleet and overrode the guard: it is a
    checkpoint, so it and every delete before it no longer count; what came after it does.
    """
    entries = sorted(entries, key=lambda e: e.at)
    forced = [i for i, e in enumerate(entries) if e.forced]
    after = entries[forced[-1] + 1 :] if forced else entries
    return sum(len(e.deleted) for e in after)


def prune_before(at: datetime) -> datetime:
    """Rows older than this are dropped when a row stamped `at` is written."""
    return at - JOURNAL_RETENTION


def format_at(at: datetime) -> str:
    """UTC, fixed width (`2026-12-02T06:03:07.123456Z`): sorts as text as it does as time."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_at(text: str) -> datetime:
    """The inverse of `format_at`."""
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
