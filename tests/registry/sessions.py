"""PostgreSQL sessions as the leader tests see them: who holds a group's lock, ending a session."""

from __future__ import annotations

import time

from tests.registry.postgres_support import postgres_dsn, sql


def elector_application_name(group: str) -> str:
    """What an elector of `group` calls itself in pg_stat_activity."""
    return f"discovery-leader/{group}"[:63]


def lock_holders(group: str) -> list[int]:
    """Backend pids of the electors of `group` that hold an advisory lock (the leader's)."""
    rows = sql(
        postgres_dsn(),
        "SELECT DISTINCT a.pid FROM pg_stat_activity a JOIN pg_locks l ON l.pid = a.pid "
        "WHERE a.application_name = %s AND l.locktype = 'advisory' AND l.granted",
        (elector_application_name(group),),
    )
    return sorted(int(str(pid)) for (pid,) in rows)


def terminate_backend(pid: int, *, timeout: float = 10.0) -> None:
    """pg_terminate_backend, then wait for the backend to be gone (and its locks with it).

    pg_terminate_backend only signals the backend: without the wait, the next statement can
    still see the session and its advisory lock.
    """
    base = postgres_dsn()
    assert sql(base, "SELECT pg_terminate_backend(%s)", (pid,)) == [(True,)]
    deadline = time.monotonic() + timeout
    while sql(
        base,
        "SELECT 1 FROM pg_stat_activity WHERE pid = %s UNION ALL "
        "SELECT 1 FROM pg_locks WHERE pid = %s",
        (pid, pid),
    ):
        assert time.monotonic() < deadline, (
            f"backend {pid} still there {timeout:g}s after it was terminated"
        )
        time.sleep(0.02)
