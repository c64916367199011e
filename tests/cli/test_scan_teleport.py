"""`discovery scan` into a Teleport cluster: the CLI in a subprocess, the emulator over HTTP,
the stand-in tctl (discovery/demo/tctl_standin.py) as the cluster."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from tests.cli.conftest import ACCOUNT_A, ACCOUNT_B, Harness, base_config
from tests.harness.fleet import find_proxy, remove_proxy
from tests.harness.tctl import StandinTctl

EXIT_OK, EXIT_RUNTIME, EXIT_SCOPES_FAILED, EXIT_GUARD = 0, 1, 3, 4
ALL = 16  # base_fleet: 8 proxies, each with a read-only endpoint
PROXY_A = f"a-east-1-rdsproxy-us-east-1-{ACCOUNT_A}"


@pytest.fixture
def tctl(tmp_path: Path) -> StandinTctl:
    return StandinTctl(tmp_path / "teleport")


def teleport_config(tctl: StandinTctl, **registry: Any) -> dict[str, Any]:
    return base_config(
        registry={"backend": "teleport", "tctl": str(tctl.path), "timeout": "10s", **registry}
    )


def test_first_scan_creates_everything_in_one_create_call(
    harness: Harness, tctl: StandinTctl
) -> None:
    config = harness.write_config(teleport_config(tctl))
    result = harness.scan(config)
    assert result.code == EXIT_OK, result.stderr
    assert len(result.json()["plan"]["create"]) == ALL
    stored = tctl.resources()
    assert len(stored) == ALL
    for doc in stored.values():
        assert doc["metadata"]["labels"]["teleport.dev/origin"] == "dynamic"  # tctl's doing
        assert doc["metadata"]["labels"]["teleport.internal/discovery-group-name"] == "e2e"
    assert [c[:1] for c in tctl.writes()] == [["create"]]
    assert "-f" not in tctl.writes()[0]


def test_second_scan_makes_no_write(harness: Harness, tctl: StandinTctl) -> None:
    config = harness.write_config(teleport_config(tctl))
    assert harness.scan(config).code == EXIT_OK
    tctl.clear_calls()
    result = harness.scan(config)
    assert result.code == EXIT_OK, result.stderr
    plan = result.json()["plan"]
    assert (plan["create"], plan["update"], plan["delete"]) == ([], [], [])
    assert plan["unchanged"] == ALL
    assert tctl.subcommands() == ["get"]


def created_names(tctl: StandinTctl) -> set[str]:
    return set(tctl.resources())


def test_a_changed_tag_is_one_create_f_call(harness: Harness, tctl: StandinTctl) -> None:
    config = harness.write_config(teleport_config(tctl))
    assert harness.scan(config).code == EXIT_OK
    fleet = copy.deepcopy(harness.fleet)
    find_proxy(fleet, ACCOUNT_A, "us-east-1", "a-east-1")["tags"] = {"env": "staging"}
    harness.update_fleet(fleet)
    tctl.clear_calls()

    result = harness.scan(config)

    assert result.code == EXIT_OK, result.stderr
    updated = {u["after"]["metadata"]["name"] for u in result.json()["plan"]["update"]}
    assert updated == {PROXY_A, f"a-east-1-a-east-1-ro-rdsproxy-us-east-1-{ACCOUNT_A}"}
    writes = tctl.writes()
    assert len(writes) == 1 and writes[0][:2] == ["create", "-f"]
    assert tctl.resources()[PROXY_A]["metadata"]["labels"]["env"] == "staging"
    tctl.clear_calls()
    assert harness.scan(config).code == EXIT_OK
    assert tctl.writes() == []


def test_a_deleted_proxy_is_removed_with_rm(harness: Harness, tctl: StandinTctl) -> None:
    config = harness.write_config(teleport_config(tctl))
    assert harness.scan(config).code == EXIT_OK
    fleet = copy.deepcopy(harness.fleet)
    remove_proxy(fleet, ACCOUNT_A, "us-east-1", "a-east-1")
    harness.update_fleet(fleet)
    tctl.clear_calls()

    result = harness.scan(config)

    assert result.code == EXIT_OK, result.stderr
    gone = {PROXY_A, f"a-east-1-a-east-1-ro-rdsproxy-us-east-1-{ACCOUNT_A}"}
    assert sorted(tctl.writes()) == sorted([["rm", f"db/{name}"] for name in gone])
    assert not gone & created_names(tctl)
    assert len(tctl.resources()) == ALL - 2


HAND_MADE = {
    "kind": "db",
    "version": "v3",
    "metadata": {
        "name": "hand-made",
        "labels": {"teleport.dev/origin": "dynamic", "team": "dba"},
    },
    "spec": {"protocol": "postgres", "uri": "db.internal:5432"},
}


def test_hand_made_resources_are_never_touched(harness: Harness, tctl: StandinTctl) -> None:
    squatter = copy.deepcopy(HAND_MADE)
    squatter["metadata"]["name"] = PROXY_A  # a desired name, registered by hand
    tctl.seed(HAND_MADE)
    tctl.seed(squatter)
    before = tctl.resources()
    config = harness.write_config(teleport_config(tctl))

    result = harness.scan(config)

    assert result.code == EXIT_OK, result.stderr
    doc = result.json()
    assert PROXY_A not in {r["metadata"]["name"] for r in doc["plan"]["create"]}
    assert any(w["name"] == PROXY_A and w["action"] == "create" for w in doc["withheld"])
    after = tctl.resources()
    assert after["hand-made"] == before["hand-made"]
    assert after[PROXY_A] == before[PROXY_A]
    assert len(after) == ALL + 1  # 15 of ours and the two hand-made ones
    tctl.clear_calls()
    assert harness.scan(config).code == EXIT_OK
    assert tctl.writes() == []


def test_a_failed_scope_is_frozen(harness: Harness, tctl: StandinTctl) -> None:
    config = harness.write_config(teleport_config(tctl))
    assert harness.scan(config).code == EXIT_OK
    harness.emulator.set_faults(
        [
            {
                "account": ACCOUNT_A,
                "region": "us-east-1",
                "operation": "DescribeDBProxies",
                "code": "AccessDenied",
                "status": 403,
            }
        ]
    )
    tctl.clear_calls()

    result = harness.scan(config)

    assert result.code == EXIT_SCOPES_FAILED, result.stderr
    assert result.json()["plan"]["delete"] == []
    assert tctl.writes() == []
    assert len(tctl.resources()) == ALL


def test_dry_run_writes_nothing(harness: Harness, tctl: StandinTctl) -> None:
    config = harness.write_config(teleport_config(tctl))

    result = harness.scan(config, "--dry-run")

    assert result.code == EXIT_OK, result.stderr
    assert len(result.json()["plan"]["create"]) == ALL
    assert tctl.subcommands() == ["get"]
    assert tctl.resources() == {}


def test_a_partial_batch_is_reported_and_the_next_scan_converges(
    harness: Harness, tctl: StandinTctl
) -> None:
    bad = f"b-east-1-rdsproxy-us-east-1-{ACCOUNT_B}"
    tctl.set_faults(fail_document={"name": bad, "message": "backend is read-only"})
    config = harness.write_config(teleport_config(tctl))

    result = harness.scan(config)

    assert result.code == EXIT_RUNTIME
    line = [ln for ln in result.stderr.splitlines() if "registry apply incomplete" in ln]
    assert len(line) == 1, result.stderr
    assert f"wrote {ALL - 1} of {ALL} changes" in line[0]
    assert f"not written: create {bad}: tctl create: backend is read-only" in line[0]
    assert "Traceback" not in result.stderr
    assert bad not in tctl.resources()
    assert len(tctl.resources()) == ALL - 1
    # The batch stopped at the bad document; the rest were retried one by one.
    creates = [c for c in tctl.writes() if c[0] == "create"]
    assert len(creates) > 1

    tctl.set_faults()
    tctl.clear_calls()
    again = harness.scan(config)

    assert again.code == EXIT_OK, again.stderr
    assert [r["metadata"]["name"] for r in again.json()["plan"]["create"]] == [bad]
    assert len(tctl.resources()) == ALL


@pytest.mark.parametrize(
    ("faults", "expected"),
    [
        ({"expired": True}, "renew the bot identity"),
        ({"deny": ["create"]}, 'access denied to perform action "create" on "db"'),
        ({"unreachable": True}, "check registry.auth_server"),
        ({"hang": 30}, "did not answer within 2s (registry.timeout)"),
    ],
    ids=["expired", "denied", "unreachable", "timeout"],
)
def test_a_failing_tctl_exits_1_with_one_line(
    harness: Harness, tctl: StandinTctl, faults: dict[str, Any], expected: str
) -> None:
    tctl.set_faults(**faults)
    config = harness.write_config(teleport_config(tctl, timeout="2s"))

    result = harness.scan(config)

    assert result.code == EXIT_RUNTIME
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("discovery: registry")]
    assert len(errors) == 1, result.stderr
    assert expected in errors[0]
    assert "Traceback" not in result.stderr
    assert tctl.resources() == {}


def test_denied_create_names_the_role_fix(harness: Harness, tctl: StandinTctl) -> None:
    tctl.set_faults(deny=["create"])
    config = harness.write_config(teleport_config(tctl))
    result = harness.scan(config)
    assert result.code == EXIT_RUNTIME
    assert "verbs [list, read, create, update, delete]" in result.stderr
    # One call was enough to know: the other resources were not tried one by one.
    assert [c[0] for c in tctl.writes()] == ["create"]


def test_tctl_missing_exits_1(harness: Harness, tmp_path: Path) -> None:
    config = harness.write_config(
        base_config(registry={"backend": "teleport", "tctl": str(tmp_path / "no-tctl")})
    )
    result = harness.scan(config)
    assert result.code == EXIT_RUNTIME
    assert "install Teleport's tctl or set registry.tctl to its path" in result.stderr
    assert "Traceback" not in result.stderr


def test_auth_server_and_identity_come_before_the_subcommand(
    harness: Harness, tctl: StandinTctl, tmp_path: Path
) -> None:
    identity = tmp_path / "identity"
    identity.write_text("a tbot identity file\n")
    config = harness.write_config(
        teleport_config(tctl, auth_server="teleport.example.com:443", identity="identity")
    )
    assert harness.scan(config).code == EXIT_OK
    flags = ["--auth-server", "teleport.example.com:443", "-i", str(identity)]
    calls = tctl.calls()
    assert calls[0] == [*flags, "get", "db", "--format=json"]
    assert all(c[:4] == flags for c in calls)


def test_the_delete_guard_holds_with_tctl(harness: Harness, tctl: StandinTctl) -> None:
    config = harness.write_config(teleport_config(tctl))
    assert harness.scan(config).code == EXIT_OK
    fleet = copy.deepcopy(harness.fleet)
    for name in ("a-east-1", "a-east-2", "b-east-1"):
        account = ACCOUNT_B if name.startswith("b") else ACCOUNT_A
        remove_proxy(fleet, account, "us-east-1", name)
    harness.update_fleet(fleet)
    tctl.clear_calls()

    result = harness.scan(config)

    assert result.code == EXIT_GUARD, result.stderr
    doc = result.json()
    assert doc["plan"]["delete"] == []
    assert len([w for w in doc["withheld"] if w["action"] == "delete"]) == 6
    assert tctl.writes() == []
    assert len(tctl.resources()) == ALL


@pytest.mark.parametrize("journal", [True, False], ids=["journal", "no-journal"])
def test_with_a_journal_a_slow_drain_trips_the_delete_guard(
    harness: Harness, tctl: StandinTctl, journal: bool
) -> None:
    extra = {"journal": "journal.jsonl"} if journal else {}
    config = harness.write_config(teleport_config(tctl, **extra))
    assert harness.scan(config).code == EXIT_OK
    fleet = copy.deepcopy(harness.fleet)
    codes = []
    for name in ("a-east-1", "a-east-2", "b-east-1"):  # two resources each: under 3 per cycle
        account = ACCOUNT_B if name.startswith("b") else ACCOUNT_A
        remove_proxy(fleet, account, "us-east-1", name)
        harness.update_fleet(fleet)
        codes.append(harness.scan(config).code)
    if not journal:  # the guard sees each cycle alone: the drain goes through
        assert codes == [EXIT_OK, EXIT_OK, EXIT_OK]
        assert not harness.tmp_path.joinpath("journal.jsonl").exists()
        return
    assert codes == [EXIT_OK, EXIT_OK, EXIT_GUARD]
    assert len(tctl.resources()) == ALL - 4
    history = harness.run("registry", "history", config=config)
    assert history.code == 0, history.stderr
    assert len(harness.tmp_path.joinpath("journal.jsonl").read_text().splitlines()) == 3
