"""Leader election over PostgreSQL: a session advisory lock per discovery group.

Why a session advisory lock on a dedicated connection (not one from the registry's pool): the
lock belongs to the session that took it and lives exactly as long as that session. If the
leader process dies (even `kill -9`) or its connection breaks, the server ends the session and
the lock is free at once for a follower; nothing has to expire, and no clock is involved.

What "leader" means here is what the last `try_acquire` or `check` found. Between two checks the
connection may already be gone; the registry closes that window by fencing: a `PostgresRegistry`
built with `fence=elector.held_lock` verifies inside each apply's transaction that this session
still holds the lock, so a replica that lost leadership mid-cycle writes nothing.

A network partition is the slow case: the server only notices a silent client through TCP
keepalives. The session therefore asks the server to probe after 10 s idle and give up after
3 failed probes 5 s apart (`tcp_keepalives_*`, `tcp_user_timeout`), which frees the lock of a
vanished leader within about half a minute; the client side uses libpq's keepalives and a
timeout on every check, and treats any doubt as "not leader".

Advisory locks need a real session: put no transaction-mode pooler (PgBouncer) between the
elector and the server.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress

import psycopg
from psycopg.rows import TupleRow

from discovery.registry.base import RegistryError
from discovery.registry.leader import leader_lock_key
from discovery.registry.postgres_conn import (
    AdvisoryLock,
    connection_string,
    describe_dsn,
    translate_error,
)

__all__ = ["LeaderElectionError", "PostgresLeaderElector"]

log = logging.getLogger(__name__)

# Server-side keepalives of the leader's session, so a leader that vanished without closing its
# connection loses the lock in about idle + count * interval seconds.
_KEEPALIVE_IDLE_S = 10
_KEEPALIVE_INTERVAL_S = 5
_KEEPALIVE_COUNT = 3


class LeaderElectionError(RegistryError):
    """The elector cannot reach its database at all (raised by `start` only)."""


class PostgresLeaderElector:
    """`Leadership` for one discovery group, through a PostgreSQL session advisory lock."""

    def __init__(
        self,
        dsn: str,
        *,
        discovery_group: str,
        connect_timeout_s: float = 10.0,
        check_timeout_s: float = 5.0,
    ) -> None:
        if connect_timeout_s <= 0 or check_timeout_s <= 0:
            raise ValueError("connect_timeout_s and check_timeout_s must be > 0")
        self._group = discovery_group
        self._where = describe_dsn(dsn)
        # application_name shows who holds the lock in pg_stat_activity.
        self._conninfo = connection_string(
            dsn,
            application_name=f"discovery-leader/{discovery_group}"[:63],
            connect_timeout_s=connect_timeout_s,
            keepalives=1,
            keepalives_idle=_KEEPALIVE_IDLE_S,
            keepalives_interval=_KEEPALIVE_INTERVAL_S,
            keepalives_count=_KEEPALIVE_COUNT,
        )
        self._connect_timeout_s = connect_timeout_s
        self._check_timeout_s = check_timeout_s
        self._conn: psycopg.AsyncConnection[TupleRow] | None = None
        self._key: int | None = None
        self._backend_pid = 0
        self._leader = False
        self._last_error = ""
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"PostgresLeaderElector({self._group!r}, {self._where!r})"

    @property
    def discovery_group(self) -> str:
        return self._group

    @property
    def is_leader(self) -> bool:
        conn = self._conn
        return self._leader and conn is not None and not conn.closed

    @property
    def lock_key(self) -> int | None:
        """The advisory lock key (known once connected): `SELECT * FROM pg_locks ...`."""
        return self._key

    @property
    def last_error(self) -> str:
        """Why the last `start`, `try_acquire` or `check` failed to reach the database, or ""."""
        return self._last_error

    def held_lock(self) -> AdvisoryLock | None:
        """The lock a leader holds, for `PostgresRegistry(fence=...)`; None when not leader."""
        if not self.is_leader or self._key is None:
            return None
        return AdvisoryLock(backend_pid=self._backend_pid, key=self._key)

    async def start(self) -> None:
        """Connect (and compute the lock key); raises `LeaderElectionError` naming the fix.

        Connected already: nothing to do. Never takes the lock, so a replica that just stepped
        down can call it to learn whether the database answers (`last_error` says).
        """
        async with self._lock:
            if self._conn is not None and not self._conn.closed:
                return
            try:
                await self._connect()
            except psycopg.Error as exc:
                error = translate_error(exc, self._where, lock_timeout_s=self._check_timeout_s)
                self._last_error = str(error)
                raise LeaderElectionError(str(error)) from exc
            self._last_error = ""

    async def try_acquire(self) -> bool:
        async with self._lock:
            if self._leader:
                return await self._check()
            # A follower's idle connection may have died since the last try (server restart):
            # then one fresh connection gets a second chance at once.
            for attempt in range(2):
                fresh = self._conn is None or self._conn.closed
                try:
                    conn = await self._connect() if fresh else self._conn
                    assert conn is not None and self._key is not None
                    row = await self._bounded(conn, "SELECT pg_try_advisory_lock(%s)", self._key)
                except (psycopg.Error, TimeoutError) as exc:
                    self._last_error = self._describe(exc)
                    await self._disconnect()
                    if fresh or attempt:
                        log.debug("leader election for %r: %s", self._group, self._last_error)
                        return False
                    continue
                self._last_error = ""
                if row:
                    self._leader = True
                    log.info(
                        "became leader of discovery group %r (advisory lock %d, %s, pid %d)",
                        self._group,
                        self._key,
                        self._where,
                        self._backend_pid,
                    )
                return self._leader
            return False  # pragma: no cover - the loop always returns

    async def check(self) -> bool:
        async with self._lock:
            return await self._check()

    async def release(self) -> None:
        """Unlock and close the connection (ending the session frees the lock regardless)."""
        async with self._lock:
            was_leader, self._leader = self._leader, False
            conn = self._conn
            if was_leader and conn is not None and not conn.closed and self._key is not None:
                with suppress(psycopg.Error, TimeoutError):
                    await self._bounded(conn, "SELECT pg_advisory_unlock(%s)", self._key)
                log.info("released leadership of discovery group %r", self._group)
            await self._disconnect()

    # --- internals (called with self._lock held) ---------------------------------------------

    async def _check(self) -> bool:
        conn = self._conn
        if not self._leader:
            return False
        if conn is None or conn.closed or self._key is None:
            await self._lose("the connection to PostgreSQL is closed")
            return False
        unsigned = self._key & 0xFFFF_FFFF_FFFF_FFFF
        try:
            held = await self._bounded(
                conn,
                "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND "
                "granted AND pid = pg_backend_pid() AND classid::bigint = %s AND "
                "objid::bigint = %s AND objsubid = 1)",
                unsigned >> 32,
                unsigned & 0xFFFF_FFFF,
            )
        except (psycopg.Error, TimeoutError) as exc:
            self._last_error = self._describe(exc)
            await self._lose(f"lost the connection to PostgreSQL: {self._last_error}")
            return False
        if not held:
            await self._lose("the advisory lock is no longer held by this session")
            return False
        self._last_error = ""
        return True

    async def _lose(self, reason: str) -> None:
        self._leader = False
        log.warning("lost leadership of discovery group %r: %s", self._group, reason)
        # Close the session: should it still hold the lock after all (e.g. a check that only
        # timed out), ending it frees the lock for a follower instead of leaving it orphaned.
        await self._disconnect()

    async def _connect(self) -> psycopg.AsyncConnection[TupleRow]:
        await self._disconnect()
        conn = await psycopg.AsyncConnection.connect(
            self._conninfo, autocommit=True, prepare_threshold=None
        )
        try:
            settings = {
                "tcp_keepalives_idle": str(_KEEPALIVE_IDLE_S),
                "tcp_keepalives_interval": str(_KEEPALIVE_INTERVAL_S),
                "tcp_keepalives_count": str(_KEEPALIVE_COUNT),
                "tcp_user_timeout": str(
                    (_KEEPALIVE_IDLE_S + _KEEPALIVE_INTERVAL_S * _KEEPALIVE_COUNT) * 1000
                ),
            }
            if conn.info.server_version >= 140000:
                # A server-wide idle_session_timeout would end the leader's quiet session.
                settings["idle_session_timeout"] = "0"
            for name, value in settings.items():
                await conn.execute("SELECT set_config(%s, %s, false)", (name, value))
            # The pid as the server knows it (behind a session-mode pooler, the protocol's
            # backend pid is the pooler's own): the registry's fence looks it up in pg_locks.
            row = await (
                await conn.execute("SELECT pg_backend_pid(), coalesce(current_schema(), '')")
            ).fetchone()
            assert row is not None
        except BaseException:
            with suppress(psycopg.Error):
                await conn.close()
            raise
        self._backend_pid = int(row[0])
        self._key = leader_lock_key(str(row[1]), self._group)
        self._conn = conn
        return conn

    async def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.closed:
            with suppress(psycopg.Error):
                await conn.close()

    async def _bounded(
        self, conn: psycopg.AsyncConnection[TupleRow], query: str, *params: int
    ) -> object:
        """`_fetch_one`, or TimeoutError (and the connection closed) after check_timeout_s.

        Not `asyncio.wait_for`: cancelling a psycopg query that gets no answer makes psycopg
        try to cancel it on the server and wait for that too, 10 s more on a dead network.
        Closing the connection first makes the cancellation immediate.
        """
        task = asyncio.ensure_future(_fetch_one(conn, query, *params))
        try:
            done, _ = await asyncio.wait({task}, timeout=self._check_timeout_s)
        except asyncio.CancelledError:
            task.cancel()
            raise
        if task in done:
            return task.result()
        if self._conn is conn:
            self._conn = None
        with suppress(psycopg.Error):
            await conn.close()
        task.cancel()
        await asyncio.wait({task})
        if not task.cancelled():
            task.exception()  # retrieved on purpose: we gave up on that query
        raise TimeoutError(f"no answer within {self._check_timeout_s:g}s")

    def _describe(self, exc: BaseException) -> str:
        if isinstance(exc, psycopg.Error):
            return str(translate_error(exc, self._where, lock_timeout_s=self._check_timeout_s))
        return f"{self._where}: no answer within {self._check_timeout_s:g}s"


async def _fetch_one(conn: psycopg.AsyncConnection[TupleRow], query: str, *params: int) -> object:
    """The first column of the first row of `query`."""
    row = await (await conn.execute(query, params or None)).fetchone()
    return row[0] if row else None
