"""Several `discovery run` replicas sharing one real PostgreSQL registry (real processes, the
emulator over HTTP): exactly one leader, the others ready followers; kill -9 of the leader, or
its connection terminated, and a follower takes over within one poll interval; the registry
ends exactly in step with the fleet, and a replica that lost its lock writes nothing.

PostgreSQL comes from tests/registry/postgres_support.py: these tests are skipped only when no
server can be found or started, saying what was tried.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from discovery.emulator import EmulatorThread
from tests.daemon.conftest import ACCOUNT_A, ACCOUNT_B, base_config
from tests.harness.daemon import DaemonProcess
from tests.harness.fleet import fleet_names, proxy, remove_proxy, resource_name
from tests.harness.wait import wait_until
from tests.registry.postgres_support import fresh_schema, random_group, sql
from tests.registry.sessions import lock_holders, terminate_backend

Daemons = Callable[..., DaemonProcess]
# A follower tries every min(poll_interval / 2, 10 s) = 2 s: a takeover within one poll
# interval leaves it one missed try of slack.
POLL_S = 4.0
STEP_S = POLL_S / 2
# Every DescribeDBProxies answers this late while it is set: a cycle is then surely mid-fetch.
SLOW_FETCH = {"operation": "DescribeDBProxies", "code": "Timeout", "delay_seconds": 3}


@pytest.fixture
def dsn() -> Iterator[str]:
    with fresh_schema() as made:
        yield made


@pytest.fixture
def group() -> str:
    # Advisory locks are per database: a group of its own keeps other runs' electors away.
    return random_group()


def start_replicas(daemons: Daemons, dsn: str, group: str, count: int = 2) -> list[DaemonProcess]:
    config = base_config(
        discovery_group=group, poll_interval=f"{POLL_S:g}s", registry={"backend": "postgres"}
    )
    return [daemons(config, env={"DISCOVERY_REGISTRY_DSN": dsn}) for _ in range(count)]


def registry_documents(dsn: str) -> dict[str, dict[str, Any]]:
    rows = sql(dsn, "SELECT name, document FROM discovery_resources ORDER BY name")
    return {str(name): dict(document) for name, document in rows}  # type: ignore[call-overload]


def assert_in_step(dsn: str, fleet: dict[str, Any], group: str) -> dict[str, dict[str, Any]]:
    """The registry holds exactly the fleet's resources: none missing, none extra, none twice."""
    docs = registry_documents(dsn)
    expected = fleet_names(fleet)
    assert not expected - set(docs), f"lost: {sorted(expected - set(docs))}"
    assert not set(docs) - expected, f"extra: {sorted(set(docs) - expected)}"
    identities = [
        (
            d["spec"]["aws"]["account_id"],
            d["spec"]["aws"]["region"],
            d["spec"]["aws"]["rdsproxy"]["name"],
            d["spec"]["aws"]["rdsproxy"].get("custom_endpoint_name", ""),
        )
        for d in docs.values()
    ]
    assert len(set(identities)) == len(identities) == len(expected), "a proxy registered twice"
    for doc in docs.values():
        labels = doc["metadata"]["labels"]
        assert labels["teleport.internal/discovery-group-name"] == group
    return docs


def in_step(dsn: str, fleet: dict[str, Any]) -> bool:
    return set(registry_documents(dsn)) == fleet_names(fleet)


def leader_value(daemon: DaemonProcess) -> float:
    daemon.assert_running()
    return daemon.scrape().value("rdsproxy_discovery_leader")


def the_leader(replicas: list[DaemonProcess]) -> tuple[DaemonProcess, list[DaemonProcess]]:
    """(leader, followers), checked on every replica's metrics and /status."""
    leaders = [d for d in replicas if leader_value(d) == 1]
    assert len(leaders) == 1, f"{len(leaders)} leaders"
    [leader] = leaders
    followers = [d for d in replicas if d is not leader]
    assert leader.status()["role"] == "leader"
    assert all(d.status()["role"] == "follower" for d in followers)
    return leader, followers


def wait_for_one_leader(replicas: list[DaemonProcess]) -> tuple[DaemonProcess, list[DaemonProcess]]:
    wait_until(
        lambda: sum(leader_value(d) for d in replicas) == 1,
        timeout=30,
        what="exactly one leader",
    )
    return the_leader(replicas)


def wait_for_takeover(follower: DaemonProcess, since: float) -> float:
    """Seconds from `since` until `follower` reports itself leader."""
    wait_until(lambda: leader_value(follower) == 1, timeout=30, what="the follower to take over")
    return time.monotonic() - since


def cycles_total(daemon: DaemonProcess) -> dict[str, float]:
    metrics = daemon.scrape()
    return {
        result: metrics.value("rdsproxy_discovery_cycles_total", result=result)
        for result in ("ok", "partial", "error", "fenced")
    }


