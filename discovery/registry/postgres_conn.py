"""PostgreSQL connection details shared by the registry and the leader elector.

Both talk to the same server through their own connections, so the DSN handling (our defaults
under the DSN's own settings, a description that never shows the password), the advisory lock
value a fence compares, and the ONE psycopg-error → fix table live here rather than in either
of them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import TupleRow
from psycopg_pool import PoolTimeout

from discovery.registry.base import RegistryConflict, RegistryError

__all__ = [
    "AdvisoryLock",
    "Fence",
    "connection_string",
    "describe_dsn",
    "set_lock_timeout",
    "table_exists",
    "translate_error",
]


@dataclass(frozen=True, kw_only=True)
class AdvisoryLock:
    """A session advisory lock (64-bit key) held by one PostgreSQL backend."""

    backend_pid: int
    key: int


Fence = Callable[[], AdvisoryLock | None]
"""Returns the lock the writer must hold for an apply to commit, or None when it holds none."""


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


async def set_lock_timeout(conn: psycopg.AsyncConnection[TupleRow], seconds: float) -> None:
    await conn.execute(
        "SELECT set_config('lock_timeout', %s, true)", (f"{max(1, round(seconds * 1000))}ms",)
    )


async def table_exists(conn: psycopg.AsyncConnection[TupleRow], schema: str, name: str) -> bool:
    row = await (
        await conn.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = "
            "c.relnamespace WHERE n.nspname = %s AND c.relname = %s)",
            (schema, name),
        )
    ).fetchone()
    return bool(row and row[0])
