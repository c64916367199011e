"""The PostgreSQL registry's schema: its tables, its migrations and the checks of its version.

Kept apart from the registry's reads and writes because it changes on a different clock (a
migration is appended once per schema change, never edited) and because `discovery registry
migrate` runs it on its own. The version lives in a table of its own, so tables that merely
share our names are recognised as not ours and refused.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg.rows import TupleRow

from discovery.registry import postgres_journal
from discovery.registry.base import RegistryError
from discovery.registry.postgres_conn import set_lock_timeout, table_exists

__all__ = [
    "SCHEMA_VERSION",
    "Migration",
    "current_schema",
    "migrate_schema",
    "require_current_schema",
    "schema_version",
]

# Migration i takes the schema from version i to i + 1. Append, never edit.
_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """
        CREATE TABLE discovery_meta (
            key   text PRIMARY KEY,
            value bigint NOT NULL
        )
        """,
        # One counter for the whole registry: a deleted then re-created name never gets a
        # revision it had before, so a stale compare-and-swap can never succeed by accident.
        "INSERT INTO discovery_meta (key, value) VALUES ('revision', 0)",
        # COLLATE "C": names compare and sort by code point, as in SQLite and Python, whatever
        # the database's locale.
        """
        CREATE TABLE discovery_resources (
            name       text COLLATE "C" PRIMARY KEY,
            revision   bigint NOT NULL CHECK (revision > 0),
            document   jsonb NOT NULL,
            updated_at timestamptz NOT NULL DEFAULT now()
        )
        """,
    ),
    postgres_journal.MIGRATION,  # 1 -> 2: the apply journal
)
SCHEMA_VERSION = len(_MIGRATIONS)

_VERSION_TABLE = "discovery_schema_version"
_TABLES = ("discovery_meta", "discovery_resources", "discovery_journal")


@dataclass(frozen=True, kw_only=True)
class Migration:
    """What `PostgresRegistry.migrate` did: the schema version before and after, and where."""

    schema: str
    before: int
    after: int


async def current_schema(conn: psycopg.AsyncConnection[TupleRow], where: str) -> str:
    row = await (await conn.execute("SELECT current_schema()")).fetchone()
    schema = row[0] if row else None
    if not schema:
        search_path = await (await conn.execute("SHOW search_path")).fetchone()
        raise RegistryError(
            f"registry {where}: none of the schemas in search_path "
            f"({search_path[0] if search_path else '?'}) exists; create it "
            "(CREATE SCHEMA ...) or fix options=-csearch_path=... in the DSN"
        )
    return str(schema)


async def migrate_schema(
    conn: psycopg.AsyncConnection[TupleRow], where: str, *, lock_timeout_s: float
) -> Migration:
    """Bring the schema to `SCHEMA_VERSION`; idempotent, serialised across replicas."""
    schema = await current_schema(conn, where)
    before = await schema_version(conn, schema, where)
    if before == SCHEMA_VERSION:
        return Migration(schema=schema, before=before, after=before)  # no lock, no DDL
    async with conn.transaction():
        await set_lock_timeout(conn, lock_timeout_s)
        # Replicas that start together queue here; the rest find the work done.
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
            (f"rdsproxy-discovery/migrate/{schema}",),
        )
        before = await schema_version(conn, schema, where)
        if before == SCHEMA_VERSION:
            return Migration(schema=schema, before=before, after=before)
        if not await table_exists(conn, schema, _VERSION_TABLE):
            await conn.execute(
                f"""
                CREATE TABLE {_VERSION_TABLE} (
                    singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
                    version     integer NOT NULL,
                    migrated_at timestamptz NOT NULL DEFAULT now()
                )
                """
            )
            await conn.execute(f"INSERT INTO {_VERSION_TABLE} (version) VALUES (0)")
        for migration in _MIGRATIONS[before:]:
            for statement in migration:
                await conn.execute(statement)
        await conn.execute(
            f"UPDATE {_VERSION_TABLE} SET version = %s, migrated_at = now()",
            (SCHEMA_VERSION,),
        )
    return Migration(schema=schema, before=before, after=SCHEMA_VERSION)


async def require_current_schema(conn: psycopg.AsyncConnection[TupleRow], where: str) -> None:
    schema = await current_schema(conn, where)
    version = await schema_version(conn, schema, where)
    if version != SCHEMA_VERSION:
        raise RegistryError(
            f"registry {where}: schema {schema!r} is at version {version}, this "
            f"build needs version {SCHEMA_VERSION}; run `discovery registry migrate`"
        )


async def schema_version(conn: psycopg.AsyncConnection[TupleRow], schema: str, where: str) -> int:
    """The schema's version (0: nothing there yet); refuses tables that are not ours."""
    if not await table_exists(conn, schema, _VERSION_TABLE):
        present = [t for t in _TABLES if await table_exists(conn, schema, t)]
        if present:
            raise RegistryError(
                f"registry {where}: schema {schema!r} has {', '.join(present)} but "
                f"no {_VERSION_TABLE} table, so they were not made by discovery; move them "
                "away or point the DSN's search_path at another schema"
            )
        return 0
    row = await (await conn.execute(f"SELECT version FROM {_VERSION_TABLE}")).fetchone()
    if row is None:
        raise RegistryError(
            f"registry {where}: {schema}.{_VERSION_TABLE} is empty; restore its row "
            f"or drop the discovery_* tables of schema {schema!r} and run "
            "`discovery registry migrate`"
        )
    version = int(row[0])
    if version > SCHEMA_VERSION:
        raise RegistryError(
            f"registry {where}: schema {schema!r} has version {version}, newer than "
            f"this build understands ({SCHEMA_VERSION}); upgrade discovery"
        )
    return version
