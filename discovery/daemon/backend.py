"""The daemon's registry and elector: guarded, held in one slot, swapped on reload.

A registry is fenced on its elector (with PostgreSQL an apply commits only while that elector
holds the leader lock), so the two are opened, swapped and closed together as one `Backend`.
A reload that changes `registry` or `discovery_group` offers a new backend to the slot; the
daemon swaps it in between two cycles, never during one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol, TypeVar

from discovery.core.config import Config
from discovery.core.journal import JournalEntry
from discovery.core.model import Changes, StoredResource
from discovery.daemon.fds import EMFILE_HINT, out_of_fds
from discovery.registry.base import PartialApply, Registry, RegistryConflict, RegistryError
from discovery.registry.leader import AlwaysLeader, Leadership

log = logging.getLogger(__name__)
T = TypeVar("T")


class BackendOpener(Protocol):
    """Opens the registry of a config, fenced on its elector, and that elector, together."""

    def __call__(self, config: Config, config_path: Path, /) -> tuple[Registry, Leadership]: ...


class GuardedRegistry:
    """A `Registry` whose started applies always finish, and which remembers if it answered.

    An apply, once handed to the backend, is shielded from cancellation: stopping the daemon
    cancels a cycle's fetches at once but never abandons a transaction half-way, and `drain()`
    waits for it to commit or roll back. Every call also records whether the registry answered,
    for `/readyz` and `rdsproxy_discovery_registry_up`.
    """

    def __init__(self, inner: Registry) -> None:
        self.inner = inner
        self.reachable: bool | None = None  # None: not tried yet
        self.error = ""
        self.applies = 0  # applies handed to the backend so far
        self._apply: asyncio.Future[None] | None = None
        self._out_of_fds = False  # reported once until the registry answers again

    @property
    def applying(self) -> bool:
        return self._apply is not None and not self._apply.done()

    async def list_resources(self) -> list[StoredResource]:
        return await self._read(self.inner.list_resources())

    async def history(
        self,
        *,
        discovery_group: str | None = None,
        since: datetime | None = None,
        limit: int | None = None,
    ) -> list[JournalEntry]:
        return await self._read(
            self.inner.history(discovery_group=discovery_group, since=since, limit=limit)
        )

    async def _read(self, call: Awaitable[T]) -> T:
        """A read of the registry, recording whether it answered (errors explained)."""
        try:
            rows = await call
        except RegistryError as exc:
            explained = self._explain(exc)
            self._answered(explained)
            if explained is exc:
                raise
            raise explained from exc
        self._answered(None)
        return rows

    async def apply(self, changes: Changes) -> None:
        self.applies += 1
        task = asyncio.ensure_future(self.inner.apply(changes))
        self._apply = task
        task.add_done_callback(self._apply_done)
        try:
            await asyncio.shield(task)
        except RegistryError as exc:
            explained = self._explain(exc)
            if explained is exc:
                raise
            raise explained from exc

    def _apply_done(self, task: asyncio.Future[None]) -> None:
        if task.cancelled():
            return
        # Retrieving the exception here also keeps a drained apply's error from being reported
        # as "never retrieved" when its cycle was cancelled.
        exc = task.exception()
        if exc is None or isinstance(exc, RegistryError):
            self._answered(self._explain(exc) if isinstance(exc, RegistryError) else exc)

    def _explain(self, exc: RegistryError) -> RegistryError:
        """The backend's error, or what it really is when the process is out of fds (SQLite
        then says "unable to open database file", PostgreSQL cannot connect); logged once."""
        if isinstance(exc, RegistryConflict) or not out_of_fds():
            return exc
        if not self._out_of_fds:
            log.error("the registry cannot be opened: %s", EMFILE_HINT)
        self._out_of_fds = True
        return RegistryError(f"{EMFILE_HINT}; the registry cannot be opened")

    def _answered(self, exc: BaseException | None) -> None:
        # A conflict is an answer; so is a partial apply (the registry wrote part of it).
        if exc is None or isinstance(exc, RegistryConflict | PartialApply):
            self.reachable, self.error = True, ""
            self._out_of_fds = False
        else:
            self.reachable, self.error = False, str(exc)

    async def drain(self) -> None:
        if self._apply is not None and not self._apply.done():
            await asyncio.wait([self._apply])

    async def close(self) -> None:
        await self.drain()
        await self.inner.close()


@dataclass(frozen=True)
class Backend:
    """A registry and the elector its applies are fenced on: opened, swapped, closed together."""

    registry: GuardedRegistry
    leadership: Leadership

    @classmethod
    def of(cls, registry: Registry, leadership: Leadership) -> Backend:
        return cls(GuardedRegistry(registry), leadership)

    @property
    def elected(self) -> bool:
        """Whether leadership is contended at all (False: `AlwaysLeader`, an in-process fake)."""
        return not isinstance(self.leadership, AlwaysLeader)

    async def close(self) -> None:
        """Release the leadership (after the registry's apply has drained), close the registry."""
        await self.registry.drain()
        try:
            await self.leadership.release()
        except Exception as exc:  # the session ends with the process anyway
            log.warning("could not release the leadership cleanly: %s", exc)
        await self.registry.close()


def needs_new_backend(old: Config, new: Config, current: Backend) -> bool:
    """Whether a reload from `old` to `new` needs another registry and elector.

    The lock is per database, schema and group, and the registry is fenced on its elector, so
    a new registry or group means both anew; a new group on a registry with one writer
    (`AlwaysLeader`) keeps them.
    """
    if new.registry != old.registry:
        return True
    return new.discovery_group != old.discovery_group and current.elected


class BackendSlot:
    """The backend the cycles use now, and the one a reload opened for the next cycle."""

    def __init__(self, backend: Backend) -> None:
        self.current = backend
        self._next: Backend | None = None
        self._discarded: list[Backend] = []  # opened by a reload, never used

    @property
    def pending(self) -> bool:
        return self._next is not None

    @property
    def upcoming(self) -> Backend:
        """The backend the next cycle uses: the offered one, else the current one."""
        return self._next if self._next is not None else self.current

    def offer(self, backend: Backend) -> None:
        """Use `backend` from the next swap on; of two reloads between cycles, the last wins."""
        if self._next is not None:
            self._discarded.append(self._next)
        self._next = backend

    def withdraw(self, backend: Backend) -> None:
        """Take back an offer whose reload was rejected after all: `backend` is closed at the
        next swap, never used; an earlier reload's offer, if it was replaced, stands again."""
        if self._next is not backend:
            return
        self._next = self._discarded.pop() if self._discarded else None
        self._discarded.append(backend)

    async def swap(self) -> Backend | None:
        """Swap in the offered backend, if any (no cycle may run); returns the old one, closed:
        its leadership released, so a follower may take over."""
        await self._close_discarded()
        new = self._next
        if new is None:
            return None
        old, self.current, self._next = self.current, new, None
        await old.close()
        return old

    async def close(self) -> None:
        await self.current.close()
        if self._next is not None:
            await self._next.close()
            self._next = None
        await self._close_discarded()

    async def _close_discarded(self) -> None:
        while self._discarded:
            await self._discarded.pop().close()
