"""The PostgreSQL registry: one database that several discovery replicas (and hosts) share.

It keeps the guarantees of the SQLite backend (DESIGN §6) on a server: every apply is one
transaction, updates and deletes are compare-and-swap on the revision, a create of an existing
name is a conflict, and the loser of a race gets a `RegistryConflict` with nothing written.

Revisions: one registry-wide counter, a row in `discovery_meta`, not a PostgreSQL SEQUENCE. A
sequence's `nextval` is not transactional, so a rolled-back apply would still use up numbers;
the counter row moves only when an apply commits, exactly like SQLite's and the in-memory
fake's. Every apply locks that row first (`SELECT ... FOR UPDATE`), which also orders concurrent
applies: under READ COMMITTED each later statement of the apply then sees everything the
previous writer committed, so the compare-and-swap checks and the writes see the same state.
Waiting for that lock is bounded by `lock_timeout` (the SQLite busy timeout's counterpart).

Schema: created and migrated by the service itself on first use (the default), serialised
across replicas by a transaction-scoped advisory lock, so several replicas starting at once
migrate exactly once. `discovery registry migrate` runs the same migrations explicitly, e.g. as
a deploy step with a role that may create tables while the service runs with one that may only
read and write rows: when the schema is already current the service does no DDL at all.
`PostgresRegistry(..., migrate=False)` refuses an outdated schema instead of migrating it.
The tables live in the first schema of the connection's `search_path` (set it in the DSN with
`options=-csearch_path=discovery`); their names start with `discovery_` so they can share a
schema with other applications' tables.

Fencing: a registry built with `fence` (the leader elector's `held_lock`) checks, inside the
apply's transaction, that the leader's session still holds its advisory lock, so a replica
that lost leadership mid-cycle writes nothing (`LeadershipLost`).

Every psycopg error leaves this module as a `RegistryError` that names the server (never the
password) and the fix, chained to the original (the table is in `postgres_conn`; the schema and
its migrations are in `postgres_schema`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import TupleRow
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from discovery.core.journal import JournalEntry, journal_entry
from discovery.core.model import Resource, StoredResource
from discovery.registry import postgres_journal
from discovery.registry.base import Changes, RegistryConflict, RegistryError
from discovery.registry.postgres_conn import (
    Fence,
    connection_string,
    describe_dsn,
    set_lock_timeout,
    translate_error,
)
from discovery.registry.postgres_schema import Migration, migrate_schema, require_current_schema

__all__ = ["LeadershipLost", "PostgresRegistry"]

_APPLICATION_NAME = "discovery"


class LeadershipLost(RegistryConflict):
    """The apply was fenced off: this replica is no longer the leader. Nothing was written."""


class PostgresRegistry:
    """A `Registry` in PostgreSQL, reached through a small psycopg connection pool.

    Nothing connects until the first call; the first call migrates the schema (unless
    `migrate=False`) on a connection of its own, so a wrong DSN or a missing database fails
    at once with PostgreSQL's reason rather than after the pool's timeout.

    `before_commit`, when given, runs (in a thread) inside every apply's transaction with all
    its writes done, just before the commit: the fault tests inject a pause there to kill the
    process, or drop its connection, at a known point. Production code passes none.
    """

    def __init__(
        self,
        dsn: str,
        *,
        migrate: bool = True,
        fence: Fence | None = None,
        connect_timeout_s: float = 10.0,
        lock_timeout_s: float = 10.0,
        pool_max_size: int = 2,
        before_commit: Callable[[], None] | None = None,
    ) -> None:
        if connect_timeout_s <= 0 or lock_timeout_s <= 0:
            raise ValueError("connect_timeout_s and lock_timeout_s must be > 0")
        if pool_max_size < 1:
            raise ValueError(f"pool_max_size must be >= 1, got {pool_max_size}")
        self._where = describe_dsn(dsn)
        self._conninfo = connection_string(
            dsn, application_name=_APPLICATION_NAME, connect_timeout_s=connect_timeout_s
        )
        self._auto_migrate = migrate
        self._fence = fence
        self._before_commit = before_commit
        self._connect_timeout_s = connect_timeout_s
        self._lock_timeout_s = lock_timeout_s
        self._pool_max_size = pool_max_size
        self._pool: AsyncConnectionPool[psycopg.AsyncConnection[TupleRow]] | None = None
        self._open_lock = asyncio.Lock()
        self._closed = False

    @property
    def where(self) -> str:
        """The server and database, for messages: `user@host:port/dbname` (no password)."""
        return self._where

    def __repr__(self) -> str:
        return f"PostgresRegistry({self._where!r})"

    async def list_resources(self) -> list[StoredResource]:
        pool = await self._ready()
        try:
            async with pool.connection() as conn:
                # Autocommit: one SELECT is one snapshot, consistent while others commit.
                cursor = await conn.execute(
                    "SELECT name, revision, document FROM discovery_resources ORDER BY name"
                )
                rows = await cursor.fetchall()
        except psycopg.Error as exc:
            raise translate_error(exc, self._where, lock_timeout_s=self._lock_timeout_s) from exc
        return [self._decode(name, revision, document) for name, revision, document in rows]

    async def apply(self, changes: Changes) -> None:
        """Write `changes` in one transaction, or nothing at all.

        Same order and numbering as the SQLite backend: creates, then updates, then deletes,
        each in the order given; every create and update takes the next value of the
        registry-wide counter. An empty `Changes` does not even connect.
        """
        _check_changes(changes)
        if not changes:
            return
        pool = await self._ready()
        try:
            async with pool.connection() as conn, conn.transaction():
                await self._apply(conn, changes)
        except psycopg.Error as exc:
            raise translate_error(exc, self._where, lock_timeout_s=self._lock_timeout_s) from exc

    async def history(
        self,
        *,
        discovery_group: str | None = None,
        since: datetime | None = None,
        limit: int | None = None,
    ) -> list[JournalEntry]:
        pool = await self._ready()
        try:
            async with pool.connection() as conn:
                return await postgres_journal.read_entries(
                    conn, self._where, discovery_group=discovery_group, since=since, limit=limit
                )
        except psycopg.Error as exc:
            raise translate_error(exc, self._where, lock_timeout_s=self._lock_timeout_s) from exc

    async def migrate(self) -> Migration:
        """Bring the schema to this build's version now (what `discovery registry migrate` runs).

        Idempotent; safe while other replicas run or migrate at the same time.
        """
        self._check_open()
        try:
            async with await self._connect() as conn:
                return await migrate_schema(conn, self._where, lock_timeout_s=self._lock_timeout_s)
        except psycopg.Error as exc:
            raise translate_error(exc, self._where, lock_timeout_s=self._lock_timeout_s) from exc

    async def close(self) -> None:
        self._closed = True
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    # --- connections ------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise RegistryError(f"registry {self._where} is closed")

    async def _connect(self) -> psycopg.AsyncConnection[TupleRow]:
        # prepare_threshold=None: no server-side prepared statements, so a transaction-mode
        # PgBouncer in front of the server works too.
        return await psycopg.AsyncConnection.connect(
            self._conninfo, autocommit=True, prepare_threshold=None
        )

    async def _ready(self) -> AsyncConnectionPool[psycopg.AsyncConnection[TupleRow]]:
        self._check_open()
        if self._pool is None:
            async with self._open_lock:
                self._check_open()
                if self._pool is None:
                    try:
                        self._pool = await self._open_pool()
                    except psycopg.Error as exc:
                        raise translate_error(
                            exc, self._where, lock_timeout_s=self._lock_timeout_s
                        ) from exc
        return self._pool

    async def _open_pool(self) -> AsyncConnectionPool[psycopg.AsyncConnection[TupleRow]]:
        """Check (or migrate) the schema on a connection of its own, then open the pool."""
        async with await self._connect() as conn:
            if self._auto_migrate:
                await migrate_schema(conn, self._where, lock_timeout_s=self._lock_timeout_s)
            else:
                await require_current_schema(conn, self._where)
        pool: AsyncConnectionPool[psycopg.AsyncConnection[TupleRow]] = AsyncConnectionPool(
            self._conninfo,
            kwargs={"autocommit": True, "prepare_threshold": None},
            min_size=1,
            max_size=self._pool_max_size,
            open=False,
            # A connection that died while idle in the pool (server restart, failover) is
            # replaced before use instead of failing a cycle.
            check=AsyncConnectionPool.check_connection,
            timeout=self._connect_timeout_s,
            name="discovery-registry",
        )
        try:
            await pool.open(wait=True, timeout=self._connect_timeout_s)
        except BaseException:
            await pool.close()  # or its workers go on retrying in the background
            raise
        return pool

    # --- schema -----------------------------------------------------------------------------
    # --- rows -------------------------------------------------------------------------------

    def _decode(self, name: str, revision: int, document: object) -> StoredResource:
        try:
            if not isinstance(document, dict):
                raise TypeError(f"expected a JSON object, got {type(document).__name__}")
            resource = Resource.from_dict(document)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise RegistryError(
                f"registry {self._where}: row {name!r} (revision {revision}) does not hold a "
                f"db v3 resource ({type(exc).__name__}: {exc}); delete or repair that row"
            ) from exc
        if resource.name != name:
            raise RegistryError(
                f"registry {self._where}: row {name!r} (revision {revision}) holds a document "
                f"named {resource.name!r}; delete or repair that row"
            )
        return StoredResource(resource=resource, revision=int(revision))

    async def _apply(self, conn: psycopg.AsyncConnection[TupleRow], changes: Changes) -> None:
        await set_lock_timeout(conn, self._lock_timeout_s)
        row = await (
            await conn.execute("SELECT value FROM discovery_meta WHERE key = 'revision' FOR UPDATE")
        ).fetchone()
        if row is None:
            raise RegistryError(
                f"registry {self._where}: the revision counter row is missing from "
                "discovery_meta; restore it (INSERT INTO discovery_meta VALUES ('revision', "
                "(SELECT coalesce(max(revision), 0) FROM discovery_resources)))"
            )
        revision = int(row[0])
        if self._fence is not None:
            await self._check_fence(conn)

        creates = []
        for resource in changes.create:
            revision += 1
            creates.append((resource.name, revision, Jsonb(resource.to_dict())))
        updates = []
        for update in changes.update:
            revision += 1
            updates.append(
                (
                    revision,
                    Jsonb(update.after.to_dict()),
                    update.before.resource.name,
                    update.before.revision,
                )
            )
        deletes = [(stored.resource.name, stored.revision) for stored in changes.delete]

        async with conn.cursor() as cursor:
            hits = await _each_hits(
                cursor,
                "INSERT INTO discovery_resources (name, revision, document) VALUES (%s, %s, %s) "
                "ON CONFLICT (name) DO NOTHING RETURNING 1",
                creates,
            )
            for resource, hit in zip(changes.create, hits, strict=True):
                if not hit:
                    raise RegistryConflict(
                        f"cannot create {resource.name!r}: it already exists in {self._where}"
                    )
            hits = await _each_hits(
                cursor,
                "UPDATE discovery_resources SET revision = %s, document = %s, updated_at = now() "
                "WHERE name = %s AND revision = %s RETURNING 1",
                updates,
            )
            for update, hit in zip(changes.update, hits, strict=True):
                if not hit:
                    raise _moved(update.before, "update", self._where)
            hits = await _each_hits(
                cursor,
                "DELETE FROM discovery_resources WHERE name = %s AND revision = %s RETURNING 1",
                deletes,
            )
            for stored, hit in zip(changes.delete, hits, strict=True):
                if not hit:
                    raise _moved(stored, "delete", self._where)
        await conn.execute(
            "UPDATE discovery_meta SET value = %s WHERE key = 'revision'", (revision,)
        )
        entry = journal_entry(changes)
        if entry is not None:  # same transaction: a rolled-back apply leaves no row
            await postgres_journal.write_entry(conn, entry)
        if self._before_commit is not None:  # a seam for tests: blocking, so in a thread
            await asyncio.to_thread(self._before_commit)

    async def _check_fence(self, conn: psycopg.AsyncConnection[TupleRow]) -> None:
        assert self._fence is not None
        lock = self._fence()
        if lock is None:
            raise LeadershipLost(
                f"not writing to {self._where}: this replica is not the leader of its discovery "
                "group (any more)"
            )
        # pg_locks shows a bigint advisory key as its high half in classid, low half in objid.
        unsigned = lock.key & 0xFFFF_FFFF_FFFF_FFFF
        row = await (
            await conn.execute(
                "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted "
                "AND pid = %s AND classid::bigint = %s AND objid::bigint = %s AND objsubid = 1)",
                (lock.backend_pid, unsigned >> 32, unsigned & 0xFFFF_FFFF),
            )
        ).fetchone()
        if not (row and row[0]):
            raise LeadershipLost(
                f"not writing to {self._where}: the leader lock of this replica's session "
                f"(pid {lock.backend_pid}) is gone, another replica may lead now"
            )


async def _each_hits(
    cursor: psycopg.AsyncCursor[TupleRow], query: str, rows: Sequence[tuple[Any, ...]]
) -> list[bool]:
    """Run `query` once per row (pipelined, in order); per row: did it return a row?"""
    if not rows:
        return []
    await cursor.executemany(query, rows, returning=True)
    hits = []
    while True:
        hits.append(await cursor.fetchone() is not None)
        if not cursor.nextset():
            return hits


def _check_changes(changes: Changes) -> None:
    """Reject batches no backend could store faithfully (a caller bug, not a race)."""
    for update in changes.update:
        if update.after.name != update.before.resource.name:
            raise ValueError(
                f"an update cannot rename {update.before.resource.name!r} to "
                f"{update.after.name!r}; delete and create instead"
            )


def _moved(stored: StoredResource, action: str, where: str) -> RegistryConflict:
    return RegistryConflict(
        f"cannot {action} {stored.resource.name!r} at revision {stored.revision}: it was "
        f"changed or deleted in {where} since it was read"
    )
