"""The apply journal (issue 12, hole 3) in every backend: one row per stamped apply, written in
the apply's transaction (a rolled-back apply leaves none), read newest first, pruned past the
retention; and the schema step that adds it to registries made by the previous build (SQLite
file at version 1, PostgreSQL schema at version 1)."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from discovery.core.journal import JOURNAL_RETENTION, JournalEntry
from discovery.core.model import JournalStamp, StoredResource, Update
from discovery.registry import postgres_schema
from discovery.registry import sqlite as sqlite_module
from discovery.registry.base import Changes, Registry, RegistryConflict
from discovery.registry.postgres import PostgresRegistry
from discovery.registry.sqlite import SQLiteRegistry
from tests.registry.postgres_support import fresh_schema, sql
from tests.registry.registry_support import Backend, make_resource

T0 = datetime(2026, 12, 2, 6, 0, tzinfo=UTC)


def stamp(
    cycle: str, *, at: datetime = T0, group: str = "prod", forced: bool = False
) -> JournalStamp:
    return JournalStamp(cycle_id=cycle, discovery_group=group, at=at, forced=forced)


async def create(registry: Registry, *names: str, journal: JournalStamp | None) -> None:
    await registry.apply(Changes(create=tuple(make_resource(n) for n in names), journal=journal))


async def test_a_stamped_apply_writes_one_row_naming_its_changes(backend: Backend) -> None:
    registry = backend.registry
    await create(registry, "a", "b", "c", journal=stamp("c1"))
    rows = {s.resource.name: s for s in await registry.list_resources()}
    later = T0 + timedelta(minutes=5)
    await registry.apply(
        Changes(
            create=(make_resource("d"),),
            update=(replace_update(rows["a"]),),
            delete=(rows["b"], rows["c"]),
            journal=stamp("c2", at=later, forced=True),
        )
    )

    assert await registry.history() == [
        JournalEntry(
            cycle_id="c2",
            discovery_group="prod",
            at=later,
            forced=True,
            created=("d",),
            updated=("a",),
            deleted=("b", "c"),
        ),
        JournalEntry(
            cycle_id="c1",
            discovery_group="prod",
            at=T0,
            forced=False,
            created=("a", "b", "c"),
            updated=(),
            deleted=(),
        ),
    ]


def replace_update(stored: StoredResource) -> Update:
    return Update(before=stored, after=make_resource(stored.resource.name, variant=9))


async def test_no_stamp_or_nothing_to_write_leaves_no_row(backend: Backend) -> None:
    await create(backend.registry, "a", journal=None)  # copy, adopt: not a cycle
    await backend.registry.apply(Changes(journal=stamp("steady")))  # steady state writes nothing
    assert await backend.registry.history() == []
    assert await backend.revision_counter() == 1


async def test_history_filters_by_group_time_and_limit_newest_first(backend: Backend) -> None:
    registry = backend.registry
    for i, (group, minutes) in enumerate([("prod", 0), ("staging", 1), ("prod", 2), ("prod", 2)]):
        at = T0 + timedelta(minutes=minutes)
        await create(registry, f"r{i}", journal=stamp(f"c{i}", at=at, group=group))

    def ids(entries: list[JournalEntry]) -> list[str]:
        return [e.cycle_id for e in entries]

    assert ids(await registry.history()) == ["c3", "c2", "c1", "c0"]  # a tie: later write first
    assert ids(await registry.history(discovery_group="prod")) == ["c3", "c2", "c0"]
    since = T0 + timedelta(minutes=1)
    assert ids(await registry.history(since=since)) == ["c3", "c2", "c1"]
    assert ids(await registry.history(discovery_group="prod", since=since)) == ["c3", "c2"]
    assert ids(await registry.history(limit=2)) == ["c3", "c2"]
    # Times come back as UTC, whatever zone the stamp was written in.
    assert (await registry.history(limit=1))[0].at.utcoffset() == timedelta(0)


async def test_a_write_prunes_rows_past_the_retention(backend: Backend) -> None:
    registry = backend.registry
    await create(registry, "old", journal=stamp("old", at=T0))
    await create(registry, "kept", journal=stamp("kept", at=T0 + timedelta(days=3)))
    await create(registry, "new", journal=stamp("new", at=T0 + JOURNAL_RETENTION + timedelta(1)))

    assert [e.cycle_id for e in await registry.history()] == ["new", "kept"]


async def test_an_apply_that_conflicts_leaves_no_row(backend: Backend) -> None:
    await create(backend.registry, "a", journal=stamp("c1"))
    with pytest.raises(RegistryConflict):
        await create(backend.registry, "b", "a", journal=stamp("c2"))
    assert [e.cycle_id for e in await backend.registry.history()] == ["c1"]


class Boom(Exception):
    pass


def boom() -> None:
    raise Boom("the process dies just before the commit")


async def test_an_apply_that_rolls_back_after_its_journal_write_leaves_no_row(
    tmp_path: Path,
) -> None:
    # before_commit runs after every write of the apply, the journal row's included.
    path = tmp_path / "r.db"
    with pytest.raises(Boom):
        await create(SQLiteRegistry(path, before_commit=boom), "a", journal=stamp("c1"))
    assert await SQLiteRegistry(path).history() == []
    assert await SQLiteRegistry(path).list_resources() == []


async def test_a_postgres_apply_that_rolls_back_leaves_no_row() -> None:
    with fresh_schema() as dsn:
        failing = PostgresRegistry(dsn, before_commit=boom)
        try:
            with pytest.raises(Boom):
                await create(failing, "a", journal=stamp("c1"))
        finally:
            await failing.close()
        assert sql(dsn, "SELECT count(*) FROM discovery_journal") == [(0,)]


# --- schema: registries made by the previous build get the table ---------------------------


def make_v1_sqlite(path: Path) -> None:
    """A registry file as the previous build made it (schema version 1), with one resource."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        for statement in sqlite_module._MIGRATIONS[0]:
            conn.execute(statement)
        conn.execute(
            "INSERT INTO resources (name, revision, document, updated_at) VALUES ('a', 1, ?, 'x')",
            (sqlite_module._encode(make_resource("a")),),
        )
        conn.execute("UPDATE meta SET value = 1 WHERE key = 'revision'")
        conn.execute(f"PRAGMA application_id = {sqlite_module.APPLICATION_ID}")
        conn.execute("PRAGMA user_version = 1")
    finally:
        conn.close()


