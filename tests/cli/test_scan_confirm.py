"""`discovery scan` against the emulator for issue 12, hole 4: deletes and label removals
are confirmed by targeted reads, so a proxy that tag:GetResources leaves out is neither deleted
(under a tag selector) nor stripped of its tag labels (under the default selector), while a
proxy or endpoint that is really gone is still deleted, and a read that fails withholds the
change (`unconfirmed`, exit 3)."""

from __future__ import annotations

import copy
from typing import Any

from tests.cli.conftest import ACCOUNT_A, Harness, base_config
from tests.harness.fleet import find_proxy, remove_proxy, resource_name

EXIT_OK, EXIT_SCOPES_FAILED = 0, 3
EAST = "us-east-1"
PROXY = resource_name("a-east-1", EAST, ACCOUNT_A)
ENDPOINT = resource_name("a-east-1-a-east-1-ro", EAST, ACCOUNT_A)
CONFIRMING_READS = ("ListTagsForResource",)


def prod_only() -> dict[str, Any]:
    config = base_config()
    for matcher in config["aws"]:
        matcher["tags"] = {"env": "prod"}
    return config


def names(resources: list[dict[str, Any]]) -> set[str]:
    return {r["metadata"]["name"] for r in resources}


def edit_fleet(harness: Harness, name: str, **fields: Any) -> None:
    fleet = copy.deepcopy(harness.fleet)
    find_proxy(fleet, ACCOUNT_A, EAST, name).update(fields)
    harness.update_fleet(fleet)


def calls(harness: Harness, operation: str) -> int:
    by_op = harness.emulator.stats()["by_operation"].get(operation, {})
    return int(sum(by_op.values()))


def test_a_proxy_the_tagging_index_omits_is_not_deleted_under_a_tag_selector(
    harness: Harness,
) -> None:
    config = harness.write_config(prod_only())
    assert harness.scan(config).code == EXIT_OK
    before = harness.registry(config)
    assert {PROXY, ENDPOINT} <= before.keys()
    edit_fleet(harness, "a-east-1", in_tagging_index=False)
    harness.emulator.reset_stats()

    dry = harness.scan(config, "--dry-run")
    result = harness.scan(config)

    for run in (dry, result):
        assert run.code == EXIT_OK, run.stderr
        doc = run.json()
        assert doc["plan"]["delete"] == [] and doc["plan"]["update"] == [], doc["plan"]
        held = {w["name"]: w for w in doc["withheld"]}
        assert held.keys() == {PROXY, ENDPOINT}, doc["withheld"]
        for w in held.values():
            assert w["action"] == "delete" and "ListTagsForResource" in w["reason"], w
    # The proxy and its endpoint share one tag read per scan.
    assert calls(harness, "ListTagsForResource") == 2
    assert harness.registry(config) == before


def test_a_proxy_the_tagging_index_omits_keeps_its_tag_labels(harness: Harness) -> None:
    config = harness.write_config(base_config())
    assert harness.scan(config).code == EXIT_OK
    before = harness.registry(config)
    assert before[PROXY]["metadata"]["labels"]["env"] == "prod"
    edit_fleet(harness, "a-east-1", in_tagging_index=False)

    result = harness.scan(config)

    assert result.code == EXIT_OK, result.stderr
    doc = result.json()
    assert doc["plan"]["update"] == [] and doc["plan"]["delete"] == [], doc["plan"]
    assert {w["name"] for w in doc["withheld"]} == {PROXY, ENDPOINT}
    assert all(w["action"] == "update" for w in doc["withheld"])
    assert harness.registry(config) == before


def test_a_proxy_retagged_out_of_the_selector_is_still_deleted(harness: Harness) -> None:
    config = harness.write_config(prod_only())
    assert harness.scan(config).code == EXIT_OK
    edit_fleet(harness, "a-east-1", tags={"env": "dev"})

    result = harness.scan(config)

    assert result.code == EXIT_OK, result.stderr
    doc = result.json()
    assert names(doc["plan"]["delete"]) == {PROXY, ENDPOINT}
    assert doc["withheld"] == []
    assert not {PROXY, ENDPOINT} & harness.registry(config).keys()


def test_a_deleted_proxy_and_a_deleted_endpoint_are_still_deleted(harness: Harness) -> None:
    config = harness.write_config(base_config())
    assert harness.scan(config).code == EXIT_OK
    fleet = copy.deepcopy(harness.fleet)
    remove_proxy(fleet, ACCOUNT_A, EAST, "a-east-1")
    find_proxy(fleet, ACCOUNT_A, EAST, "a-east-2")["endpoints"] = []
    harness.update_fleet(fleet)
    gone_endpoint = resource_name("a-east-2-a-east-2-ro", EAST, ACCOUNT_A)
    harness.emulator.reset_stats()

    result = harness.scan(config)

    assert result.code == EXIT_OK, result.stderr
    doc = result.json()
    assert names(doc["plan"]["delete"]) == {PROXY, ENDPOINT, gone_endpoint}
    assert doc["withheld"] == []
    assert not {PROXY, ENDPOINT, gone_endpoint} & harness.registry(config).keys()
    # The listings once per scope (4), plus one targeted read each: DescribeDBProxies for
    # a-east-1 (both of its resources), DescribeDBProxyEndpoints for a-east-2's endpoint.
    stats = harness.emulator.stats()["calls"]
    not_found = {
        c["operation"]: c["count"]
        for c in stats
        if c["outcome"] == "not-found" and c["account"] == ACCOUNT_A and c["region"] == EAST
    }
    assert not_found == {"DescribeDBProxies": 1, "DescribeDBProxyEndpoints": 1}, stats
    assert calls(harness, "ListTagsForResource") == 0


def test_a_failed_confirmation_withholds_the_change(harness: Harness) -> None:
    config = harness.write_config(prod_only())
    assert harness.scan(config).code == EXIT_OK
    before = harness.registry(config)
    edit_fleet(harness, "a-east-1", in_tagging_index=False)
    harness.emulator.set_faults(
        [
            {
                "account": ACCOUNT_A,
                "region": EAST,
                "operation": "ListTagsForResource",
                "code": "AccessDenied",
                "status": 403,
            }
        ]
    )

    result = harness.scan(config)

    assert result.code == EXIT_SCOPES_FAILED, result.stderr
    doc = result.json()
    assert doc["plan"]["delete"] == []
    held = {w["name"]: w for w in doc["withheld"]}
    assert held.keys() == {PROXY, ENDPOINT}, doc["withheld"]
    for w in held.values():
        assert w["action"] == "delete", w
        assert w["reason"].startswith("not confirmed: rds:ListTagsForResource failed"), w
        assert "grant rds:ListTagsForResource" in w["reason"], w
    assert "withheld [unconfirmed]" in result.stderr
    assert "Traceback" not in result.stderr
    assert all(s["status"] == "ok" for s in doc["scopes"])
    assert harness.registry(config) == before


def test_steady_state_makes_no_confirming_read(harness: Harness) -> None:
    config = harness.write_config(prod_only())
    assert harness.scan(config).code == EXIT_OK
    harness.emulator.reset_stats()

    result = harness.scan(config)

    assert result.code == EXIT_OK, result.stderr
    by_op = harness.emulator.stats()["by_operation"]
    assert "ListTagsForResource" not in by_op, by_op
    # One listing per scope (2 accounts by 2 regions), no targeted read.
    assert sum(by_op["DescribeDBProxies"].values()) == 4, by_op
