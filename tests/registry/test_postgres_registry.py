"""What only the PostgreSQL backend has: a server, a schema to migrate, other connections and
processes writing at once, and PostgreSQL's failure modes. The shared contract runs separately
(test_registry_contract.py, backend "postgres")."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest
from hypothesis import given, settings

from discovery.registry.base import Changes, RegistryConflict, RegistryError, Update
from discovery.registry.memory import MemoryRegistry
from discovery.registry.postgres import PostgresRegistry
from discovery.registry.postgres_schema import SCHEMA_VERSION
from tests.registry.postgres_support import (
    fresh_schema,
    postgres_dsn,
    revision_counter,
    schema_dsn,
    sql,
)
from tests.registry.registry_support import make_resource
from tests.registry.test_registry_equivalence import Op, _batches, _changes

REPO_ROOT = Path(__file__).resolve().parents[2]
WORKER = [sys.executable, "-m", "tests.registry.registry_worker"]


@pytest.fixture
def dsn() -> Iterator[str]:
    with fresh_schema() as made:
        yield made


@pytest.fixture
async def registry(dsn: str) -> AsyncIterator[PostgresRegistry]:
    made = PostgresRegistry(dsn)
    yield made
    await made.close()


def _names(dsn: str) -> list[str]:
    return [str(name) for (name,) in sql(dsn, "SELECT name FROM discovery_resources ORDER BY 1")]


def _tables(dsn: str) -> list[str]:
    return [
        str(name)
        for (name,) in sql(
            dsn,
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = current_schema() ORDER BY 1",
        )
    ]


# --- schema and migrations -----------------------------------------------------------------


async def test_first_use_creates_the_versioned_schema_in_the_search_path_schema(
    dsn: str, registry: PostgresRegistry
) -> None:
    assert _tables(dsn) == []

    assert await registry.list_resources() == []

    assert _tables(dsn) == [
        "discovery_journal",
        "discovery_meta",
        "discovery_resources",
        "discovery_schema_version",
    ]
    assert sql(dsn, "SELECT version FROM discovery_schema_version") == [(SCHEMA_VERSION,)]
    assert revision_counter(dsn) == 0
    assert sql(postgres_dsn(), "SELECT to_regclass('public.discovery_resources')") == [(None,)]


async def test_migrate_is_idempotent(dsn: str) -> None:
    registry = PostgresRegistry(dsn)
    first = await registry.migrate()
    second = await registry.migrate()
    await registry.apply(Changes(create=(make_resource("a"),)))
    third = await registry.migrate()
    await registry.close()

    assert (first.before, first.after) == (0, SCHEMA_VERSION)
    assert (second.before, second.after) == (SCHEMA_VERSION, SCHEMA_VERSION)
    assert (third.before, third.after) == (SCHEMA_VERSION, SCHEMA_VERSION)
    assert first.schema == dsn.rsplit("search_path=", 1)[1].strip("'")
    assert _names(dsn) == ["a"]  # a later migrate keeps the data
    assert sql(dsn, "SELECT count(*) FROM discovery_schema_version") == [(1,)]


async def test_many_replicas_starting_at_once_migrate_exactly_once(dsn: str) -> None:
    registries = [PostgresRegistry(dsn) for _ in range(6)]
    try:
        results = await asyncio.gather(*(r.list_resources() for r in registries))
    finally:
        await asyncio.gather(*(r.close() for r in registries))

    assert results == [[]] * 6
    assert sql(dsn, "SELECT version FROM discovery_schema_version") == [(SCHEMA_VERSION,)]
    assert sql(dsn, "SELECT key, value FROM discovery_meta") == [("revision", 0)]


async def test_without_migrate_an_empty_schema_is_refused_until_migrated(dsn: str) -> None:
    strict = PostgresRegistry(dsn, migrate=False)
    with pytest.raises(RegistryError, match="run `discovery registry migrate`"):
        await strict.list_resources()
    assert _tables(dsn) == []  # refused without creating anything

    await PostgresRegistry(dsn).migrate()
    strict = PostgresRegistry(dsn, migrate=False)
    assert await strict.list_resources() == []
    await strict.close()


async def test_a_schema_from_a_newer_build_is_refused(dsn: str) -> None:
    await PostgresRegistry(dsn).migrate()
    sql(dsn, "UPDATE discovery_schema_version SET version = %s", (SCHEMA_VERSION + 1,))

    with pytest.raises(RegistryError, match="upgrade discovery"):
        await PostgresRegistry(dsn).list_resources()


async def test_tables_of_another_application_are_refused_and_left_alone(dsn: str) -> None:
    sql(dsn, "CREATE TABLE discovery_resources (id integer)")

    with pytest.raises(RegistryError, match="not made by discovery"):
        await PostgresRegistry(dsn).list_resources()
    assert _tables(dsn) == ["discovery_resources"]


async def test_a_search_path_schema_that_does_not_exist_is_named() -> None:
    dsn = schema_dsn(postgres_dsn(), "no_such_schema_for_discovery")
    with pytest.raises(RegistryError, match=r"search_path \(no_such_schema_for_discovery\)"):
        await PostgresRegistry(dsn).list_resources()


# --- rows ----------------------------------------------------------------------------------


async def test_documents_are_stored_as_queryable_jsonb(
    dsn: str, registry: PostgresRegistry
) -> None:
    resource = make_resource("a", full=True)
    await registry.apply(Changes(create=(resource,)))

    [(document, account)] = sql(
        dsn,
        "SELECT document, document->'metadata'->'labels'->>'account-id' FROM discovery_resources",
    )
    assert document == resource.to_dict()
    assert account == "012345678901"


@pytest.mark.parametrize(
    "document",
    ['"a string"', '{"kind": "app", "version": "v3"}', '{"kind": "db", "version": "v3"}', "[]"],
    ids=["not-an-object", "wrong-kind", "missing-fields", "a-list"],
)
async def test_a_row_that_does_not_parse_gives_a_registry_error_naming_it(
    dsn: str, registry: PostgresRegistry, document: str
) -> None:
    await registry.apply(Changes(create=(make_resource("good"),)))
    sql(
        dsn,
        "INSERT INTO discovery_resources (name, revision, document) VALUES ('broken', 99, %s)",
        (document,),
    )

    with pytest.raises(RegistryError, match=r"row 'broken' \(revision 99\)"):
        await registry.list_resources()


async def test_a_row_whose_document_has_another_name_gives_a_registry_error(
    dsn: str, registry: PostgresRegistry
) -> None:
    await registry.apply(Changes(create=(make_resource("a"),)))
    sql(dsn, "UPDATE discovery_resources SET name = 'b'")

    with pytest.raises(RegistryError, match=r"row 'b'.*named 'a'"):
        await registry.list_resources()


async def test_a_large_apply_is_one_transaction(dsn: str, registry: PostgresRegistry) -> None:
    resources = tuple(make_resource(f"r-{i:04d}") for i in range(1500))
    await registry.apply(Changes(create=resources))
    listed = await registry.list_resources()
    assert [s.resource for s in listed] == list(resources)
    assert sorted(s.revision for s in listed) == list(range(1, 1501))

    # One stale delete at the very end rolls back 1498 updates and 1 delete before it.
    updates = tuple(
        Update(before=s, after=make_resource(s.resource.name, variant=1)) for s in listed[1:-1]
    )
    stale = replace(listed[-1], revision=listed[-1].revision + 1)
    with pytest.raises(RegistryConflict, match="r-1499"):
        await registry.apply(Changes(update=updates, delete=(listed[0], stale)))
    assert await registry.list_resources() == listed
    assert revision_counter(dsn) == 1500


async def test_an_empty_apply_does_not_even_connect() -> None:
    unreachable = PostgresRegistry("host=127.0.0.1 port=1 dbname=nowhere connect_timeout=2")
    await unreachable.apply(Changes())  # no error: nothing to write, no server needed


# --- concurrency ---------------------------------------------------------------------------


def _shared() -> Changes:
    resource = make_resource("shared")
    return Changes(create=(replace(resource, labels={**resource.labels, "count": "0"}),))


async def _bump_shared(registry: PostgresRegistry, tag: str) -> int:
    """Read-modify-write the shared counter until it commits; returns the conflicts seen."""
    conflicts = 0
    while True:
        [shared] = [s for s in await registry.list_resources() if s.resource.name == "shared"]
        count = int(shared.resource.labels["count"])
        after = replace(shared.resource, labels={**shared.resource.labels, "count": str(count + 1)})
        try:
            await registry.apply(
                Changes(create=(make_resource(tag),), update=(Update(before=shared, after=after),))
            )
            return conflicts
        except RegistryConflict:
            conflicts += 1


async def test_two_registries_on_one_database_never_lose_an_update(dsn: str) -> None:
    first, second = PostgresRegistry(dsn), PostgresRegistry(dsn)
    rounds = 25
    try:
        await first.apply(_shared())
        conflicts = await asyncio.gather(
            *[_bump_shared(first, f"first-{i}") for i in range(rounds)],
            *[_bump_shared(second, f"second-{i}") for i in range(rounds)],
        )
        listed = {s.resource.name: s for s in await second.list_resources()}
    finally:
        await first.close()
        await second.close()

    assert sum(conflicts) > 0  # they really raced (a test that cannot fail is a defect)
    assert listed["shared"].resource.labels["count"] == str(2 * rounds)
    assert len(listed) == 1 + 2 * rounds
    assert revision_counter(dsn) == 1 + 2 * 2 * rounds
    assert len({s.revision for s in listed.values()}) == len(listed)


def test_concurrent_processes_never_lose_a_write(dsn: str, tmp_path: Path) -> None:
    start = tmp_path / "start"
    workers, rounds = 3, 30
    asyncio.run(_apply_and_close(dsn, _shared()))

    procs = [
        subprocess.Popen(
            [*WORKER, "writer", f"postgres:{dsn}", str(w), str(rounds), str(start)],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(workers)
    ]
    deadline = time.monotonic() + 60
    while not all((tmp_path / f"ready-{w}").exists() for w in range(workers)):
        assert time.monotonic() < deadline, "workers did not start"
        assert all(proc.poll() is None for proc in procs), "a worker died at start-up"
        time.sleep(0.01)
    start.touch()
    summaries = []
    for proc in procs:
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err
        summaries.append(json.loads(out))

    created = [name for s in summaries for name in s["created"]]
    deleted = [name for s in summaries for name in s["deleted"]]
    assert [s["errors"] for s in summaries] == [[]] * workers  # only conflicts, then retries
    assert len(created) == workers * rounds
    print("conflicts per worker (informational):", [s["conflicts"] for s in summaries])

    rows = {str(name): int(str(rev)) for name, rev in sql(dsn, _ROWS)}
    [(count,)] = sql(dsn, "SELECT document->'metadata'->'labels'->>'count' FROM " + _SHARED_ROW)
    assert count == str(workers * rounds)
    assert sorted(rows) == sorted({"shared", *created} - set(deleted))
    assert len(set(rows.values())) == len(rows)
    assert revision_counter(dsn) == 1 + 2 * workers * rounds


_ROWS = "SELECT name, revision FROM discovery_resources"
_SHARED_ROW = "discovery_resources WHERE name = 'shared'"


async def _apply_and_close(dsn: str, changes: Changes) -> None:
    registry = PostgresRegistry(dsn)
    try:
        await registry.apply(changes)
    finally:
        await registry.close()


def test_a_process_killed_mid_apply_leaves_the_registry_before_or_after() -> None:
    count = 3000
    outcomes = set()
    for delay in (0.0, 0.01, 0.03, 0.1):
        with fresh_schema() as dsn:
            proc = subprocess.Popen(
                [*WORKER, "bulk", f"postgres:{dsn}", str(count)],
                cwd=REPO_ROOT,
                stdout=subprocess.PIPE,
                text=True,
            )
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready"
            time.sleep(delay)
            proc.kill()
            proc.wait(timeout=30)

            # Taking the counter row's lock waits until the dead session's transaction has
            # ended on the server (committed or rolled back): then the count is final.
            sql(dsn, "SELECT value FROM discovery_meta FOR UPDATE")
            rows = len(_names(dsn))
            assert rows in (0, count), f"kill after {delay}s left {rows} of {count} rows"
            assert revision_counter(dsn) == rows
            outcomes.add(rows)
    # Informational only: which outcome a kill produces depends on the machine's speed.
    print(f"rows after kill: {sorted(outcomes)}")


# --- failures, each named with its fix -----------------------------------------------------


async def test_a_registry_lock_held_too_long_gives_an_error_naming_lock_timeout(
    dsn: str,
) -> None:
    registry = PostgresRegistry(dsn, lock_timeout_s=0.3)
    await registry.apply(Changes(create=(make_resource("a"),)))
    with psycopg.connect(dsn) as holder:
        holder.execute("SELECT * FROM discovery_meta FOR UPDATE")  # an open transaction
        started = time.monotonic()
        with pytest.raises(RegistryError, match="lock_timeout") as raised:
            await registry.apply(Changes(create=(make_resource("b"),)))
        assert time.monotonic() - started >= 0.25
        assert not isinstance(raised.value, RegistryConflict)
        assert isinstance(raised.value.__cause__, psycopg.errors.LockNotAvailable)
        assert "pg_stat_activity" in str(raised.value)
        # Readers are never blocked by a writer.
        assert [s.resource.name for s in await registry.list_resources()] == ["a"]
        holder.rollback()
    await registry.apply(Changes(create=(make_resource("b"),)))
    assert _names(dsn) == ["a", "b"]
    await registry.close()


async def test_an_unreachable_server_is_named_without_the_password() -> None:
    registry = PostgresRegistry(
        "host=127.0.0.1 port=1 dbname=x user=u password=s3cret", connect_timeout_s=2
    )
    with pytest.raises(RegistryError, match="cannot reach PostgreSQL") as raised:
        await registry.list_resources()
    assert "u@127.0.0.1:1/x" in str(raised.value)
    assert "s3cret" not in str(raised.value)
    assert isinstance(raised.value.__cause__, psycopg.OperationalError)


async def test_a_missing_database_is_named() -> None:
    dsn = postgres_dsn() + " dbname=discovery_no_such_database"
    with pytest.raises(RegistryError, match="database does not exist; create it"):
        await PostgresRegistry(dsn).list_resources()


def test_a_malformed_dsn_is_refused_without_echoing_it() -> None:
    with pytest.raises(RegistryError, match="not a valid connection string") as raised:
        PostgresRegistry("host=x password=s3cret bogus")
    assert "s3cret" not in str(raised.value)


async def test_a_terminated_connection_is_replaced_before_the_next_call(
    dsn: str, registry: PostgresRegistry
) -> None:
    await registry.apply(Changes(create=(make_resource("a"),)))
    sql(
        postgres_dsn(),
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE application_name = 'discovery' AND query NOT LIKE '%pg_terminate_backend%' "
        "AND pid <> pg_backend_pid() AND datname = current_database()",
    )
    # The pool checks connections before handing them out: the cycle after a server restart
    # or failover works instead of failing once.
    assert [s.resource.name for s in await registry.list_resources()] == ["a"]
    await registry.apply(Changes(create=(make_resource("b"),)))


# --- the in-memory fake agrees with PostgreSQL too ------------------------------------------


async def _equivalence(batches: list[list[Op]], dsn: str) -> None:
    memory, postgres = MemoryRegistry(), PostgresRegistry(dsn)
    try:
        for batch in batches:
            listed = await memory.list_resources()
            assert await postgres.list_resources() == listed
            changes = _changes(batch, {stored.resource.name: stored for stored in listed})
            assert await _outcome(postgres, changes) == await _outcome(memory, changes), changes
        assert await postgres.list_resources() == await memory.list_resources()
        assert revision_counter(dsn) == memory.revision
    finally:
        await postgres.close()


async def _outcome(registry: MemoryRegistry | PostgresRegistry, changes: Changes) -> str:
    try:
        await registry.apply(changes)
    except RegistryError as exc:
        return type(exc).__name__
    return "ok"


@settings(max_examples=40, deadline=None)
@given(batches=_batches)
def test_memory_and_postgres_give_the_same_results(batches: list[list[Op]]) -> None:
    with fresh_schema() as dsn:
        asyncio.run(_equivalence(batches, dsn))
