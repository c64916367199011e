"""The local PostgreSQL for the tests: find it (or start it), and give each test its own schema.

Where the server comes from, in order:
1. `$DISCOVERY_TEST_POSTGRES_DSN`, when set. It must answer: an unreachable server named on
   purpose is a failure, never a skip.
2. `host=127.0.0.1 port=5432 user=postgres dbname=test` (trust auth), the machine's own server.
3. If that does not answer: start the local cluster(s) with
   `pg_ctlcluster --skip-systemctl-redirect VERSION main start` (one per /etc/postgresql/VERSION)
   and wait for it to answer.
Only when all of that fails are the PostgreSQL tests skipped, with a reason that names what
was tried; with `DISCOVERY_REQUIRE_POSTGRES=1` they fail instead.

Isolation: each test gets a fresh schema `discovery_test_<random>` (dropped afterwards) and a
DSN whose search_path points at it, so concurrent runs and other tests never meet. Advisory
locks are per database, not per schema: tests that elect leaders use random group names.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import cache
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

ENV_DSN = "DISCOVERY_TEST_POSTGRES_DSN"
ENV_REQUIRE = "DISCOVERY_REQUIRE_POSTGRES"
LOCAL_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=test"
START_WAIT_S = 30.0


def _try_connect(dsn: str) -> str:
    """ "" when a server answers at `dsn`, else the reason it did not."""
    try:
        with psycopg.connect(dsn, connect_timeout=3, autocommit=True) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return " ".join(str(exc).split())
    return ""


def _start_local_clusters() -> list[str]:
    tried = []
    ctl = shutil.which("pg_ctlcluster")
    versions = sorted(p.name for p in Path("/etc/postgresql").glob("*") if p.is_dir())
    if ctl is None or not versions:
        return ["pg_ctlcluster: not installed (no Debian PostgreSQL cluster on this machine)"]
    for version in versions:
        cmd = [ctl, "--skip-systemctl-redirect", version, "main", "start"]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
            output = " ".join((done.stdout + done.stderr).split())
            result = f"exit {done.returncode} {output}".strip()
        except (OSError, subprocess.TimeoutExpired) as exc:
            result = str(exc)
        tried.append(f"{' '.join(cmd)}: {result}")
    return tried


@cache
def _find() -> tuple[str, str]:
    """(dsn, "") when found, ("", what was tried) when not. Cached: probed once per run."""
    explicit = os.environ.get(ENV_DSN, "").strip()
    if explicit:
        reason = _try_connect(explicit)
        if reason:
            raise AssertionError(f"${ENV_DSN} is set but PostgreSQL does not answer: {reason}")
        return explicit, ""
    reason = _try_connect(LOCAL_DSN)
    if not reason:
        return LOCAL_DSN, ""
    tried = [f"connect {LOCAL_DSN!r}: {reason}", *_start_local_clusters()]
    deadline = time.monotonic() + START_WAIT_S
    while time.monotonic() < deadline:
        if not _try_connect(LOCAL_DSN):
            return LOCAL_DSN, ""
        time.sleep(0.5)
    tried.append(f"waited {START_WAIT_S:g}s for {LOCAL_DSN!r} to answer")
    return "", "; ".join(tried)


def postgres_dsn() -> str:
    """The DSN of a PostgreSQL server that answers, or skip (fail if required) saying why."""
    dsn, tried = _find()
    if dsn:
        return dsn
    message = f"no PostgreSQL found for the postgres tests (set ${ENV_DSN} to use one); tried: "
    if os.environ.get(ENV_REQUIRE) == "1":
        pytest.fail(message + tried + f" (${ENV_REQUIRE}=1)")
    pytest.skip(message + tried)


def sql(dsn: str, query: str, params: Sequence[object] = ()) -> list[tuple[object, ...]]:
    """Run one statement in autocommit; its rows ([] when it returns none)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        cursor = conn.execute(query, params or None)  # type: ignore[arg-type]
        return cursor.fetchall() if cursor.description else []


def schema_dsn(base: str, schema: str) -> str:
    return make_conninfo(base, options=f"-csearch_path={schema}")


def new_schema() -> tuple[str, str]:
    """(dsn, schema) of a new, empty schema; the caller drops it with `drop_schema`."""
    base = postgres_dsn()
    schema = f"discovery_test_{uuid.uuid4().hex[:12]}"
    sql(base, f'CREATE SCHEMA "{schema}"')
    return schema_dsn(base, schema), schema


def drop_schema(schema: str) -> None:
    sql(postgres_dsn(), f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@contextmanager
def fresh_schema() -> Iterator[str]:
    """A DSN whose search_path is a new, empty schema; the schema is dropped afterwards."""
    dsn, schema = new_schema()
    try:
        yield dsn
    finally:
        drop_schema(schema)


def revision_counter(dsn: str) -> int:
    """The registry-wide counter, read straight from the table (0 before first use)."""
    exists = sql(dsn, "SELECT to_regclass('discovery_meta') IS NOT NULL")
    if not exists[0][0]:
        return 0
    [(value,)] = sql(dsn, "SELECT value FROM discovery_meta WHERE key = 'revision'")
    return int(str(value))


def random_group() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"