def applied(daemon: DaemonProcess) -> dict[str, float]:
    metrics = daemon.scrape()
    return {
        action: metrics.value("rdsproxy_discovery_changes_applied_total", action=action)
        for action in ("create", "update", "delete")
    }


def change_the_fleet(emulator: EmulatorThread, fleet: dict[str, Any]) -> None:
    """One proxy added, one removed, one retagged: 2 creates, 2 deletes, 2 updates (with the
    proxies' custom endpoints)."""
    fleet["accounts"][0]["regions"]["us-east-1"]["proxies"].append(proxy("a-east-3"))
    remove_proxy(fleet, ACCOUNT_B, "eu-west-1", "b-west-2")
    fleet["accounts"][0]["regions"]["eu-west-1"]["proxies"][0]["tags"] = {"env": "staging"}
    emulator.set_fleet(fleet)


def assert_changed_fleet_registered(docs: dict[str, dict[str, Any]]) -> None:
    retagged = docs[resource_name("a-west-1", "eu-west-1", ACCOUNT_A)]
    assert retagged["metadata"]["labels"]["env"] == "staging"
    assert resource_name("a-east-3", "us-east-1", ACCOUNT_A) in docs


def wait_mid_fetch(daemon: DaemonProcess) -> None:
    """Wait for a cycle that started after SLOW_FETCH was set: it is stuck in its fetch."""
    before = daemon.status()["cycles"]["running"]

    def started() -> bool:
        daemon.assert_running()
        running = daemon.status()["cycles"]["running"]
        return running is not None and running != before

    wait_until(started, timeout=POLL_S * 3 + 10, what="a cycle to start its (slow) fetch")


# --- one leader ---------------------------------------------------------------------------


def test_two_replicas_on_one_database_elect_exactly_one_leader_and_hand_over_on_sigterm(
    daemons: Daemons, fleet: dict[str, Any], dsn: str, group: str
) -> None:
    replicas = start_replicas(daemons, dsn, group)
    for replica in replicas:
        replica.wait_ready()  # the follower too: its elector is up, the registry answers
    leader, [follower] = wait_for_one_leader(replicas)
    wait_until(lambda: in_step(dsn, fleet), timeout=30, what="the registry to be in step")
    assert_in_step(dsn, fleet, group)

    # Over two poll intervals: still exactly one leader, and only it runs cycles.
    deadline = time.monotonic() + 2 * POLL_S
    while time.monotonic() < deadline:
        assert the_leader(replicas) == (leader, [follower])
        time.sleep(0.5)
    assert len(lock_holders(group)) == 1
    assert sum(cycles_total(follower).values()) == 0
    assert cycles_total(leader)["ok"] >= 2
    follower_status = follower.status()
    assert follower_status["cycles"]["completed"] == 0 and follower_status["last_cycle"] is None
    assert follower_status["ready"] is True
    code, body, _ = follower.get("/readyz")
    assert code == 200 and "following" in body, body
    assert follower.scrape().value("rdsproxy_discovery_registry_up") == 1
    assert (
        follower.scrape().value("rdsproxy_discovery_owned_resources") == 0
    )  # max() is the leader's
    assert leader.scrape().value("rdsproxy_discovery_owned_resources") == len(fleet_names(fleet))

    # SIGTERM: the leader releases its lock on the way out; the follower takes over at its
    # next try, and its first cycle finds nothing to do.
    leader.send(signal.SIGTERM)
    stopped = time.monotonic()
    assert leader.wait_exit(timeout=15) == 0, leader.log()[-4000:]
    assert "released leadership" in leader.log()
    took = wait_for_takeover(follower, stopped)
    print(f"takeover after SIGTERM of the leader: {took:.2f}s")
    assert took <= POLL_S
    follower.wait_cycles(1, timeout=POLL_S * 3 + 10)
    assert applied(follower) == {"create": 0, "update": 0, "delete": 0}
    assert_in_step(dsn, fleet, group)
    assert follower.get("/readyz")[0] == 200


# --- the leader dies ----------------------------------------------------------------------


