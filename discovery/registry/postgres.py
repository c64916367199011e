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
password) and the fix, chained to the original.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import TupleRow
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from discovery.core.model import Resource, StoredResource
from discovery.registry.base import (
    PAUSE_BEFORE_COMMIT_ENV,
    Changes,
    RegistryConflict,
    RegistryError,
    pause_before_commit,
)

__all__ = [
    "SCHEMA_VERSION",
    "AdvisoryLock",
    "Fence",
    "LeadershipLost",
    "Migration",
    "PostgresRegistry",
    "connection_string",
    "describe_dsn",
    "translate_error",
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
)
SCHEMA_VERSION = len(_MIGRATIONS)

_VERSION_TABLE = "discovery_schema_version"
_TABLES = ("discovery_meta", "discovery_resources")

_APPLICATION_NAME = "discovery"


@dataclass(frozen=True, kw_only=True)
class AdvisoryLock:
    """A session advisory lock (64-bit key) held by one PostgreSQL backend."""

    backend_pid: int
    key: int


Fence = Callable[[], AdvisoryLock | None]
"""Returns the lock the writer must hold for an apply to commit, or None when it holds none."""


class LeadershipLost(RegistryConflict):
    """The apply was fenced off: this replica is no longer the leader. Nothing was written."""


@dataclass(frozen=True, kw_only=True)
class Migration:
    """What `PostgresRegistry.migrate` did: the schema version before and after, and where."""

    schema: str
    before: int
    after: int


class PostgresRegistry:
    """A `Registry` in PostgreSQL, reached through a small psycopg connection pool.

    Nothing connects until the first call; the first call migrates the schema (unless
    `migrate=False`) on a connection of its own, so a wrong DSN or a missing database fails
    at once with PostgreSQL's reason rather than after the pool's timeout.
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

    async def migrate(self) -> Migration:
        """Bring the schema to this build's version now (what `discovery registry migrate` runs).

        Idempotent; safe while other replicas run or migrate at the same time.
        """
        self._check_open()
        try:
            async with await self._connect() as conn:
                return await self._migrate(conn)
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
                await self._migrate(conn)
            else:
                await self._require_current_schema(conn)
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

    async def _current_schema(self, conn: psycopg.AsyncConnection[TupleRow]) -> str:
        row = await (await conn.execute("SELECT current_schema()")).fetchone()
        schema = row[0] if row else None
        if not schema:
            search_path = await (await conn.execute("SHOW search_path")).fetchone()
            raise RegistryError(
                f"registry {self._where}: none of the schemas in search_path "
                f"({search_path[0] if search_path else '?'}) exists; create it "
                "(CREATE SCHEMA ...) or fix options=-csearch_path=... in the DSN"
            )
        return str(schema)

    async def _migrate(self, conn: psycopg.AsyncConnection[TupleRow]) -> Migration:
        schema = await self._current_schema(conn)
        before = await self._schema_version(conn, schema)
        if before == SCHEMA_VERSION:
            return Migration(schema=schema, before=before, after=before)  # no lock, no DDL
        async with conn.transaction():
            await _set_lock_timeout(conn, self._lock_timeout_s)
            # Replicas that start together queue here; the rest find the work done.
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                (f"rdsproxy-discovery/migrate/{schema}",),
            )
            before = await self._schema_version(conn, schema)
            if before == SCHEMA_VERSION:
                return Migration(schema=schema, before=before, after=before)
            if not await _table_exists(conn, schema, _VERSION_TABLE):
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

    async def _require_current_schema(self, conn: psycopg.AsyncConnection[TupleRow]) -> None:
        schema = await self._current_schema(conn)
        version = await self._schema_version(conn, schema)
        if version != SCHEMA_VERSION:
            raise RegistryError(
                f"registry {self._where}: schema {schema!r} is at version {version}, this "
                f"build needs version {SCHEMA_VERSION}; run `discovery registry migrate`"
            )

    async def _schema_version(self, conn: psycopg.AsyncConnection[TupleRow], schema: str) -> int:
        """The schema's version (0: nothing there yet); refuses tables that are not ours."""
        if not await _table_exists(conn, schema, _VERSION_TABLE):
            present = [t for t in _TABLES if await _table_exists(conn, schema, t)]
            if present:
                raise RegistryError(
                    f"registry {self._where}: schema {schema!r} has {', '.join(present)} but "
                    f"no {_VERSION_TABLE} table, so they were not made by discovery; move them "
                    "away or point the DSN's search_path at another schema"
                )
            return 0
        row = await (await conn.execute(f"SELECT version FROM {_VERSION_TABLE}")).fetchone()
        if row is None:
            raise RegistryError(
                f"registry {self._where}: {schema}.{_VERSION_TABLE} is empty; restore its row "
                f"or drop the discovery_* tables of schema {schema!r} and run "
                "`discovery registry migrate`"
            )
        version = int(row[0])
        if version > SCHEMA_VERSION:
            raise RegistryError(
                f"registry {self._where}: schema {schema!r} has version {version}, newer than "
                f"this build understands ({SCHEMA_VERSION}); upgrade discovery"
            )
        return version

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
        await _set_lock_timeout(conn, self._lock_timeout_s)
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
        if os.environ.get(PAUSE_BEFORE_COMMIT_ENV):  # only when a fault test asks for it
            await asyncio.to_thread(pause_before_commit)

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


