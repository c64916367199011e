"""The PostgreSQL registry's apply journal: the statements that write and read its rows.

The table is `discovery_journal` (created by migration 2 in `postgres_schema`, so a database
made by an older build gets it from its next migration). `PostgresRegistry.apply` writes a row
inside the apply's own transaction, after the revision counter row is locked, so a
rolled-back apply leaves none and concurrent applies prune and insert one at a time.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.rows import TupleRow
from psycopg.types.json import Jsonb

from discovery.core.journal import JournalEntry, names_from, prune_before
from discovery.registry.base import RegistryError

__all__ = ["MIGRATION", "read_entries", "write_entry"]

# An identity column, not bigserial: a service role with only SELECT, INSERT, UPDATE, DELETE on
# the tables (README, PostgreSQL) can insert without a grant on the column's sequence.
MIGRATION: tuple[str, ...] = (
    """
    CREATE TABLE IF NOT EXISTS discovery_journal (
        id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        cycle_id        text NOT NULL,
        discovery_group text COLLATE "C" NOT NULL,
        applied_at      timestamptz NOT NULL,
        forced          boolean NOT NULL,
        created         integer NOT NULL,
        updated         integer NOT NULL,
        deleted         integer NOT NULL,
        names           jsonb NOT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS discovery_journal_by_group_time "
    "ON discovery_journal (discovery_group, applied_at)",
    "CREATE INDEX IF NOT EXISTS discovery_journal_by_time ON discovery_journal (applied_at)",
)


async def write_entry(conn: psycopg.AsyncConnection[TupleRow], entry: JournalEntry) -> None:
    """Insert `entry` and prune what is past the retention (inside the caller's transaction)."""
    await conn.execute(
        "DELETE FROM discovery_journal WHERE applied_at < %s", (prune_before(entry.at),)
    )
    await conn.execute(
        "INSERT INTO discovery_journal (cycle_id, discovery_group, applied_at, forced, created, "
        "updated, deleted, names) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
        (
            entry.cycle_id,
            entry.discovery_group,
            entry.at,
            entry.forced,
            len(entry.created),
            len(entry.updated),
            len(entry.deleted),
            Jsonb(entry.names()),
        ),
    )


async def read_entries(
    conn: psycopg.AsyncConnection[TupleRow],
    where: str,
    *,
    discovery_group: str | None,
    since: datetime | None,
    limit: int | None,
) -> list[JournalEntry]:
    """Rows newest first (ties: the later write first), filtered as `Registry.history` says."""
    clauses: list[str] = []
    params: list[Any] = []
    if discovery_group is not None:
        clauses.append("discovery_group = %s")
        params.append(discovery_group)
    if since is not None:
        clauses.append("applied_at >= %s")
        params.append(since)
    query = "SELECT id, cycle_id, discovery_group, applied_at, forced, names FROM discovery_journal"
    if clauses:
        query += " WHERE " + " AND ".join(clauses)
    query += " ORDER BY applied_at DESC, id DESC"
    if limit is not None:
        query += " LIMIT %s"
        params.append(limit)
    cursor = await conn.execute(query, params)
    return [_decode(row, where) for row in await cursor.fetchall()]


def _decode(row: TupleRow, where: str) -> JournalEntry:
    row_id, cycle_id, group, applied_at, forced, names = row
    try:
        created, updated, deleted = names_from(names)
        return JournalEntry(
            cycle_id=str(cycle_id),
            discovery_group=str(group),
            at=applied_at.astimezone(UTC),
            forced=bool(forced),
            created=created,
            updated=updated,
            deleted=deleted,
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise RegistryError(
            f"registry {where}: discovery_journal row {row_id} is malformed "
            f"({type(exc).__name__}: {exc}); delete that row"
        ) from exc
