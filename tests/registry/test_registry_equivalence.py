"""Property: the in-memory fake and SQLite agree on every sequence of applies.

The reconciler's unit tests trust MemoryRegistry to behave like the real store; this is what
earns that trust. Names come from a small pool and revisions are sometimes off by one, so
conflicts (stale updates, stale deletes, creates of existing names) are frequent.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from discovery.core.model import StoredResource
from discovery.registry.base import Changes, RegistryError, Update
from discovery.registry.memory import MemoryRegistry
from discovery.registry.sqlite import SQLiteRegistry
from tests.registry.registry_support import make_resource, sqlite_revision_counter

NAMES = ("a", "b", "c", "d")

_name = st.sampled_from(NAMES)
_variant = st.integers(min_value=0, max_value=3)
# Mostly the current revision, sometimes a stale or a future one.
_offset = st.sampled_from((0, 0, 0, -1, 1))

_op = st.one_of(
    st.tuples(st.just("create"), _name, _variant, st.just(0)),
    st.tuples(st.just("update"), _name, _variant, _offset),
    st.tuples(st.just("delete"), _name, st.just(0), _offset),
)
Op = tuple[str, str, int, int]
_batches = st.lists(st.lists(_op, max_size=5), min_size=1, max_size=12)


def _changes(batch: list[Op], current: dict[str, StoredResource]) -> Changes:
    create, update, delete = [], [], []
    for action, name, variant, offset in batch:
        seen = current.get(name) or StoredResource(resource=make_resource(name), revision=1)
        before = StoredResource(resource=seen.resource, revision=seen.revision + offset)
        if action == "create":
            create.append(make_resource(name, variant=variant))
        elif action == "update":
            update.append(Update(before=before, after=make_resource(name, variant=variant)))
        else:
            delete.append(before)
    return Changes(create=tuple(create), update=tuple(update), delete=tuple(delete))


async def _outcome(registry: MemoryRegistry | SQLiteRegistry, changes: Changes) -> str:
    try:
        await registry.apply(changes)
    except RegistryError as exc:
        return type(exc).__name__
    return "ok"


async def _run(batches: list[list[Op]], path: Path) -> None:
    memory, sqlite = MemoryRegistry(), SQLiteRegistry(path)
    for batch in batches:
        listed = await memory.list_resources()
        assert await sqlite.list_resources() == listed
        changes = _changes(batch, {stored.resource.name: stored for stored in listed})

        assert await _outcome(sqlite, changes) == await _outcome(memory, changes), changes

    assert await sqlite.list_resources() == await memory.list_resources()
    assert sqlite_revision_counter(path) == memory.revision


@settings(max_examples=75, deadline=None)
@given(batches=_batches)
def test_memory_and_sqlite_give_the_same_results(batches: list[list[Op]]) -> None:
    with tempfile.TemporaryDirectory() as directory:
        asyncio.run(_run(batches, Path(directory) / "registry.db"))