async def test_a_version_1_sqlite_file_gets_the_journal_and_keeps_its_resources(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.db"
    make_v1_sqlite(path)
    registry = SQLiteRegistry(path)

    assert [s.resource.name for s in await registry.list_resources()] == ["a"]
    await create(registry, "b", journal=stamp("c1"))

    assert [e.created for e in await registry.history()] == [("b",)]
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone() == (sqlite_module.SCHEMA_VERSION,)
    finally:
        conn.close()
    assert sqlite_module.SCHEMA_VERSION == 2


async def test_a_deleted_sqlite_file_comes_back_with_its_journal(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    registry = SQLiteRegistry(path)
    await create(registry, "a", journal=stamp("c1"))
    for leftover in tmp_path.glob("r.db*"):
        leftover.unlink()

    await create(registry, "a", journal=stamp("c2"))

    assert [e.cycle_id for e in await registry.history()] == ["c2"]


async def test_a_version_1_postgres_schema_gets_the_journal_and_keeps_its_resources() -> None:
    with fresh_schema() as dsn:
        sql(
            dsn,
            "CREATE TABLE discovery_schema_version (singleton boolean PRIMARY KEY DEFAULT true "
            "CHECK (singleton), version integer NOT NULL, migrated_at timestamptz NOT NULL "
            "DEFAULT now())",
        )
        sql(dsn, "INSERT INTO discovery_schema_version (version) VALUES (1)")
        for statement in postgres_schema._MIGRATIONS[0]:
            sql(dsn, statement)
        sql(
            dsn,
            "INSERT INTO discovery_resources (name, revision, document) VALUES ('a', 1, %s)",
            (json_of("a"),),
        )
        sql(dsn, "UPDATE discovery_meta SET value = 1 WHERE key = 'revision'")

        registry = PostgresRegistry(dsn)
        try:
            assert [s.resource.name for s in await registry.list_resources()] == ["a"]
            await create(registry, "b", journal=stamp("c1"))
            assert [e.created for e in await registry.history()] == [("b",)]
        finally:
            await registry.close()
        assert sql(dsn, "SELECT version FROM discovery_schema_version") == [
            (postgres_schema.SCHEMA_VERSION,)
        ]
        assert postgres_schema.SCHEMA_VERSION == 2


def json_of(name: str) -> str:
    return json.dumps(make_resource(name).to_dict())
