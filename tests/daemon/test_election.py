"""The `Election` alone: gained and lost events, the hold-off after a loss, an elector that
cannot start, and a swapped-in elector. Fake leadership, fake monotonic clock, no loop."""

from __future__ import annotations

import pytest

from discovery.core.config import Config
from discovery.daemon.election import HOLD_OFF_INTERVALS, Election, election_interval
from tests.daemon.inprocess import FakeLeadership, Lock, make_config


class Recorder:
    """An `ElectionEvents` subscriber that records what it heard."""

    def __init__(self, *, aborts: bool = False) -> None:
        self.events: list[str] = []
        self.aborts = aborts

    def gained(self) -> None:
        self.events.append("gained")

    def lost(self, reason: str) -> bool:
        self.events.append(f"lost: {reason}")
        return self.aborts


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def an_election(
    leadership: FakeLeadership, events: Recorder, *, config: Config | None = None
) -> tuple[Election, Clock]:
    monotonic = Clock()
    running = config or make_config(poll_interval="10s")
    election = Election(
        leadership=leadership,
        config=lambda: running,
        events=events,
        clock=lambda: 42.0,
        monotonic=monotonic,
    )
    return election, monotonic


@pytest.mark.parametrize(("poll_interval", "expected"), [("4s", 2.0), ("20s", 10.0), ("1h", 10.0)])
def test_the_election_interval_is_half_the_poll_interval_at_most_ten_seconds(
    poll_interval: str, expected: float
) -> None:
    assert election_interval(make_config(poll_interval=poll_interval)) == expected


async def test_a_free_lock_is_taken_once_and_gained_is_emitted_once() -> None:
    lock, events = Lock(), Recorder()
    leadership = FakeLeadership(lock)
    election, _ = an_election(leadership, events)
    assert election.leading is None
    assert await election.step() is True
    assert await election.step() is True  # a leader checks; no second event
    assert events.events == ["gained"]
    assert lock.holder is leadership and election.leading is True
    assert leadership.log == ["start"] and election.reaches_database


async def test_a_held_lock_makes_a_follower_with_no_event() -> None:
    lock, events = Lock(), Recorder()
    lock.holder = object()
    election, _ = an_election(FakeLeadership(lock), events)
    assert await election.step() is False
    assert election.leading is False and events.events == []


async def test_a_lost_lock_emits_lost_and_holds_off_before_trying_again() -> None:
    lock, events = Lock(), Recorder(aborts=True)
    leadership = FakeLeadership(lock)
    config = make_config(poll_interval="10s")
    election, monotonic = an_election(leadership, events, config=config)
    assert await election.step() is True

    lock.holder = object()  # another replica took it: this one's session died
    assert await election.step() is False
    assert events.events == ["gained", "lost: its leader lock is no longer held"]
    assert election.lost_at == 42.0 and election.lost_reason == "its leader lock is no longer held"

    lock.holder = None  # free again, but this replica is the suspect one: it waits
    hold_off = HOLD_OFF_INTERVALS * election_interval(config)
    monotonic.now += hold_off - 0.1
    assert await election.step() is False
    assert lock.holder is None
    monotonic.now += 0.2
    assert await election.step() is True
    assert lock.holder is leadership
    assert events.events[-1] == "gained"


async def test_an_elector_that_cannot_start_is_a_follower_until_it_can() -> None:
    lock, events = Lock(), Recorder()
    leadership = FakeLeadership(lock, down="connection refused")
    election, _ = an_election(leadership, events)
    assert await election.step() is False
    assert election.start_error == "connection refused"
    assert election.last_error == "connection refused" and not election.reaches_database

    leadership.down = ""
    assert await election.step() is True
    assert election.start_error == "" and election.last_error == ""
    assert events.events == ["gained"]


async def test_a_swapped_in_elector_starts_afresh_and_the_old_role_is_given_up() -> None:
    events = Recorder()
    old = FakeLeadership(Lock())
    election, _ = an_election(old, events)
    assert await election.step() is True

    new = FakeLeadership(Lock())
    assert election.use(new) is True  # it led: now it follows until its next step
    assert election.leading is False
    assert await election.step() is True
    assert new.log == ["start"] and events.events == ["gained", "gained"]
    assert election.use(FakeLeadership(Lock())) is True
    assert election.use(FakeLeadership(Lock())) is False  # no step since: it did not lead
