"""`discovery scan` against the emulator for the safety holes of issue 12: a newcomer may not
take over a registered name (the three ways in), a frozen account may not weaken the delete
guard for the others, and an account-region that comes back empty keeps its resources."""

from __future__ import annotations

import copy
from typing import Any

from tests.cli.conftest import ACCOUNT_A, ACCOUNT_B, ROLE_A, Harness, base_config, proxy
from tests.harness.cli import Result

EXIT_OK, EXIT_SCOPES_FAILED, EXIT_WITHHELD = 0, 3, 4
EAST = "us-east-1"


def names(resources: list[dict[str, Any]]) -> set[str]:
    return {r["metadata"]["name"] for r in resources}


def east_of_a_only() -> dict[str, Any]:
    return base_config(aws=[{"types": ["rdsproxy"], "regions": [EAST], "assume_role_arn": ROLE_A}])


def set_proxies(harness: Harness, account: int, proxies: list[dict[str, Any]]) -> None:
    fleet = copy.deepcopy(harness.fleet)
    fleet["accounts"][account]["regions"][EAST]["proxies"] = proxies
    harness.update_fleet(fleet)


def assert_collision_withheld(result: Result, name: str, *sources: str) -> None:
    assert result.code == EXIT_WITHHELD, result.stderr
    doc = result.json()
    held = [w for w in doc["withheld"] if w["name"] == name]
    assert len(held) == 1, doc["withheld"]
    assert held[0]["reason"].startswith("name collision"), held[0]
    for source in sources:
        assert source in held[0]["reason"], (source, held[0]["reason"])
    assert "TeleportDatabaseName" in held[0]["reason"]
    assert name not in names(doc["plan"]["create"])
    assert name not in names([u["after"] for u in doc["plan"]["update"]])
    assert f"withheld [name-collision]: {held[0]['reason']}" in result.stderr


def test_a_tag_in_another_account_does_not_take_over_a_name(harness: Harness) -> None:
    config = harness.write_config(base_config())
    assert harness.scan(config).code == EXIT_OK
    taken = f"b-east-1-rdsproxy-{EAST}-{ACCOUNT_B}"
    before = harness.registry(config)[taken]
    # Account A is scanned first (matcher 0): the old plan kept A's newcomer.
    fleet = copy.deepcopy(harness.fleet)
    fleet["accounts"][0]["regions"][EAST]["proxies"].insert(
        0, proxy("intruder", tags={"env": "prod", "TeleportDatabaseName": taken}, endpoints=[])
    )
    harness.update_fleet(fleet)

    result = harness.scan(config)

    assert_collision_withheld(
        result, taken, "b-east-1 (", f"{ACCOUNT_B}/{EAST}", "intruder (", f"{ACCOUNT_A}/{EAST}"
    )
    assert harness.registry(config)[taken] == before


def test_a_custom_endpoint_does_not_take_over_a_proxys_name(harness: Harness) -> None:
    config = harness.write_config(east_of_a_only())
    set_proxies(harness, 0, [proxy("a-b", endpoints=[])])
    assert harness.scan(config).code == EXIT_OK
    taken = f"a-b-rdsproxy-{EAST}-{ACCOUNT_A}"
    before = harness.registry(config)[taken]
    endpoint = {"name": "b", "target_role": "READ_ONLY"}
    set_proxies(harness, 0, [proxy("a", endpoints=[endpoint]), proxy("a-b", endpoints=[])])

    result = harness.scan(config)

    assert_collision_withheld(result, taken, "endpoint b of proxy a (", "proxy a-b (")
    assert names(result.json()["plan"]["create"]) == {f"a-rdsproxy-{EAST}-{ACCOUNT_A}"}
    assert harness.registry(config)[taken] == before


def test_the_suffix_rule_does_not_let_a_short_name_take_over(harness: Harness) -> None:
    config = harness.write_config(east_of_a_only())
    taken = f"db-rdsproxy-{EAST}-{ACCOUNT_A}"
    set_proxies(harness, 0, [proxy(taken, endpoints=[])])
    assert harness.scan(config).code == EXIT_OK
    before = harness.registry(config)[taken]
    set_proxies(harness, 0, [proxy("db", endpoints=[]), proxy(taken, endpoints=[])])

    result = harness.scan(config)

    assert_collision_withheld(result, taken, "proxy db (", f"proxy {taken} (")
    assert harness.registry(config)[taken] == before


def test_a_frozen_account_does_not_weaken_the_guard_for_the_others(harness: Harness) -> None:
    config = harness.write_config(base_config())
    assert harness.scan(config).code == EXIT_OK
    set_proxies(harness, 1, [])  # B's 4 resources in us-east-1 are gone...
    harness.emulator.set_faults(  # ...while A (8 resources) cannot be read
        [
            {
                "account": ACCOUNT_A,
                "region": "*",
                "operation": "DescribeDBProxies",
                "code": "AccessDenied",
                "status": 403,
            }
        ]
    )

    result = harness.scan(config)

    # 4 of the 8 it could touch, not 4 of 16: the guard trips; 3 (scopes failed) wins over 4.
    assert result.code == EXIT_SCOPES_FAILED, result.stderr
    doc = result.json()
    assert doc["plan"]["delete"] == []
    guarded = [w for w in doc["withheld"] if w["reason"].startswith("delete guard")]
    assert len(guarded) == 4
    assert "4 of the 8 owned resources" in guarded[0]["reason"]
    assert len(harness.registry(config)) == 16


def test_an_empty_account_region_keeps_its_resources(harness: Harness) -> None:
    config = harness.write_config(base_config())
    assert harness.scan(config).code == EXIT_OK
    set_proxies(harness, 1, [])  # 4 of 16: under the guard's fraction, but the scope is empty

    result = harness.scan(config)

    assert result.code == EXIT_WITHHELD, result.stderr
    doc = result.json()
    assert doc["plan"]["delete"] == []
    assert len(doc["withheld"]) == 4
    for w in doc["withheld"]:
        assert w["action"] == "delete"
        assert w["reason"].startswith(f"empty scope: {ACCOUNT_B}/{EAST}"), w
        assert "--force" in w["reason"]
    assert "withheld [empty-scope]" in result.stderr
    assert len(harness.registry(config)) == 16

    forced = harness.scan(config, "--force")

    assert forced.code == EXIT_OK, forced.stderr
    assert len(forced.json()["plan"]["delete"]) == 4
    assert len(harness.registry(config)) == 12
