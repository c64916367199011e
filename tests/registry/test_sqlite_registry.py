"""What only the SQLite backend has: a file, other processes, and SQLite's failure modes."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from discovery.core.model import StoredResource
from discovery.registry.base import Changes, RegistryConflict, RegistryError, Update
from discovery.registry.sqlite import APPLICATION_ID, SCHEMA_VERSION, SQLiteRegistry
from tests.registry.registry_support import make_resource, sqlite_revision_counter

# The worker runs as `python -m tests.registry.registry_worker` from the repository root.
REPO_ROOT = Path(__file__).resolve().parents[2]
WORKER = [sys.executable, "-m", "tests.registry.registry_worker"]


def _sql(path: Path, query: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        return conn.execute(query).fetchall()
    finally:
        conn.close()


def _names(path: Path) -> list[str]:
    return [str(name) for (name,) in _sql(path, "SELECT name FROM resources ORDER BY name")]


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "registry.db"


# --- the file ------------------------------------------------------------------------------


async def test_first_use_creates_a_wal_file_with_a_versioned_schema(path: Path) -> None:
    assert await SQLiteRegistry(path).list_resources() == []

    assert path.is_file()
    assert _sql(path, "PRAGMA journal_mode") == [("wal",)]
    assert _sql(path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    assert _sql(path, "PRAGMA application_id") == [(APPLICATION_ID,)]
    assert _sql(path, "PRAGMA integrity_check") == [("ok",)]


async def test_many_instances_can_create_the_same_new_file_at_once(path: Path) -> None:
    registries = [SQLiteRegistry(path) for _ in range(8)]

    results = await asyncio.gather(*(registry.list_resources() for registry in registries))

    assert results == [[]] * 8
    assert _sql(path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    assert sqlite_revision_counter(path) == 0  # the schema was created exactly once


async def test_a_second_instance_sees_what_the_first_wrote(path: Path) -> None:
    first = SQLiteRegistry(path)
    await first.apply(Changes(create=(make_resource("a", full=True), make_resource("b"))))
    written = await first.list_resources()
    await first.close()

    assert await SQLiteRegistry(str(path)).list_resources() == written


async def test_documents_are_stored_as_compact_sorted_json(path: Path) -> None:
    resource = make_resource("a", full=True)
    await SQLiteRegistry(path).apply(Changes(create=(resource,)))

    [(document,)] = _sql(path, "SELECT document FROM resources")
    assert document == json.dumps(
        resource.to_dict(), separators=(",", ":"), sort_keys=True, ensure_ascii=False
    )


async def test_an_empty_apply_does_not_touch_the_file(path: Path) -> None:
    registry = SQLiteRegistry(path)
    await registry.apply(Changes())
    assert not path.exists()

    await registry.apply(Changes(create=(make_resource("a"),)))
    probe = sqlite3.connect(path, isolation_level=None)
    try:
        # data_version moves whenever another connection commits to the file.
        before = probe.execute("PRAGMA data_version").fetchone()
        await registry.apply(Changes())
        assert probe.execute("PRAGMA data_version").fetchone() == before
        await registry.apply(Changes(create=(make_resource("b"),)))
        assert probe.execute("PRAGMA data_version").fetchone() != before  # the probe works
    finally:
        probe.close()


# --- concurrency ---------------------------------------------------------------------------


async def _bump_shared(registry: SQLiteRegistry, tag: str) -> int:
    """Read-modify-write the shared counter until it commits; returns the conflicts seen."""
    conflicts = 0
    while True:
        [shared] = [s for s in await registry.list_resources() if s.resource.name == "shared"]
        count = int(shared.resource.labels["count"])
        after = replace(shared.resource, labels={**shared.resource.labels, "count": str(count + 1)})
        try:
            await registry.apply(
                Changes(
                    create=(make_resource(tag),),
                    update=(Update(before=shared, after=after),),
                )
            )
            return conflicts
        except RegistryConflict:
            conflicts += 1


def _shared() -> Changes:
    resource = make_resource("shared")
    return Changes(create=(replace(resource, labels={**resource.labels, "count": "0"}),))


async def test_two_instances_in_one_process_never_lose_a_write(path: Path) -> None:
    first, second = SQLiteRegistry(path), SQLiteRegistry(path)
    await first.apply(_shared())

    await asyncio.gather(
        *[_bump_shared(first, f"first-{i}") for i in range(10)],
        *[_bump_shared(second, f"second-{i}") for i in range(10)],
    )

    listed = {s.resource.name: s for s in await first.list_resources()}
    assert listed["shared"].resource.labels["count"] == "20"
    assert len(listed) == 21
    assert sqlite_revision_counter(path) == 1 + 2 * 20


def test_concurrent_processes_never_lose_a_write_or_corrupt_the_file(tmp_path: Path) -> None:
    path = tmp_path / "registry.db"
    start = tmp_path / "start"
    workers, rounds = 3, 40
    asyncio.run(SQLiteRegistry(path).apply(_shared()))

    procs = [
        subprocess.Popen(
            [*WORKER, "writer", str(path), str(w), str(rounds), str(start)],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(workers)
    ]
    # Start all workers together once all have started up, so that their applies overlap.
    deadline = time.monotonic() + 60
    while not all((tmp_path / f"ready-{w}").exists() for w in range(workers)):
        assert time.monotonic() < deadline, "workers did not start"
        assert all(proc.poll() is None for proc in procs), "a worker died at start-up"
        time.sleep(0.01)
    start.touch()
    summaries = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        summaries.append(json.loads(out))

    created = [name for s in summaries for name in s["created"]]
    deleted = [name for s in summaries for name in s["deleted"]]
    for summary in summaries:
        # Failures may only be conflicts (retried) or a lock timeout, never corruption.
        assert all("locked" in error for error in summary["errors"]), summary["errors"]
    assert len(created) == workers * rounds
    print("conflicts per worker (informational):", [s["conflicts"] for s in summaries])

    assert _sql(path, "PRAGMA integrity_check") == [("ok",)]
    registry = asyncio.run(_list(path))
    # No lost write: every committed bump of the shared counter is there, as are all creates
    # and deletes that were reported as committed.
    assert registry["shared"].resource.labels["count"] == str(workers * rounds)
    assert sorted(registry) == sorted({"shared", *created} - set(deleted))
    revisions = [stored.revision for stored in registry.values()]
    assert len(set(revisions)) == len(revisions)
    # Each committed apply took exactly two revisions (one create, one update); rolled-back
    # applies took none.
    assert sqlite_revision_counter(path) == 1 + 2 * workers * rounds


async def _list(path: Path) -> dict[str, StoredResource]:
    return {s.resource.name: s for s in await SQLiteRegistry(path).list_resources()}


def test_a_process_killed_mid_apply_leaves_the_registry_before_or_after(
    tmp_path: Path,
) -> None:
    count = 2000
    outcomes = set()
    for attempt, delay in enumerate((0.0, 0.005, 0.01, 0.02, 0.04, 0.08)):
        path = tmp_path / f"crash-{attempt}.db"
        proc = subprocess.Popen(
            [*WORKER, "bulk", str(path), str(count)],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(delay)
        proc.kill()
        proc.wait(timeout=30)

        rows = len(_names(path))
        assert rows in (0, count), f"kill after {delay}s left {rows} of {count} rows"
        assert _sql(path, "PRAGMA integrity_check") == [("ok",)]
        outcomes.add(rows)
    # Informational only: which outcome a kill produces depends on the machine's speed.
    print(f"rows after kill: {sorted(outcomes)}")


# --- failures, each named with its fix -----------------------------------------------------


async def test_a_locked_database_gives_a_registry_error_naming_the_lock(path: Path) -> None:
    registry = SQLiteRegistry(path, busy_timeout_s=0.2)
    await registry.apply(Changes(create=(make_resource("a"),)))

    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        started = time.monotonic()
        with pytest.raises(RegistryError, match="locked") as raised:
            await registry.apply(Changes(create=(make_resource("b"),)))
        assert time.monotonic() - started >= 0.15  # it waited for the busy timeout first
        assert not isinstance(raised.value, RegistryConflict)
        assert isinstance(raised.value.__cause__, sqlite3.OperationalError)
        assert str(path) in str(raised.value)
        assert "busy timeout" in str(raised.value)
        # WAL: a writer holding the lock does not block readers.
        assert [s.resource.name for s in await registry.list_resources()] == ["a"]
    finally:
        holder.execute("ROLLBACK")
        holder.close()

    await registry.apply(Changes(create=(make_resource("b"),)))
    assert _names(path) == ["a", "b"]


async def test_a_file_that_is_not_a_database_gives_a_registry_error(path: Path) -> None:
    junk = b"this is a YAML config, not a database\n" * 200
    path.write_bytes(junk)

    registry = SQLiteRegistry(path)
    with pytest.raises(RegistryError, match="not an SQLite database") as raised:
        await registry.list_resources()
    assert str(path) in str(raised.value)
    assert isinstance(raised.value.__cause__, sqlite3.DatabaseError)
    with pytest.raises(RegistryError, match="not an SQLite database"):
        await registry.apply(Changes(create=(make_resource("a"),)))
    assert path.read_bytes() == junk


async def test_another_applications_database_is_refused_and_left_alone(path: Path) -> None:
    _sql(path, "CREATE TABLE users (id INTEGER PRIMARY KEY)")

    with pytest.raises(RegistryError, match="another application"):
        await SQLiteRegistry(path).list_resources()
    assert _sql(path, "SELECT name FROM sqlite_schema") == [("users",)]


async def test_a_schema_from_a_newer_build_is_refused(path: Path) -> None:
    await SQLiteRegistry(path).apply(Changes(create=(make_resource("a"),)))
    _sql(path, f"PRAGMA user_version = {SCHEMA_VERSION + 1}")

    with pytest.raises(RegistryError, match="upgrade discovery"):
        await SQLiteRegistry(path).list_resources()


@pytest.mark.parametrize("how", ["deleted", "moved-aside"])
async def test_a_deleted_or_moved_file_gets_its_schema_again_on_the_next_call(
    path: Path, how: str
) -> None:
    """Issue 12, hole 8: the schema was known ready for the old file; the next call on the same
    instance sets it up on the new one (it used to fail with `no such table` until a restart)."""
    registry = SQLiteRegistry(path)
    await registry.apply(Changes(create=(make_resource("a"),)))
    if how == "deleted":
        path.unlink()
    else:
        path.rename(path.with_name("registry.db.aside"))
    assert await registry.list_resources() == []
    await registry.apply(Changes(create=(make_resource("b"),)))
    assert _names(path) == ["b"]
    assert _sql(path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]


async def test_a_file_replaced_by_another_registry_is_read_as_that_registry(path: Path) -> None:
    registry = SQLiteRegistry(path)
    await registry.apply(Changes(create=(make_resource("a"),)))
    restored = path.with_name("restored.db")
    await SQLiteRegistry(restored).apply(Changes(create=(make_resource("r"),)))
    restored.replace(path)  # e.g. a backup put back while the daemon runs
    assert [s.resource.name for s in await registry.list_resources()] == ["r"]


async def test_a_registry_whose_tables_are_gone_says_the_file_was_replaced(path: Path) -> None:
    """What a call sees when the file changed between its schema check and its statement (here
    the tables dropped behind a current version, which the check cannot see): an error naming
    that, not a bare `no such table`."""
    registry = SQLiteRegistry(path)
    await registry.list_resources()
    _sql(path, "DROP TABLE resources")
    with pytest.raises(RegistryError, match="deleted or replaced") as raised:
        await registry.list_resources()
    assert "no such table" in str(raised.value) and "move it aside" in str(raised.value)


async def test_a_missing_directory_gives_a_registry_error(tmp_path: Path) -> None:
    path = tmp_path / "no-such-dir" / "registry.db"
    with pytest.raises(RegistryError, match="directory exists") as raised:
        await SQLiteRegistry(path).list_resources()
    assert str(path) in str(raised.value)


@pytest.mark.parametrize(
    "document",
    ["{not json", '{"kind": "app", "version": "v3"}', '{"kind": "db", "version": "v3"}', "[]"],
    ids=["not-json", "wrong-kind", "missing-fields", "not-an-object"],
)
async def test_a_row_that_does_not_parse_gives_a_registry_error_naming_it(
    path: Path, document: str
) -> None:
    registry = SQLiteRegistry(path)
    await registry.apply(Changes(create=(make_resource("good"),)))
    _sql(
        path,
        "INSERT INTO resources (name, revision, document, updated_at) "
        f"VALUES ('broken', 99, '{document}', 'now')",
    )

    with pytest.raises(RegistryError, match=r"row 'broken' \(revision 99\)"):
        await registry.list_resources()


async def test_a_row_whose_document_has_another_name_gives_a_registry_error(path: Path) -> None:
    registry = SQLiteRegistry(path)
    await registry.apply(Changes(create=(make_resource("a"),)))
    _sql(path, "UPDATE resources SET name = 'b'")

    with pytest.raises(RegistryError, match=r"row 'b'.*named 'a'"):
        await registry.list_resources()


# --- read-only files ----------------------------------------------------------------------


@pytest.fixture
def world_readable_dir() -> Iterator[Path]:
    # Not tmp_path: the unprivileged child below must be able to reach it.
    directory = Path(tempfile.mkdtemp(prefix="registry-ro-"))
    directory.chmod(0o755)
    try:
        yield directory
    finally:
        directory.chmod(0o755)
        shutil.rmtree(directory)


def _apply_without_privileges(path: Path, queue: multiprocessing.Queue[tuple[str, str]]) -> None:
    """Runs in a forked child: root ignores file modes, so drop to `nobody` first."""
    if os.geteuid() == 0:
        os.setgroups([])
        os.setgid(65534)
        os.setuid(65534)
    registry = SQLiteRegistry(path, busy_timeout_s=1)
    try:
        asyncio.run(registry.apply(Changes(create=(make_resource("b"),))))
    except Exception as exc:  # the parent checks the type
        queue.put((type(exc).__name__, str(exc)))
    else:
        queue.put(("no error", ""))


@pytest.mark.parametrize("directory_writable", [True, False], ids=["dir-rw", "dir-ro"])
def test_a_read_only_file_gives_a_registry_error(
    world_readable_dir: Path, directory_writable: bool
) -> None:
    path = world_readable_dir / "registry.db"
    asyncio.run(SQLiteRegistry(path).apply(Changes(create=(make_resource("a"),))))
    path.chmod(0o444)
    world_readable_dir.chmod(0o777 if directory_writable else 0o555)

    context = multiprocessing.get_context("fork")
    queue: multiprocessing.Queue[tuple[str, str]] = context.Queue()
    child = context.Process(target=_apply_without_privileges, args=(path, queue))
    child.start()
    kind, message = queue.get(timeout=30)
    child.join(timeout=30)

    assert kind == "RegistryError", message
    assert "read-only" in message
    assert str(path) in message
    assert _names(path) == ["a"]
