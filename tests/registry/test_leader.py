"""Leader election against the real local PostgreSQL: one leader per discovery group, losses
noticed at the next check, hand-over on release, on a killed connection and on kill -9, and
writes fenced off as soon as the lock is gone."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import suppress
from pathlib import Path

import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from discovery.core.config import Config, ConfigError, config_from_mapping
from discovery.core.model import StoredResource
from discovery.registry.base import Changes
from discovery.registry.leader import AlwaysLeader, Leadership, leader_lock_key
from discovery.registry.postgres import LeadershipLost, PostgresRegistry
from discovery.registry.postgres_conn import AdvisoryLock
from discovery.registry.postgres_leader import LeaderElectionError, PostgresLeaderElector
from discovery.registry.sqlite_leader import SQLiteLeaderLock
from discovery.wiring import open_leadership, open_registry
from tests.registry.postgres_support import fresh_schema, postgres_dsn, random_group, sql
from tests.registry.registry_support import make_resource
from tests.registry.sessions import terminate_backend

REPO_ROOT = Path(__file__).resolve().parents[2]
UNREACHABLE = "host=127.0.0.1 port=1 dbname=x user=u password=s3cret"


@pytest.fixture
def dsn() -> Iterator[str]:
    with fresh_schema() as made:
        yield made


@pytest.fixture
def group() -> str:
    return random_group()


@pytest.fixture
async def pair(dsn: str, group: str) -> AsyncIterator[tuple[PostgresLeaderElector, ...]]:
    electors = tuple(PostgresLeaderElector(dsn, discovery_group=group) for _ in range(2))
    for elector in electors:
        await elector.start()
    yield electors
    for elector in electors:
        await elector.release()


def _terminate(pid: int) -> None:
    terminate_backend(pid)


def _backend_pids(group: str) -> list[int]:
    rows = sql(
        postgres_dsn(),
        "SELECT pid FROM pg_stat_activity WHERE application_name = %s",
        (f"discovery-leader/{group}",),
    )
    return [int(str(pid)) for (pid,) in rows]


async def _acquire_within(elector: PostgresLeaderElector, seconds: float) -> float:
    """Keep trying as a follower would (every 50 ms); how long it took."""
    started = time.monotonic()
    while not await elector.try_acquire():
        assert time.monotonic() - started < seconds, f"no takeover in {seconds}s"
        await asyncio.sleep(0.05)
    return time.monotonic() - started


# --- one leader ----------------------------------------------------------------------------


async def test_two_electors_of_one_group_give_exactly_one_leader(
    pair: tuple[PostgresLeaderElector, ...],
) -> None:
    results = await asyncio.gather(*(e.try_acquire() for e in pair))

    assert sorted(results) == [False, True]
    leader, follower = pair if results[0] else pair[::-1]
    assert (leader.is_leader, follower.is_leader) == (True, False)
    assert await leader.check() is True
    assert await follower.check() is False
    for _ in range(3):  # a follower keeps trying and keeps failing, without error
        assert await follower.try_acquire() is False
        assert follower.last_error == ""
    assert await leader.try_acquire() is True  # idempotent for the leader
    assert leader.lock_key == follower.lock_key


async def test_groups_and_schemas_each_have_their_own_leader(dsn: str, group: str) -> None:
    with fresh_schema() as other_schema:
        electors = [
            PostgresLeaderElector(dsn, discovery_group=group),
            PostgresLeaderElector(dsn, discovery_group=random_group()),
            PostgresLeaderElector(other_schema, discovery_group=group),
        ]
        try:
            assert [await e.try_acquire() for e in electors] == [True, True, True]
            assert len({e.lock_key for e in electors}) == 3
        finally:
            for elector in electors:
                await elector.release()


async def test_the_lock_key_is_stable_and_is_what_pg_locks_shows(dsn: str, group: str) -> None:
    # Pinned: replicas of different versions must contend for the same lock in an upgrade.
    assert leader_lock_key("public", "prod") == leader_lock_key("public", "prod")
    assert leader_lock_key("public", "prod") == 2652869334336748429
    assert leader_lock_key("public", "prod") != leader_lock_key("staging", "prod")

    elector = PostgresLeaderElector(dsn, discovery_group=group)
    assert await elector.try_acquire()
    held = elector.held_lock()
    schema = dsn.rsplit("search_path=", 1)[1].strip("'")
    assert held is not None and held.key == leader_lock_key(schema, group) == elector.lock_key
    rows = sql(
        postgres_dsn(),
        "SELECT (classid::bigint << 32) | objid::bigint FROM pg_locks "
        "WHERE locktype = 'advisory' AND pid = %s AND objsubid = 1 AND granted",
        (held.backend_pid,),
    )
    assert rows == [(held.key,)]
    await elector.release()


# --- losing and handing over ---------------------------------------------------------------


async def test_a_killed_leader_connection_is_noticed_at_the_next_check_and_taken_over(
    pair: tuple[PostgresLeaderElector, ...],
) -> None:
    leader, follower = pair
    assert await leader.try_acquire()
    assert not await follower.try_acquire()
    held = leader.held_lock()
    assert held is not None

    _terminate(held.backend_pid)

    assert await leader.check() is False
    assert leader.is_leader is False
    assert leader.held_lock() is None
    assert "terminat" in leader.last_error or "connection" in leader.last_error
    took = await _acquire_within(follower, 5)
    print(f"takeover after the leader's connection was killed: {took:.3f}s")
    assert await follower.check()
    # The old leader reconnects as a follower: the lock is taken.
    assert await leader.try_acquire() is False
    assert leader.last_error == ""


async def test_release_hands_over(pair: tuple[PostgresLeaderElector, ...]) -> None:
    leader, follower = pair
    assert await leader.try_acquire()
    assert not await follower.try_acquire()

    await leader.release()

    assert leader.is_leader is False
    assert await follower.try_acquire() is True
    assert await leader.try_acquire() is False
    await follower.release()
    assert await leader.try_acquire() is True


async def test_a_follower_whose_idle_connection_died_still_takes_over_in_one_try(
    pair: tuple[PostgresLeaderElector, ...], group: str
) -> None:
    leader, follower = pair
    assert await leader.try_acquire()
    assert not await follower.try_acquire()
    held = leader.held_lock()
    assert held is not None
    leader_pid = held.backend_pid
    [follower_pid] = [pid for pid in _backend_pids(group) if pid != leader_pid]
    _terminate(follower_pid)  # e.g. the server restarted while the follower waited
    await leader.release()

    assert await follower.try_acquire() is True


def test_kill_9_of_the_leader_process_lets_the_other_take_over(dsn: str, group: str) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.registry.leader_worker", dsn, group],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "leader"

        async def follow() -> float:
            follower = PostgresLeaderElector(dsn, discovery_group=group)
            try:
                assert await follower.try_acquire() is False
                proc.kill()  # SIGKILL: no cleanup, no unlock; the server ends the session
                return await _acquire_within(follower, 10)
            finally:
                await follower.release()

        took = asyncio.run(follow())
        print(f"takeover after kill -9 of the leader: {took:.3f}s")
    finally:
        proc.kill()
        proc.wait(timeout=30)


class Partition:
    """A TCP relay to PostgreSQL that can stop passing bytes: a network partition on demand."""

    def __init__(self, dsn: str) -> None:
        params = conninfo_to_dict(dsn)
        self.upstream = (str(params.get("host", "127.0.0.1")), int(params.get("port", 5432)))
        self.base = dsn
        self.cut = False
        self.server: asyncio.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []

    async def __aenter__(self) -> Partition:
        self.server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    @property
    def dsn(self) -> str:
        assert self.server is not None
        port = self.server.sockets[0].getsockname()[1]
        return make_conninfo(self.base, host="127.0.0.1", port=port)

    def close(self) -> None:
        """End every relayed connection (as the OS does once the partition heals)."""
        if self.server is not None:
            self.server.close()
        for writer in self.writers:
            writer.close()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        self.writers += [writer, up_writer]

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with suppress(OSError):
                while data := await src.read(65536):
                    if not self.cut:
                        dst.write(data)
                        await dst.drain()
            if not self.cut:  # across a partition, not even the end of a stream gets through
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


async def test_a_leader_cut_off_by_the_network_steps_down_at_its_next_check(
    dsn: str, group: str
) -> None:
    async with Partition(dsn) as partition:
        leader = PostgresLeaderElector(partition.dsn, discovery_group=group, check_timeout_s=0.5)
        assert await leader.try_acquire()
        partition.cut = True

        started = time.monotonic()
        assert await leader.check() is False  # no answer is not a yes: step down
        assert time.monotonic() - started < 3
        assert leader.is_leader is False
        assert "no answer within 0.5s" in leader.last_error

        # The server still holds the lock for the silent session until the connection ends
        # (TCP keepalives end it in a real partition; here the relay closes it).
        follower = PostgresLeaderElector(dsn, discovery_group=group)
        assert await follower.try_acquire() is False
        partition.close()
        await _acquire_within(follower, 5)
        await follower.release()
        await leader.release()


# --- fencing: a leader that lost its lock writes nothing -----------------------------------


async def test_a_fenced_registry_stops_writing_the_moment_the_lock_is_gone(
    pair: tuple[PostgresLeaderElector, ...], dsn: str
) -> None:
    leader, follower = pair
    assert await leader.try_acquire()
    registry = PostgresRegistry(dsn, fence=leader.held_lock)
    try:
        await registry.apply(Changes(create=(make_resource("a"),)))
        held = leader.held_lock()
        assert held is not None

        _terminate(held.backend_pid)
        # Not checked yet: the elector still believes it leads, and the cycle goes on...
        assert leader.is_leader
        with pytest.raises(LeadershipLost, match=f"pid {held.backend_pid}"):
            await registry.apply(Changes(create=(make_resource("b"),)))
        # ...but the apply was fenced off inside its transaction: nothing written.
        assert [s.resource.name for s in await registry.list_resources()] == ["a"]

        await _acquire_within(follower, 5)
        fenced_follower = PostgresRegistry(dsn, fence=follower.held_lock)
        await fenced_follower.apply(Changes(create=(make_resource("c"),)))
        await fenced_follower.close()
        assert await leader.check() is False
        with pytest.raises(LeadershipLost, match="not the leader"):
            await registry.apply(Changes(create=(make_resource("d"),)))
        names = [s.resource.name for s in await registry.list_resources()]
        assert names == ["a", "c"]
    finally:
        await registry.close()


async def test_a_fence_naming_a_lock_nobody_holds_refuses_the_apply(dsn: str) -> None:
    registry = PostgresRegistry(dsn, fence=lambda: AdvisoryLock(backend_pid=1, key=42))
    with pytest.raises(LeadershipLost):
        await registry.apply(Changes(create=(make_resource("a"),)))
    assert await registry.list_resources() == []
    # A fence never blocks reads or an empty apply.
    await registry.apply(Changes())
    await registry.close()


async def test_a_lost_leadership_is_a_conflict_not_a_crash(dsn: str) -> None:
    # Callers that retry conflicts next cycle need no new except clause for it.
    from discovery.registry.base import RegistryConflict

    registry = PostgresRegistry(dsn, fence=lambda: None)
    with pytest.raises(RegistryConflict):
        await registry.apply(
            Changes(delete=(StoredResource(resource=make_resource("x"), revision=1),))
        )
    await registry.close()


# --- failures --------------------------------------------------------------------------------


async def test_an_unreachable_database_is_an_error_at_start_and_no_leadership_after() -> None:
    elector = PostgresLeaderElector(UNREACHABLE, discovery_group="g", connect_timeout_s=2)

    with pytest.raises(LeaderElectionError, match="cannot reach PostgreSQL") as raised:
        await elector.start()
    assert "s3cret" not in str(raised.value)

    assert await elector.try_acquire() is False  # a running daemon just stays a follower
    assert "cannot reach PostgreSQL" in elector.last_error
    assert await elector.check() is False
    assert elector.is_leader is False
    await elector.release()


# --- choosing an implementation ------------------------------------------------------------


CONFIG_PATH = Path("discovery.yaml")


def _config(registry: dict[str, str]) -> Config:
    matcher = {"types": ["rdsproxy"], "regions": ["us-east-1"]}
    return config_from_mapping({"discovery_group": "prod", "aws": [matcher], "registry": registry})


async def test_always_leader_is_always_the_leader() -> None:
    leadership: Leadership = AlwaysLeader()
    await leadership.start()
    assert leadership.is_leader
    assert await leadership.try_acquire()
    assert await leadership.check()
    await leadership.release()


async def test_a_lock_file_next_to_the_registry_for_sqlite(tmp_path: Path) -> None:
    leadership = open_leadership(
        _config({"backend": "sqlite", "path": "r.db"}), tmp_path / "discovery.yaml", environ={}
    )
    assert isinstance(leadership, SQLiteLeaderLock)
    assert leadership.path == tmp_path / "r.db.lock"
    assert not leadership.is_leader  # nothing is opened or locked until the daemon starts it
    assert not leadership.path.exists()
    await leadership.start()
    assert await leadership.try_acquire() and await leadership.check()
    await leadership.release()


def test_a_postgres_elector_from_the_environment() -> None:
    config = _config({"backend": "postgres", "dsn_env": "MY_DSN"})
    elector = open_leadership(config, CONFIG_PATH, environ={"MY_DSN": "host=db dbname=d user=u"})
    assert isinstance(elector, PostgresLeaderElector)
    assert elector.discovery_group == "prod"
    assert "u@db/d" in repr(elector)


def test_postgres_without_a_dsn_is_a_config_error_naming_registry_dsn() -> None:
    with pytest.raises(ConfigError, match=r"registry\.dsn.*DISCOVERY_REGISTRY_DSN"):
        open_leadership(_config({"backend": "postgres"}), CONFIG_PATH, environ={})


async def test_open_registry_fences_a_postgres_registry_on_the_daemons_elector(
    dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Group "prod" in a random schema: the lock key includes the schema, so no other run meets it.
    monkeypatch.setenv("DISCOVERY_REGISTRY_DSN", dsn)
    config = _config({"backend": "postgres"})
    elector = open_leadership(config, CONFIG_PATH, environ={"DISCOVERY_REGISTRY_DSN": dsn})
    registry = open_registry(config, tmp_path / "discovery.yaml", leadership=elector)
    try:
        with pytest.raises(LeadershipLost):  # not leader yet: nothing may be written
            await registry.apply(Changes(create=(make_resource("a"),)))
        assert await elector.try_acquire()
        await registry.apply(Changes(create=(make_resource("a"),)))
        assert [s.resource.name for s in await registry.list_resources()] == ["a"]
    finally:
        await registry.close()
        await elector.release()
