"""`discovery scan` against the emulator for issue 12, hole 3: a slow drain, each step under
`safety.max_delete_fraction`, is stopped by the guard's sliding window over the apply journal;
`scan --force` applies it once (journaled too) and `registry history` shows the applies."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest

from discovery.core.config import DEFAULT_DSN_ENV
from tests.cli.conftest import ACCOUNT_A, ROLE_A, Harness, base_config, proxy

EXIT_OK, EXIT_RUNTIME, EXIT_WITHHELD = 0, 1, 4
EAST = "us-east-1"


def fleet_of(harness: Harness, count: int) -> None:
    """Account A's us-east-1 holds proxies p00..p{count-1} (no custom endpoints); the rest of
    the fleet is emptied, so the group owns exactly `count` resources."""
    fleet = copy.deepcopy(harness.fleet)
    for account in fleet["accounts"]:
        for region in account["regions"].values():
            region["proxies"] = []
    east = fleet["accounts"][0]["regions"][EAST]
    east["proxies"] = [proxy(f"p{i:02d}", endpoints=[]) for i in range(count)]
    harness.update_fleet(fleet)


def resource_name(i: int) -> str:
    return f"p{i:02d}-rdsproxy-{EAST}-{ACCOUNT_A}"


def east_of_a(registry: dict[str, Any] | None = None, **safety: Any) -> dict[str, Any]:
    matcher = {"types": ["rdsproxy"], "regions": [EAST], "assume_role_arn": ROLE_A}
    config = base_config(aws=[matcher])
    if registry is not None:
        config["registry"] = registry
    if safety:
        config["safety"] = safety
    return config


@pytest.fixture(params=["sqlite", "postgres"])
def registry(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The config's `registry` section: the SQLite default, or a fresh PostgreSQL schema whose
    DSN the CLI subprocesses inherit through $DISCOVERY_REGISTRY_DSN."""
    if request.param == "sqlite":
        yield None
        return
    from tests.registry.postgres_support import fresh_schema

    with fresh_schema() as dsn:
        monkeypatch.setenv(DEFAULT_DSN_ENV, dsn)
        yield {"backend": "postgres"}


def test_a_slow_drain_trips_the_guard_on_its_second_step(harness: Harness, registry: Any) -> None:
    config = harness.write_config(east_of_a(registry))
    fleet_of(harness, 40)
    assert harness.scan(config).code == EXIT_OK
    assert len(harness.registry(config)) == 40

    # Step 1: 40 -> 29 (11 deletes, 27.5%: under the one-cycle fraction): applied.
    fleet_of(harness, 29)
    first = harness.scan(config)
    assert first.code == EXIT_OK, first.stderr
    assert len(first.json()["plan"]["delete"]) == 11
    assert len(harness.registry(config)) == 29

    # Step 2: 29 -> 21 (8 deletes, 27.6% of 29): with the 11 of the window, 19 of 40.
    fleet_of(harness, 21)
    second = harness.scan(config)
    assert second.code == EXIT_WITHHELD, second.stderr
    doc = second.json()
    assert doc["plan"]["delete"] == []
    guarded = [w for w in doc["withheld"] if w["code"] == "delete-guard"]
    assert {w["name"] for w in guarded} == {resource_name(i) for i in range(21, 29)}
    reason = guarded[0]["reason"]
    assert reason.startswith("delete guard: 8 deletes now and 11 already applied"), reason
    assert "safety.delete_window=1h" in reason and "19 of the 40 owned" in reason
    assert "`discovery scan --force`" in reason
    assert len(harness.registry(config)) == 29

    # The operator looked: --force applies the 8 once, and is journaled as forced.
    forced = harness.scan(config, "--force")
    assert forced.code == EXIT_OK, forced.stderr
    assert len(forced.json()["plan"]["delete"]) == 8
    assert len(harness.registry(config)) == 21

    history = harness.run("registry", "history", "--output", "json", config=config)
    assert history.code == EXIT_OK, history.stderr
    entries = history.json()["entries"]
    assert [(e["counts"]["created"], e["counts"]["deleted"], e["forced"]) for e in entries] == [
        (0, 8, True),
        (0, 11, False),
        (40, 0, False),
    ]
    assert entries[0]["names"]["deleted"] == [resource_name(i) for i in range(21, 29)]
    assert entries[2]["names"]["created"] == [resource_name(i) for i in range(40)]
    assert {e["discovery_group"] for e in entries} == {"e2e"}
    assert len({e["cycle_id"] for e in entries}) == 3
    assert entries[0]["time"] >= entries[1]["time"] >= entries[2]["time"]

    text = harness.run("registry", "history", "--limit", "2", config=config)
    assert text.code == EXIT_OK, text.stderr
    lines = text.stdout.splitlines()
    assert lines[0].split() == [
        "TIME", "(UTC)", "CYCLE", "GROUP", "FORCED", "CREATED", "UPDATED", "DELETED", "NAMES",
    ]  # fmt: skip
    assert len(lines) == 2 + 2 + 1  # header, rule, two applies, the count
    assert f"-{resource_name(21)}" in lines[2] and "(+5 more)" in lines[2] and "yes" in lines[2]
    assert f"-{resource_name(29)}" in lines[3] and "(+8 more)" in lines[3]


def test_a_zero_window_is_the_one_cycle_guard(harness: Harness) -> None:
    config = harness.write_config(east_of_a(delete_window="0s"))
    fleet_of(harness, 40)
    assert harness.scan(config).code == EXIT_OK
    fleet_of(harness, 29)
    assert harness.scan(config).code == EXIT_OK
    fleet_of(harness, 21)

    result = harness.scan(config)

    assert result.code == EXIT_OK, result.stderr
    assert len(result.json()["plan"]["delete"]) == 8


def test_history_of_a_missing_sqlite_registry_is_an_error_and_creates_nothing(
    harness: Harness,
) -> None:
    config = harness.write_config(east_of_a())
    path = harness.tmp_path / "registry.db"

    result = harness.run("registry", "history", config=config)

    assert result.code == EXIT_RUNTIME
    assert f"registry {path} does not exist" in result.stderr
    assert "registry.path" in result.stderr and "Traceback" not in result.stderr
    assert not path.exists()


def test_a_bad_delete_window_is_a_config_error_naming_the_key(harness: Harness) -> None:
    for value in ("-1h", ".inf", "200h", True):
        config = harness.write_config(east_of_a(delete_window=value))
        result = harness.run("validate", config=config)
        assert result.code == 2, (value, result.stderr)
        assert "safety.delete_window" in result.stderr, (value, result.stderr)
        assert "Traceback" not in result.stderr
