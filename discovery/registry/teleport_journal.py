"""The apply journal of a Teleport registry: a JSON-lines file on this host (`registry.journal`).

A Teleport cluster has no place for our journal rows, so they are kept in a local file: one
line per apply that wrote something, naming only what was really written (a partial apply
journals its written part, so the delete guard's window counts every delete that happened).
Rows older than the retention are dropped on each write. Without a file (`registry.journal`
empty) there is no journal: `history` is empty and the delete guard counts this cycle only.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from discovery.core.journal import JournalEntry, format_at, names_from, parse_at, prune_before
from discovery.registry.base import RegistryError

__all__ = ["TeleportJournal"]


class TeleportJournal:
    def __init__(self, path: Path | None) -> None:
        self.path = path

    def append(self, entry: JournalEntry, written: Sequence[tuple[str, str]]) -> None:
        """Journal `entry`, narrowed to the (action, name) pairs that were written."""
        if self.path is None or not written:
            return
        done = set(written)
        entry = replace(
            entry,
            created=tuple(n for n in entry.created if ("create", n) in done),
            updated=tuple(n for n in entry.updated if ("update", n) in done),
            deleted=tuple(n for n in entry.deleted if ("delete", n) in done),
        )
        cutoff = prune_before(entry.at)
        rows = [e for e in self._read() if e.at >= cutoff] + [entry]
        text = "".join(json.dumps(_row(e), sort_keys=True) + "\n" for e in rows)
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, self.path)
        except OSError as exc:
            raise RegistryError(
                f"the changes were written to the cluster but not to the journal "
                f"{self.path} (registry.journal): {exc.strerror}; make it writable"
            ) from None

    def history(
        self, *, discovery_group: str | None, since: datetime | None, limit: int | None
    ) -> list[JournalEntry]:
        rows = [
            e
            for e in reversed(self._read())
            if (discovery_group is None or e.discovery_group == discovery_group)
            and (since is None or e.at >= since)
        ]
        rows.sort(key=lambda e: e.at, reverse=True)
        return rows if limit is None else rows[:limit]

    def _read(self) -> list[JournalEntry]:
        if self.path is None or not self.path.exists():
            return []
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
            return [_entry(json.loads(line)) for line in lines if line.strip()]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise RegistryError(
                f"the journal {self.path} (registry.journal) cannot be read: {exc}"
            ) from None


def _row(entry: JournalEntry) -> dict[str, object]:
    return {
        "at": format_at(entry.at),
        "cycle_id": entry.cycle_id,
        "discovery_group": entry.discovery_group,
        "forced": entry.forced,
        **entry.names(),
    }


def _entry(row: dict[str, object]) -> JournalEntry:
    created, updated, deleted = names_from(row)
    return JournalEntry(
        cycle_id=str(row["cycle_id"]),
        discovery_group=str(row["discovery_group"]),
        at=parse_at(str(row["at"])),
        forced=bool(row["forced"]),
        created=created,
        updated=updated,
        deleted=deleted,
    )