def test_kill_9_of_the_leader_mid_cycle_a_follower_takes_over_and_ends_in_step(
    daemons: Daemons, emulator: EmulatorThread, fleet: dict[str, Any], dsn: str, group: str
) -> None:
    replicas = start_replicas(daemons, dsn, group)
    for replica in replicas:
        replica.wait_ready()
    leader, [follower] = wait_for_one_leader(replicas)
    wait_until(lambda: in_step(dsn, fleet), timeout=30, what="the registry to be in step")

    emulator.set_faults([SLOW_FETCH])
    change_the_fleet(emulator, fleet)
    wait_mid_fetch(leader)
    leader.kill()  # kill -9 in the middle of a cycle that would have applied the change
    killed = time.monotonic()

    took = wait_for_takeover(follower, killed)
    print(f"takeover after kill -9 of the leader: {took:.2f}s")
    assert took <= POLL_S, f"took {took:.2f}s, more than one poll interval ({POLL_S:g}s)"
    assert lock_holders(group) and len(lock_holders(group)) == 1
    emulator.set_faults([])

    wait_until(lambda: in_step(dsn, fleet), timeout=POLL_S * 4 + 20, what="the registry in step")
    docs = assert_in_step(dsn, fleet, group)
    assert_changed_fleet_registered(docs)
    # The new leader wrote exactly the change, once: nothing twice, nothing lost.
    assert applied(follower) == {"create": 2, "update": 2, "delete": 2}
    follower.wait_cycles(1, timeout=POLL_S * 3 + 10)
    assert applied(follower) == {"create": 2, "update": 2, "delete": 2}  # then steady
    status = follower.status()
    assert status["role"] == "leader" and status["ready"] is True
    assert status["last_cycle"]["result"] == "ok"


def test_a_leader_whose_connection_is_terminated_stops_writing_and_a_follower_takes_over(
    daemons: Daemons, emulator: EmulatorThread, fleet: dict[str, Any], dsn: str, group: str
) -> None:
    replicas = start_replicas(daemons, dsn, group)
    for replica in replicas:
        replica.wait_ready()
    leader, [follower] = wait_for_one_leader(replicas)
    wait_until(lambda: in_step(dsn, fleet), timeout=30, what="the registry to be in step")

    emulator.set_faults([SLOW_FETCH])
    change_the_fleet(emulator, fleet)
    wait_mid_fetch(leader)
    written_before = applied(leader)
    [pid] = lock_holders(group)
    terminate_backend(pid)  # as an operator, a failover or a network cut would
    terminated = time.monotonic()

    # The leader notices at its next election step and stops its cycle before it writes.
    wait_until(
        lambda: leader_value(leader) == 0, timeout=STEP_S * 2 + 5, what="the leader to step down"
    )
    stepped_down = time.monotonic() - terminated
    print(f"leader stepped down {stepped_down:.2f}s after its connection was terminated")
    assert stepped_down <= POLL_S
    wait_until(
        lambda: cycles_total(leader)["fenced"] == 1, timeout=10, what="its cycle to be fenced"
    )
    took = wait_for_takeover(follower, terminated)
    print(f"takeover after pg_terminate_backend of the leader's session: {took:.2f}s")
    assert took <= POLL_S
    emulator.set_faults([])

    wait_until(lambda: in_step(dsn, fleet), timeout=POLL_S * 4 + 20, what="the registry in step")
    docs = assert_in_step(dsn, fleet, group)
    assert_changed_fleet_registered(docs)
    assert applied(follower) == {"create": 2, "update": 2, "delete": 2}
    follower.wait_cycles(1, timeout=POLL_S * 3 + 10)

    # The old leader wrote nothing after it lost the lock, and now follows.
    assert applied(leader) == written_before
    assert the_leader(replicas) == (follower, [leader])
    status = leader.status()
    assert status["last_cycle"]["result"] == "fenced"
    assert status["leadership"]["last_lost_reason"]
    # A ready follower again (at its next election step): its database is fine.
    wait_until(lambda: leader.get("/readyz")[0] == 200, timeout=STEP_S * 2 + 5, what="readiness")
    log = leader.log()
    assert "no longer the leader of discovery group" in log
    assert "cycle fenced: " in log
    assert "Traceback" not in log


# --- no database ----------------------------------------------------------------------------


def test_a_replica_that_cannot_reach_its_database_stays_up_unready_and_says_why(
    daemons: Daemons, fleet: dict[str, Any], group: str
) -> None:
    # Nothing listens on port 1: every connection is refused at once. No PostgreSQL needed.
    unreachable = "host=127.0.0.1 port=1 dbname=discovery user=discovery password=s3cret-pw"
    [replica] = start_replicas(daemons, unreachable, group, count=1)

    def says_why() -> str | None:
        replica.assert_running()
        code, body, _ = replica.get("/readyz")
        return body if code == 503 and "cannot reach PostgreSQL" in body else None

    body = wait_until(says_why, timeout=30, what="/readyz to say why it is not ready")
    assert "127.0.0.1:1" in body and "s3cret-pw" not in body
    assert replica.get("/healthz")[0] == 200  # alive: it retries, it does not exit
    status = replica.status()
    assert status["role"] == "follower" and status["ready"] is False
    assert "cannot reach PostgreSQL" in status["leadership"]["last_error"]
    metrics = replica.scrape()
    assert metrics.value("rdsproxy_discovery_leader") == 0
    assert sum(cycles_total(replica).values()) == 0
    replica.send(signal.SIGTERM)
    assert replica.wait_exit(timeout=15) == 0
    log = replica.log()
    assert log.count("leader election cannot start") == 1  # said once, not at every retry
    assert "s3cret-pw" not in log and "Traceback" not in log
