"""The delete guard over `safety.delete_window` (issue 12, hole 3): the pure rule, how the
window's deletes are counted from journal entries, and the plan that uses both."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from discovery.core.config import ConfigError, config_from_mapping
from discovery.core.guard import guard_trips
from discovery.core.journal import (
    JOURNAL_RETENTION,
    JournalEntry,
    format_at,
    journal_entry,
    parse_at,
    prune_before,
    window_deletes,
)
from discovery.core.model import Changes, JournalStamp, Update
from discovery.core.plan import Plan, make_plan
from tests.core.test_plan import GROUP, make_resource, ok_scope, stored

T0 = datetime(2026, 12, 2, 6, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("deletes", "touchable", "window", "fraction", "tripped"),
    [
        # With nothing in the window it is the one-cycle rule.
        pytest.param(11, 40, 0, 0.3, False, id="11-of-40-alone-passes"),
        pytest.param(13, 40, 0, 0.3, True, id="13-of-40-alone-trips"),
        pytest.param(3, 3, 0, 0.3, False, id="3-never-trips"),
        # The slow drain of the issue: 40 -> 29 -> 21, each step under 30%.
        pytest.param(8, 29, 11, 0.3, True, id="second-step-of-a-drain-trips"),
        pytest.param(1, 29, 11, 0.3, False, id="12-of-40-is-not-more-than-0.3"),
        pytest.param(2, 29, 11, 0.3, True, id="13-of-40-trips"),
        # W + D must pass the floor too: 3 deletes in all never trip.
        pytest.param(1, 4, 2, 0.0, False, id="3-in-all-never-trips"),
        pytest.param(1, 4, 3, 0.0, True, id="4-in-all-with-fraction-0-trips"),
        # No delete now: nothing to withhold, whatever the window holds.
        pytest.param(0, 10, 30, 0.3, False, id="no-delete-now-never-trips"),
        pytest.param(5, 100, 20, 1.0, False, id="fraction-1-never-trips"),
        pytest.param(10, 50, 10, 0.5, False, id="20-of-60-under-0.5"),
    ],
)
def test_guard_over_the_window(
    deletes: int, touchable: int, window: int, fraction: float, tripped: bool
) -> None:
    assert (
        guard_trips(
            deletes=deletes,
            touchable=touchable,
            window_deletes=window,
            max_delete_fraction=fraction,
        )
        is tripped
    )


def entry(minutes: int, deleted: int, *, forced: bool = False) -> JournalEntry:
    return JournalEntry(
        cycle_id=f"c{minutes}",
        discovery_group="prod",
        at=T0 + timedelta(minutes=minutes),
        forced=forced,
        created=(),
        updated=(),
        deleted=tuple(f"db-{minutes}-{i}" for i in range(deleted)),
    )


@pytest.mark.parametrize(
    ("entries", "counted"),
    [
        pytest.param([], 0, id="empty"),
        pytest.param([entry(0, 11), entry(5, 3)], 14, id="unforced-add-up"),
        pytest.param([entry(0, 11), entry(5, 8, forced=True)], 0, id="a-force-is-a-checkpoint"),
        pytest.param(
            [entry(9, 2), entry(0, 11), entry(5, 8, forced=True)], 2, id="after-the-checkpoint"
        ),
        pytest.param([entry(0, 0), entry(1, 0)], 0, id="creates-only"),
    ],
)
def test_window_deletes(entries: list[JournalEntry], counted: int) -> None:
    assert window_deletes(entries) == counted


def test_the_plan_counts_the_window_and_says_so() -> None:
    current = [stored(make_resource(f"db-{i:02d}")) for i in range(29)]
    still_there = [s.resource for s in current[8:]]

    def plan(window: int, *, force: bool = False) -> Plan:
        return make_plan(
            scopes=[ok_scope(resources=still_there)],
            current=current,
            discovery_group=GROUP,
            force=force,
            window_deletes=window,
            delete_window=3600.0,
        )

    alone, windowed, forced = plan(0), plan(11), plan(11, force=True)

    assert not alone.guard_tripped and len(alone.delete) == 8
    assert windowed.guard_tripped and windowed.delete == ()
    reasons = {w.reason for w in windowed.withheld}
    assert len(reasons) == 1 and {w.code for w in windowed.withheld} == {"delete-guard"}
    reason = reasons.pop()
    assert reason.startswith("delete guard: 8 deletes now and 11 already applied within ")
    assert "safety.delete_window=1h" in reason and "19 of the 40 owned resources" in reason
    assert "`discovery scan --force`" in reason
    assert not forced.guard_tripped and len(forced.delete) == 8


def test_a_journal_entry_names_what_the_apply_writes() -> None:
    a, b, c = (stored(make_resource(n)) for n in ("a", "b", "c"))
    changes = Changes(
        create=(make_resource("new"),),
        update=(Update(before=a, after=make_resource("a", variant=1)),),
        delete=(b, c),
    )
    stamp = JournalStamp(cycle_id="c1", discovery_group="prod", at=T0, forced=True)

    made = journal_entry(replace(changes, journal=stamp))

    assert made == JournalEntry(
        cycle_id="c1",
        discovery_group="prod",
        at=T0,
        forced=True,
        created=("new",),
        updated=("a",),
        deleted=("b", "c"),
    )
    assert journal_entry(changes) is None  # no stamp: no row (copy, adopt)
    assert journal_entry(Changes(journal=stamp)) is None  # nothing applied: no row


def test_times_round_trip_and_sort_as_text() -> None:
    times = [T0, T0 + timedelta(microseconds=1), T0 + timedelta(days=400)]
    assert [parse_at(format_at(t)) for t in times] == times
    assert sorted(format_at(t) for t in reversed(times)) == [format_at(t) for t in times]
    assert format_at(T0) == "2026-12-02T06:00:00.000000Z"
    assert prune_before(T0) == T0 - JOURNAL_RETENTION == T0 - timedelta(days=7)


def config_with(safety: dict[str, object]) -> dict[str, object]:
    return {
        "discovery_group": "prod",
        "aws": [{"types": ["rdsproxy"], "regions": ["us-east-1"]}],
        "safety": safety,
    }


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        pytest.param(None, 3600.0, id="default-1h"),
        pytest.param("0s", 0.0, id="0s-this-cycle-only"),
        pytest.param(0, 0.0, id="bare-0"),
        pytest.param("90m", 5400.0, id="90m"),
        pytest.param("168h", 7 * 24 * 3600.0, id="a-week-at-most"),
    ],
)
def test_delete_window_accepted(value: object, seconds: float) -> None:
    safety = {} if value is None else {"delete_window": value}
    assert config_from_mapping(config_with(safety)).safety.delete_window == seconds


@pytest.mark.parametrize(
    ("value", "message"),
    [
        pytest.param("169h", "must be between 0s and 168h", id="over-a-week"),
        pytest.param(float("inf"), "must be between", id="inf"),
        pytest.param(float("nan"), "must be between", id="nan"),
        pytest.param(-1, "must be between", id="negative"),
        pytest.param(True, "expected a duration", id="bool"),
        pytest.param("soon", "is not a duration", id="words"),
    ],
)
def test_delete_window_rejected(value: object, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        config_from_mapping(config_with({"delete_window": value}))
    assert "safety.delete_window" in str(info.value) and message in str(info.value)
