"""The SQLite registry's apply journal: its table, and the statements that write and read it.

Kept out of `sqlite` (which owns connections, transactions and the resources) because it is a
separate table with its own job: one row per applied cycle (`discovery.core.journal`), written
by `SQLiteRegistry.apply` inside the apply's own transaction, so a rolled-back apply leaves no
row. Times are stored as fixed-width UTC text (`format_at`), which compares as time does.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from pathlib import Path

from discovery.core.journal import JournalEntry, format_at, names_from, parse_at, prune_before
from discovery.registry.base import RegistryError

__all__ = ["MIGRATION", "read_entries", "write_entry"]

# Appended to the registry's migrations as the step from schema version 1 to 2: a registry file
# made by an older build gets the table the next time this build opens it.
MIGRATION: tuple[str, ...] = (
    """
    CREATE TABLE journal (
        id              INTEGER PRIMARY KEY,
        cycle_id        TEXT NOT NULL,
        discovery_group TEXT NOT NULL,
        applied_at      TEXT NOT NULL,
        forced          INTEGER NOT NULL,
        created         INTEGER NOT NULL,
        updated         INTEGER NOT NULL,
        deleted         INTEGER NOT NULL,
        names           TEXT NOT NULL
    )
    """,
    "CREATE INDEX journal_by_group_time ON journal (discovery_group, applied_at)",
    "CREATE INDEX journal_by_time ON journal (applied_at)",
)


def write_entry(conn: sqlite3.Connection, entry: JournalEntry) -> None:
    """Insert `entry` and prune what is past the retention (inside the caller's transaction)."""
    conn.execute("DELETE FROM journal WHERE applied_at < ?", (format_at(prune_before(entry.at)),))
    conn.execute(
        "INSERT INTO journal (cycle_id, discovery_group, applied_at, forced, created, updated, "
        "deleted, names) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            entry.cycle_id,
            entry.discovery_group,
            format_at(entry.at),
            int(entry.forced),
            len(entry.created),
            len(entry.updated),
            len(entry.deleted),
            json.dumps(entry.names(), separators=(",", ":"), ensure_ascii=False),
        ),
    )


def read_entries(
    conn: sqlite3.Connection,
    path: Path,
    *,
    discovery_group: str | None,
    since: datetime | None,
    limit: int | None,
) -> list[JournalEntry]:
    """Rows newest first (ties: the later write first), filtered as `Registry.history` says."""
    where, params = [], []
    if discovery_group is not None:
        where.append("discovery_group = ?")
        params.append(discovery_group)
    if since is not None:
        where.append("applied_at >= ?")
        params.append(format_at(since))
    query = "SELECT id, cycle_id, discovery_group, applied_at, forced, names FROM journal"
    if where:
        query += " WHERE " + " AND ".join(where)
    query += " ORDER BY applied_at DESC, id DESC"
    if limit is not None:
        query += f" LIMIT {int(limit)}"
    return [_decode(row, path) for row in conn.execute(query, params).fetchall()]


def _decode(row: tuple[int, str, str, str, int, str], path: Path) -> JournalEntry:
    row_id, cycle_id, group, applied_at, forced, names = row
    try:
        created, updated, deleted = names_from(json.loads(names))
        return JournalEntry(
            cycle_id=cycle_id,
            discovery_group=group,
            at=parse_at(applied_at),
            forced=bool(forced),
            created=created,
            updated=updated,
            deleted=deleted,
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise RegistryError(
            f"registry {path}: journal row {row_id} is malformed ({type(exc).__name__}: {exc}); "
            "delete that row (DELETE FROM journal WHERE id = ...)"
        ) from exc
