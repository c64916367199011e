"""Leader election: exactly one replica of a discovery group reconciles; the others wait.

The daemon sees only the `Leadership` Protocol. Three implementations:

- `SQLiteLeaderLock` (in `discovery.registry.sqlite_leader`) for processes sharing one SQLite
  file: an exclusive `flock` on `<registry.path>.lock`, dropped by the kernel when its holder
  exits (even by `kill -9`), so a follower's next `try_acquire` takes over. A writing `scan`
  takes the same lock for its run.
- `AlwaysLeader`, trivially the leader, for tests and in-process fakes whose registry only one
  process can reach.
- `PostgresLeaderElector` (in `discovery.registry.postgres_leader`, which needs the `postgres`
  extra) for replicas sharing a PostgreSQL registry: a session advisory lock per discovery group,
  held on a dedicated connection. The server releases it the moment that session ends (process
  killed, connection lost, host gone once TCP keepalives give up), so a follower's next
  `try_acquire` takes over.

`discovery.wiring.open_leadership` picks the right one; it imports psycopg only for postgres,
so an SQLite-only install never needs it. This module imports neither.
"""

from __future__ import annotations

import hashlib
from typing import Protocol

__all__ = ["AlwaysLeader", "Leadership", "leader_lock_key"]


class Leadership(Protocol):
    """Who may write for a discovery group. Only a leader runs cycles."""

    @property
    def is_leader(self) -> bool:
        """What the last `try_acquire`/`check` found; False as soon as a loss was seen."""
        ...

    @property
    def last_error(self) -> str:
        """Why the last `start`, `try_acquire` or `check` failed to reach the database, or ""."""
        ...

    async def start(self) -> None:
        """Get ready (connect); raises `RegistryError` naming the fix when that is impossible."""
        ...

    async def try_acquire(self) -> bool:
        """Become leader if nobody is; True if leader now. Never raises for a lost database."""
        ...

    async def check(self) -> bool:
        """Still leader? Verifies the connection and the lock; False (and not leader) if not."""
        ...

    async def release(self) -> None:
        """Give up leadership (shutdown): a follower's next `try_acquire` takes over."""
        ...


class AlwaysLeader:
    """`Leadership` for a registry only one process can write (an in-memory one): always the
    leader."""

    @property
    def is_leader(self) -> bool:
        return True

    @property
    def last_error(self) -> str:
        return ""

    async def start(self) -> None:
        return None

    async def try_acquire(self) -> bool:
        return True

    async def check(self) -> bool:
        return True

    async def release(self) -> None:
        return None


def leader_lock_key(schema: str, discovery_group: str) -> int:
    """The 64-bit advisory lock key of a discovery group in a registry schema.

    Stable across versions and Python runs (blake2b, not `hash()`), because replicas of
    different versions must contend for the same lock during a rolling upgrade. The schema is
    part of the key so that two registries in one database (e.g. staging and prod schemas)
    with the same group name each get their own leader.
    """
    digest = hashlib.blake2b(
        f"rdsproxy-discovery/leader/{schema}/{discovery_group}".encode(), digest_size=8
    ).digest()
    return int.from_bytes(digest, "big", signed=True)
