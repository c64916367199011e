"""The SQLite registry: one local file that holds the `db` resources between cycles.

It exists so a single daemon (or a cron `scan`) needs no database server, yet keeps the
guarantees of DESIGN §6: every apply is one transaction, updates and deletes are
compare-and-swap on the revision, and two processes pointed at the same file can never corrupt it
(the loser of a race gets a `RegistryConflict`, or a `RegistryError` when it waited longer than
the busy timeout).

Connection handling: every call opens its own connection inside the worker thread that runs it
(`asyncio.to_thread`) and closes it before returning. Nothing is shared between threads, so there
is no lock to get wrong; SQLite's own file locking (with the busy timeout) orders writers, in this
process and in others alike. Opening a connection to a local file costs well under a millisecond,
and a cycle makes two calls (list, then at most one apply).

Durability: WAL mode (readers never block the writer or each other, so `registry list` works
while the daemon applies) with `synchronous=FULL`, which fsyncs the WAL on every commit. NORMAL
would also never corrupt the file, but a power cut could drop the last commits after we reported
them applied; writes are rare (at most one transaction per cycle, none in steady state), so the
extra fsync costs nothing worth saving.

If the awaiting task is cancelled (SIGTERM), the worker thread still runs its transaction to the
end, commit or rollback: the file is never left mid-transaction.

A deleted, moved or replaced file: every call checks the schema version of the file it opened
(one SELECT), so the next call after the file changed sets the schema up on the new one, and
the next cycle re-creates the resources, as the error hints promise. A call that still finds no
table (the file changed under it) fails, naming that, and the call after it sets the schema up.

Fencing: a registry built with `fence` (the daemon's `SQLiteLeaderLock.held`) checks, inside
each apply's transaction just before the commit, that this process still holds the registry's
lock file; if not it rolls back and raises `LockLost`: a process that lost the lock writes
nothing.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from discovery.core.journal import JournalEntry, journal_entry
from discovery.core.model import Resource, StoredResource
from discovery.registry import sqlite_journal
from discovery.registry.base import Changes, RegistryConflict, RegistryError
from discovery.registry.sqlite_errors import SQLITE_BUSY, SQLITE_LOCKED, translate

__all__ = ["APPLICATION_ID", "SCHEMA_VERSION", "LockLost", "SQLiteRegistry"]

_T = TypeVar("_T")

# `PRAGMA application_id` marks the file as ours ("RDPX"), so pointing `registry.path` at some
# other application's database is refused instead of silently adding tables to it.
APPLICATION_ID = 0x52445058

# Migration i takes the schema from `PRAGMA user_version` i to i + 1. Append, never edit.
_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """
        CREATE TABLE meta (
            key   TEXT PRIMARY KEY,
            value INTEGER NOT NULL
        )
        """,
        # One counter for the whole registry: a deleted then re-created name never gets a
        # revision it had before, so a stale compare-and-swap can never succeed by accident.
        "INSERT INTO meta (key, value) VALUES ('revision', 0)",
        """
        CREATE TABLE resources (
            name       TEXT PRIMARY KEY,
            revision   INTEGER NOT NULL CHECK (revision > 0),
            document   TEXT NOT NULL,
            updated_at TEXT NOT NULL
        )
        """,
    ),
    sqlite_journal.MIGRATION,  # 1 -> 2: the apply journal
)
SCHEMA_VERSION = len(_MIGRATIONS)

_NOW = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"


class LockLost(RegistryConflict):
    """The apply was fenced off: this process does not hold the registry's lock file (any more).

    Nothing was written.
    """


class SQLiteRegistry:
    """A `Registry` stored in one SQLite file, created with its schema on first use.

    `before_commit`, when given, runs in the worker thread inside every apply's transaction with
    all its writes done, just before the commit: the fault tests inject a pause there to kill
    the process at a known point. Production code passes none.

    `fence`, when given, is asked inside every apply's transaction, after `before_commit`: the
    apply commits only if it answers True (see the module docstring).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        busy_timeout_s: float = 10.0,
        before_commit: Callable[[], None] | None = None,
        fence: Callable[[], bool] | None = None,
        read_only: bool = False,
    ) -> None:
        if busy_timeout_s < 0:
            raise ValueError(f"busy_timeout_s must be >= 0, got {busy_timeout_s}")
        self._path = Path(path)
        self._busy_timeout_s = busy_timeout_s
        self._before_commit = before_commit
        self._fence = fence
        # Read-only (`registry list`/`export`): the file must already be a registry; it is
        # opened with SQLite's mode=ro, never created, migrated or written.
        self._read_only = read_only
        self._schema_lock = threading.Lock()
        self._closed = False

    @property
    def path(self) -> Path:
        return self._path

    def __repr__(self) -> str:
        return f"SQLiteRegistry({str(self._path)!r})"

    async def list_resources(self) -> list[StoredResource]:
        return await self._run(self._list_resources)

    async def apply(self, changes: Changes) -> None:
        """Write `changes` in one `BEGIN IMMEDIATE` transaction, or nothing at all.

        Order inside the transaction: creates, then updates, then deletes, each in the order
        given; every create and update takes the next value of the registry-wide revision
        counter. An empty `Changes` opens no transaction and leaves the counter alone.
        """
        if not changes:
            return
        if self._read_only:
            raise RegistryError(f"registry {self._path} was opened read-only; nothing was written")
        await self._run(lambda conn: self._apply(conn, changes))

    async def history(
        self,
        *,
        discovery_group: str | None = None,
        since: datetime | None = None,
        limit: int | None = None,
    ) -> list[JournalEntry]:
        return await self._run(
            lambda conn: sqlite_journal.read_entries(
                conn, self._path, discovery_group=discovery_group, since=since, limit=limit
            )
        )

    async def close(self) -> None:
        # Connections live only for one call, so there is nothing to release; refusing later
        # calls catches use-after-close bugs in the caller.
        self._closed = True

    # --- worker-thread side -----------------------------------------------------------------

    async def _run(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        if self._closed:
            raise RegistryError(f"registry {self._path} is closed")
        return await asyncio.to_thread(self._in_connection, work)

    def _in_connection(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        if self._read_only and not self._path.is_file():
            raise RegistryError(
                f"registry {self._path} does not exist (registry.path); nothing was created: "
                "check the path, or run `discovery scan` or `discovery registry migrate` to "
                "create it"
            )
        try:
            with self._connect() as conn:
                if self._read_only:
                    self._check_readable(conn)
                else:
                    self._ensure_schema(conn)
                try:
                    return work(conn)
                except sqlite3.OperationalError as exc:
                    if "no such table" not in str(exc).lower():
                        raise
                    # The file changed between the schema check and this statement: the next
                    # call's check sets the schema up again.
                    raise RegistryError(
                        f"registry {self._path} has no discovery tables: the file was deleted "
                        "or replaced while discovery used it; nothing was written, and the next "
                        "cycle re-creates its schema and its resources (if this repeats, the "
                        f"file was tampered with: move it aside) (sqlite: {exc})"
                    ) from exc
        except sqlite3.Error as exc:
            raise translate(exc, self._path, self._busy_timeout_s) from exc

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        # isolation_level=None: the sqlite3 module must not open transactions behind our back;
        # every transaction here is an explicit BEGIN ... COMMIT/ROLLBACK.
        if self._read_only:
            target, uri = f"{self._path.resolve().as_uri()}?mode=ro", True
        else:
            target, uri = str(self._path), False
        conn = sqlite3.connect(target, timeout=self._busy_timeout_s, isolation_level=None, uri=uri)
        try:
            if not self._read_only:
                conn.execute("PRAGMA synchronous = FULL")
            yield conn
        finally:
            conn.close()

    def _ensure_schema(self, conn: sqlite3.Connection) -> None:
        # Checked on every call (one SELECT of three pragmas), not remembered: a file deleted,
        # moved aside or replaced since the last call gets its schema set up again, instead of
        # every later call failing with "no such table" until a restart. (Its inode cannot
        # tell: a new file often gets the number of the one just deleted.)
        if self._schema_version(conn) == SCHEMA_VERSION:
            return
        with self._schema_lock:
            # Processes creating the same new file at once can get SQLITE_BUSY at once from the
            # journal-mode switch (SQLite skips the busy handler there to avoid deadlock):
            # retry with backoff within the busy timeout instead of failing the cycle.
            deadline = time.monotonic() + self._busy_timeout_s
            delay = 0.01
            while True:
                try:
                    self._setup_schema(conn)
                    break
                except sqlite3.OperationalError as exc:
                    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
                    if code not in (SQLITE_BUSY, SQLITE_LOCKED) or time.monotonic() > deadline:
                        raise
                    time.sleep(delay)
                    delay = min(delay * 2, 0.25)

    def _check_readable(self, conn: sqlite3.Connection) -> None:
        """A read-only open: the file must hold this build's schema already (nothing is set up)."""
        version = self._schema_version(conn)
        if version != SCHEMA_VERSION:
            raise RegistryError(
                f"registry {self._path} has schema version {version}, not {SCHEMA_VERSION}; "
                "nothing was changed: run `discovery registry migrate` first"
            )

    def _setup_schema(self, conn: sqlite3.Connection) -> None:
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise RegistryError(
                f"registry {self._path}: SQLite could not switch the file to WAL mode "
                f"(it stays in {mode!r} mode); put registry.path on a local file system, "
                "not a network share"
            )
        self._migrate(conn)

    def _migrate(self, conn: sqlite3.Connection) -> None:
        if self._schema_version(conn) == SCHEMA_VERSION:
            return  # the common case: no write lock needed
        with _transaction(conn):
            # Re-read under the write lock: another process may have migrated meanwhile.
            version = self._schema_version(conn)
            for migration in _MIGRATIONS[version:]:
                for statement in migration:
                    conn.execute(statement)
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _schema_version(self, conn: sqlite3.Connection) -> int:
        """The file's schema version (0: new); refuses files that are not ours to migrate."""
        # One statement, so one snapshot: read separately, another process's migration could
        # commit in between and a half-seen new registry would look like a foreign database.
        version, app_id, objects = conn.execute(
            "SELECT (SELECT user_version FROM pragma_user_version),"
            " (SELECT application_id FROM pragma_application_id),"
            " (SELECT count(*) FROM sqlite_schema)"
        ).fetchone()
        version, app_id = int(version), int(app_id)
        if app_id not in (0, APPLICATION_ID) or (version == 0 and app_id == 0 and objects > 0):
            raise RegistryError(
                f"{self._path} is an SQLite database of another application, not a discovery "
                "registry; point registry.path at a new file"
            )
        if version > SCHEMA_VERSION:
            raise RegistryError(
                f"registry {self._path} has schema version {version}, newer than this build "
                f"understands ({SCHEMA_VERSION}); upgrade discovery"
            )
        return version

    def _list_resources(self, conn: sqlite3.Connection) -> list[StoredResource]:
        # One SELECT is one read transaction: a consistent snapshot even while another
        # connection commits.
        rows = conn.execute(
            "SELECT name, revision, document FROM resources ORDER BY name"
        ).fetchall()
        return [self._decode(name, revision, document) for name, revision, document in rows]

    def _decode(self, name: str, revision: int, document: str) -> StoredResource:
        try:
            resource = Resource.from_dict(json.loads(document))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise RegistryError(
                f"registry {self._path}: row {name!r} (revision {revision}) does not hold a "
                f"db v3 resource ({type(exc).__name__}: {exc}); delete or repair that row"
            ) from exc
        if resource.name != name:
            raise RegistryError(
                f"registry {self._path}: row {name!r} (revision {revision}) holds a document "
                f"named {resource.name!r}; delete or repair that row"
            )
        return StoredResource(resource=resource, revision=revision)

    def _apply(self, conn: sqlite3.Connection, changes: Changes) -> None:
        with _transaction(conn):
            revision = int(
                conn.execute("SELECT value FROM meta WHERE key = 'revision'").fetchone()[0]
            )
            for resource in changes.create:
                revision += 1
                inserted = conn.execute(
                    "INSERT INTO resources (name, revision, document, updated_at) "
                    f"VALUES (?, ?, ?, {_NOW}) ON CONFLICT (name) DO NOTHING",
                    (resource.name, revision, _encode(resource)),
                )
                if inserted.rowcount != 1:
                    raise RegistryConflict(
                        f"cannot create {resource.name!r}: it already exists in {self._path}"
                    )
            for update in changes.update:
                revision += 1
                updated = conn.execute(
                    f"UPDATE resources SET revision = ?, document = ?, updated_at = {_NOW} "
                    "WHERE name = ? AND revision = ?",
                    (
                        revision,
                        _encode(update.after),
                        update.before.resource.name,
                        update.before.revision,
                    ),
                )
                if updated.rowcount != 1:
                    raise _moved(update.before, "update", self._path)
            for stored in changes.delete:
                deleted = conn.execute(
                    "DELETE FROM resources WHERE name = ? AND revision = ?",
                    (stored.resource.name, stored.revision),
                )
                if deleted.rowcount != 1:
                    raise _moved(stored, "delete", self._path)
            conn.execute("UPDATE meta SET value = ? WHERE key = 'revision'", (revision,))
            entry = journal_entry(changes)
            if entry is not None:  # same transaction: a rolled-back apply leaves no row
                sqlite_journal.write_entry(conn, entry)
            if self._before_commit is not None:  # a seam for tests, see __init__
                self._before_commit()
            if self._fence is not None and not self._fence():
                raise LockLost(
                    f"not writing to {self._path}: this process does not hold its lock file "
                    f"{self._path.name}.lock (any more); another discovery process writes it"
                )


def _encode(resource: Resource) -> str:
    return json.dumps(resource.to_dict(), separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def _moved(stored: StoredResource, action: str, path: Path) -> RegistryConflict:
    return RegistryConflict(
        f"cannot {action} {stored.resource.name!r} at revision {stored.revision}: it was "
        f"changed or deleted in {path} since it was read"
    )


@contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    # IMMEDIATE takes the write lock up front (waiting up to the busy timeout), so the
    # compare-and-swap reads and the writes see the same state and no deadlock can arise
    # from upgrading a read transaction.
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        # If ROLLBACK itself fails, closing the connection rolls back anyway; keep the
        # original error, which says what went wrong.
        with suppress(sqlite3.Error):
            if conn.in_transaction:
                conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
