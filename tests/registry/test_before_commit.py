"""The registries' `before_commit` seam: it runs inside the apply's transaction, after every
write and before the commit, so what it sees from outside is the registry as before, and an
exception there rolls the whole apply back."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from discovery.registry.base import Changes, Registry
from discovery.registry.postgres import PostgresRegistry
from discovery.registry.sqlite import SQLiteRegistry
from tests.registry.postgres_support import fresh_schema
from tests.registry.registry_support import make_resource

Opener = Callable[[Callable[[], None] | None], Registry]


@pytest.fixture(params=["sqlite", "postgres"])
def open_registry(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    if request.param == "sqlite":
        yield lambda hook: SQLiteRegistry(tmp_path / "r.db", before_commit=hook)
        return
    with fresh_schema() as dsn:
        yield lambda hook: PostgresRegistry(dsn, before_commit=hook)


class Boom(Exception):
    pass


def names(opener: Opener) -> list[str]:
    async def read() -> list[str]:
        registry = opener(None)
        try:
            return [s.resource.name for s in await registry.list_resources()]
        finally:
            await registry.close()

    return asyncio.run(read())


def test_the_hook_runs_once_per_apply_before_the_commit(open_registry: Opener) -> None:
    seen: list[list[str]] = []
    # A thread of its own, as the hook runs in one: it reads through a second registry.
    registry = open_registry(lambda: seen.append(names(open_registry)))

    async def write() -> None:
        try:
            await registry.apply(Changes(create=(make_resource("a"),)))
            await registry.apply(Changes())  # nothing to write: no transaction, no hook
        finally:
            await registry.close()

    asyncio.run(write())
    assert seen == [[]], "the hook ran outside the transaction, or not exactly once"
    assert names(open_registry) == ["a"]


def test_a_failing_hook_rolls_the_apply_back(open_registry: Opener) -> None:
    def fail() -> None:
        raise Boom("killed at the commit")

    registry = open_registry(fail)

    async def write() -> None:
        try:
            await registry.apply(Changes(create=(make_resource("a"), make_resource("b"))))
        finally:
            await registry.close()

    with pytest.raises(Boom):
        asyncio.run(write())
    assert names(open_registry) == []