async def _set_lock_timeout(conn: psycopg.AsyncConnection[TupleRow], seconds: float) -> None:
    await conn.execute(
        "SELECT set_config('lock_timeout', %s, true)", (f"{max(1, round(seconds * 1000))}ms",)
    )


async def _table_exists(conn: psycopg.AsyncConnection[TupleRow], schema: str, name: str) -> bool:
    row = await (
        await conn.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = "
            "c.relnamespace WHERE n.nspname = %s AND c.relname = %s)",
            (schema, name),
        )
    ).fetchone()
    return bool(row and row[0])


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


# --- shared with the leader elector --------------------------------------------------------


def _params(dsn: str) -> dict[str, Any]:
    try:
        return conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        # libpq's message can quote the string back, password included: say only what it is.
        raise RegistryError(
            "the PostgreSQL DSN is not a valid connection string; write it as "
            "'host=... dbname=... user=...' or 'postgresql://user@host:5432/dbname'"
        ) from None


def describe_dsn(dsn: str) -> str:
    """`user@host:port/dbname` for messages and logs; never the password."""
    params = _params(dsn)
    host = params.get("host") or params.get("hostaddr") or "(default host)"
    port = f":{params['port']}" if params.get("port") else ""
    user = f"{params['user']}@" if params.get("user") else ""
    dbname = f"/{params['dbname']}" if params.get("dbname") else ""
    return f"postgres {user}{host}{port}{dbname}"


def connection_string(
    dsn: str, *, application_name: str, connect_timeout_s: float, **defaults: str | int
) -> str:
    """`dsn` plus our defaults for what it leaves unset (the DSN always wins)."""
    params = _params(dsn)
    extra: dict[str, str | int] = {
        "application_name": application_name,
        # libpq wants whole seconds, at least 2.
        "connect_timeout": max(2, round(connect_timeout_s)),
        **defaults,
    }
    return make_conninfo(dsn, **{k: v for k, v in extra.items() if k not in params})


# SQLSTATE → what the operator can do about it.
_HINTS: dict[str, str] = {
    "28P01": "PostgreSQL refused the password; check the user and password in the DSN "
    "(or PGPASSWORD / ~/.pgpass)",
    "28000": "PostgreSQL refused the login; check the user in the DSN and pg_hba.conf",
    "3D000": "the database does not exist; create it (createdb) or fix dbname in the DSN",
    "3F000": "the schema named in search_path does not exist; create it (CREATE SCHEMA ...) "
    "or fix options=-csearch_path=... in the DSN",
    "42501": "the role lacks a privilege; grant it USAGE on the schema and SELECT, INSERT, "
    "UPDATE, DELETE on the discovery_* tables, and run `discovery registry migrate` as a role "
    "that may create tables in the schema",
    "42P01": "a registry table is missing; run `discovery registry migrate`",
    "53300": "the server has no free connection slots; raise max_connections or run fewer replicas",
    "57014": "the statement was cancelled (statement_timeout or an operator); retry, or raise "
    "statement_timeout for the discovery role",
    "57P01": "the server terminated the connection (restart, failover or "
    "pg_terminate_backend); the next call reconnects",
    "22P05": "a resource holds text PostgreSQL cannot store (a NUL character)",
    "25006": "the server is a read-only standby; point the DSN at the primary "
    "(target_session_attrs=read-write)",
}


# A failed connection attempt carries no SQLSTATE, only libpq's message: the usual ones.
_CONNECT_FAILURES: tuple[tuple[str, str], ...] = (
    ("password authentication failed", "28P01"),
    ("no password supplied", "28P01"),
    ("no pg_hba.conf entry", "28000"),
    ('role "', "28000"),
    ('database "', "3D000"),
    ("too many clients", "53300"),
    ("remaining connection slots", "53300"),
)


def translate_error(exc: psycopg.Error, where: str, *, lock_timeout_s: float) -> RegistryError:
    """Re-raise psycopg's error as ours, naming the server and what the operator can do."""
    text = re.sub(r"\s+", " ", str(exc)).strip()
    sqlstate = getattr(exc, "sqlstate", None)
    kind = sqlstate
    if kind is None and isinstance(exc, psycopg.OperationalError):
        kind = next((code for needle, code in _CONNECT_FAILURES if needle in text), None)
    if sqlstate in ("40001", "40P01"):
        return RegistryConflict(f"{where}: the transaction lost a race and was rolled back: {text}")
    if isinstance(exc, PoolTimeout):
        hint = (
            "no connection could be had from the pool in time; check that the server is up "
            "and reachable and has free connection slots"
        )
    elif sqlstate == "55P03":
        hint = (
            f"another session held a registry lock for longer than lock_timeout "
            f"({lock_timeout_s:g}s); look for a long transaction in pg_stat_activity"
        )
    elif kind in _HINTS:
        hint = _HINTS[kind]
    elif isinstance(exc, psycopg.OperationalError):
        hint = (
            "cannot reach PostgreSQL; check the host, port and sslmode in the DSN and that the "
            "server is up and accepts connections from here"
        )
    else:
        hint = "PostgreSQL error"
    code = f" {sqlstate}" if sqlstate else ""
    return RegistryError(f"registry {where}: {hint} (postgres{code}: {text})")
