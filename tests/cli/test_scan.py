"""`discovery scan` end to end: the CLI in a subprocess, the emulator over HTTP, real SQLite."""

from __future__ import annotations

import copy

from tests.cli.conftest import (
    ACCOUNT_A,
    ACCOUNT_B,
    ROLE_A,
    Harness,
    base_config,
    proxy,
)
from tests.harness.fleet import find_proxy

EXIT_OK, EXIT_RUNTIME, EXIT_CONFIG, EXIT_SCOPES_FAILED, EXIT_GUARD = 0, 1, 2, 3, 4


def names(resources: list[dict]) -> set[str]:
    return {r["metadata"]["name"] for r in resources}


def test_teleport_identical_documents(harness: Harness) -> None:
    fleet = copy.deepcopy(harness.fleet)
    fleet["accounts"][0]["regions"]["us-east-1"]["proxies"] = [
        proxy(
            "teleport-pg",
            endpoint="teleport-pg.proxy-abcdefghijkl.us-east-1.rds.amazonaws.com",
            resource_id="prx-0123456789abcdef0",
            vpc_id="vpc-0a1b2c",
            tags={"env": "prod", "owner": "db-team", "region": "tag-wins"},
            endpoints=[
                {
                    "name": "reader",
                    "target_role": "READ_ONLY",
                    "status": "available",
                    "endpoint": "reader.endpoint.proxy-abcdefghijkl.us-east-1.rds.amazonaws.com",
                }
            ],
        )
    ]
    harness.update_fleet(fleet)
    config = harness.write_config(
        base_config(
            aws=[{"types": ["rdsproxy"], "regions": ["us-east-1"], "assume_role_arn": ROLE_A}]
        )
    )
    result = harness.scan(config, "--dry-run")
    assert result.code == EXIT_OK, result.stderr
    doc = result.json()
    created = {r["metadata"]["name"]: r for r in doc["plan"]["create"]}
    ownership = {
        "teleport.dev/origin": "cloud",
        "teleport.dev/cloud": "AWS",
        "teleport.dev/discovery-type": "rdsproxy",
        "teleport.internal/discovery-group-name": "e2e",
    }
    common_labels = {
        "account-id": ACCOUNT_A,
        "region": "tag-wins",  # a tag may overwrite a generated label
        "vpc-id": "vpc-0a1b2c",
        "engine": "POSTGRESQL",
        "env": "prod",
        "owner": "db-team",
        "teleport.internal/discovered-name": "teleport-pg",
        **ownership,
    }
    aws = {
        "region": "us-east-1",
        "account_id": ACCOUNT_A,
        "assume_role_arn": ROLE_A,
        "rdsproxy": {"name": "teleport-pg", "resource_id": "prx-0123456789abcdef0"},
    }
    assert created["teleport-pg-rdsproxy-us-east-1-111111111111"] == {
        "kind": "db",
        "version": "v3",
        "metadata": {
            "name": "teleport-pg-rdsproxy-us-east-1-111111111111",
            "description": "RDS Proxy in us-east-1",
            "labels": common_labels,
        },
        "spec": {
            "protocol": "postgres",
            "uri": "teleport-pg.proxy-abcdefghijkl.us-east-1.rds.amazonaws.com:5432",
            "aws": aws,
        },
    }
    assert created["teleport-pg-reader-rdsproxy-us-east-1-111111111111"] == {
        "kind": "db",
        "version": "v3",
        "metadata": {
            "name": "teleport-pg-reader-rdsproxy-us-east-1-111111111111",
            "description": "RDS Proxy endpoint in us-east-1",
            "labels": {
                **common_labels,
                "endpoint-type": "READ_ONLY",
                "teleport.internal/discovered-name": "teleport-pg-reader",
            },
        },
        "spec": {
            "protocol": "postgres",
            "uri": "reader.endpoint.proxy-abcdefghijkl.us-east-1.rds.amazonaws.com:5432",
            "aws": {
                **aws,
                "rdsproxy": {
                    "name": "teleport-pg",
                    "custom_endpoint_name": "reader",
                    "resource_id": "prx-0123456789abcdef0",
                },
            },
            "tls": {"server_name": "teleport-pg.proxy-abcdefghijkl.us-east-1.rds.amazonaws.com"},
        },
    }
    assert len(created) == 2


def test_json_document_shape(harness: Harness) -> None:
    config = harness.write_config(base_config())
    result = harness.scan(config, "--dry-run")
    assert result.code == EXIT_OK, result.stderr
    doc = result.json()
    assert set(doc) == {"discovery_group", "dry_run", "plan", "withheld", "scopes"}
    assert doc["dry_run"] is True and doc["discovery_group"] == "e2e"
    assert set(doc["plan"]) == {"create", "update", "delete", "unchanged"}
    assert len(doc["plan"]["create"]) == 16
    assert len(doc["scopes"]) == 4
    for scope in doc["scopes"]:
        assert set(scope) == {
            "matcher", "region", "account_id", "assume_role_arn", "status", "error",
            "resources", "skipped",
        }  # fmt: skip
        assert scope["status"] == "ok" and scope["resources"] == 4
    # a dry run writes nothing
    assert harness.registry(config) == {}


def test_lifecycle_create_steady_update_delete(harness: Harness) -> None:
    config = harness.write_config(base_config())
    first = harness.scan(config)
    assert first.code == EXIT_OK, first.stderr
    assert len(first.json()["plan"]["create"]) == 16
    stored = harness.registry(config)
    assert len(stored) == 16

    steady = harness.scan(config)
    assert steady.code == EXIT_OK
    plan = steady.json()["plan"]
    assert (plan["create"], plan["update"], plan["delete"], plan["unchanged"]) == ([], [], [], 16)
    assert harness.registry(config) == stored

    fleet = copy.deepcopy(harness.fleet)
    find_proxy(fleet, ACCOUNT_A, "us-east-1", "a-east-1")["tags"] = {"env": "staging"}
    west = fleet["accounts"][1]["regions"]["eu-west-1"]["proxies"]
    west[:] = [p for p in west if p["name"] != "b-west-2"]
    harness.update_fleet(fleet)
    change = harness.scan(config)
    assert change.code == EXIT_OK, change.stderr
    plan = change.json()["plan"]
    assert {u["after"]["metadata"]["name"] for u in plan["update"]} == {
        "a-east-1-rdsproxy-us-east-1-111111111111",
        "a-east-1-a-east-1-ro-rdsproxy-us-east-1-111111111111",
    }
    assert all(u["after"]["metadata"]["labels"]["env"] == "staging" for u in plan["update"])
    assert names(plan["delete"]) == {
        "b-west-2-rdsproxy-eu-west-1-222222222222",
        "b-west-2-b-west-2-ro-rdsproxy-eu-west-1-222222222222",
    }
    after = harness.registry(config)
    assert len(after) == 14
    assert (
        after["a-east-1-rdsproxy-us-east-1-111111111111"]["metadata"]["labels"]["env"] == "staging"
    )


def test_failed_scope_is_frozen(harness: Harness) -> None:
    config = harness.write_config(base_config())
    assert harness.scan(config).code == EXIT_OK
    before = harness.registry(config)

    fleet = copy.deepcopy(harness.fleet)
    # b-west-2 gone there (an empty answer makes no endpoint call: see the test below)...
    b_west = fleet["accounts"][1]["regions"]["eu-west-1"]["proxies"]
    fleet["accounts"][1]["regions"]["eu-west-1"]["proxies"] = b_west[:1]
    find_proxy(fleet, ACCOUNT_A, "eu-west-1", "a-west-1")["tags"] = {"env": "changed"}
    harness.update_fleet(fleet)
    # ...but the endpoints call of that scope fails: nothing there may be deleted.
    harness.emulator.set_faults(
        [
            {
                "account": ACCOUNT_B,
                "region": "eu-west-1",
                "operation": "DescribeDBProxyEndpoints",
                "code": "AccessDenied",
                "status": 403,
            }
        ]
    )
    result = harness.scan(config)
    assert result.code == EXIT_SCOPES_FAILED, result.stderr
    doc = result.json()
    failed = [s for s in doc["scopes"] if s["status"] == "failed"]
    assert len(failed) == 1
    assert failed[0]["account_id"] == ACCOUNT_B and failed[0]["region"] == "eu-west-1"
    assert "rds:DescribeDBProxyEndpoints" in failed[0]["error"]
    assert doc["plan"]["delete"] == []
    assert {w["action"] for w in doc["withheld"]} == {"delete"}
    assert len(doc["withheld"]) == 4
    # the healthy scopes still go ahead
    assert names([u["after"] for u in doc["plan"]["update"]]) == {
        "a-west-1-rdsproxy-eu-west-1-111111111111",
        "a-west-1-a-west-1-ro-rdsproxy-eu-west-1-111111111111",
    }
    after = harness.registry(config)
    for name, resource in before.items():
        if resource["spec"]["aws"]["account_id"] == ACCOUNT_B:
            assert after[name] == resource


def test_an_empty_answer_makes_no_other_call_and_is_guarded_as_empty(harness: Harness) -> None:
    """Issue 14: a scope whose DescribeDBProxies is empty makes no endpoint or tag call, so a
    denied endpoint call cannot fail it; the empty-scope rule still withholds every delete."""
    config = harness.write_config(base_config())
    assert harness.scan(config).code == EXIT_OK
    before = harness.registry(config)
    fleet = copy.deepcopy(harness.fleet)
    fleet["accounts"][1]["regions"]["eu-west-1"]["proxies"] = []  # everything gone there
    harness.update_fleet(fleet)
    harness.emulator.set_faults(
        [
            {
                "account": ACCOUNT_B,
                "region": "eu-west-1",
                "operation": "DescribeDBProxyEndpoints",
                "code": "AccessDenied",
                "status": 403,
            }
        ]
    )
    result = harness.scan(config)
    assert result.code == EXIT_GUARD, result.stderr
    doc = result.json()
    assert [s for s in doc["scopes"] if s["status"] == "failed"] == []
    assert doc["plan"]["delete"] == []
    assert len(doc["withheld"]) == 4
    assert all(w["reason"].startswith("empty scope: ") for w in doc["withheld"])
    assert harness.registry(config) == before

    harness.emulator.set_faults([])
    # Recovered, the scope answers empty while 4 of its resources are registered: the
    # empty-scope rule holds the deletes until --force (tests/cli/test_scan_safety.py).
    recovered = harness.scan(config)
    assert recovered.code == EXIT_GUARD
    assert {w["action"] for w in recovered.json()["withheld"]} == {"delete"}
    assert len(recovered.json()["withheld"]) == 4
    recovered = harness.scan(config, "--force")
    assert recovered.code == EXIT_OK
    assert len(recovered.json()["plan"]["delete"]) == 4


def test_wrong_external_id_fails_only_that_matcher(harness: Harness) -> None:
    cfg = base_config()
    cfg["aws"][1]["external_id"] = "wrong"
    config = harness.write_config(cfg)
    result = harness.scan(config)
    assert result.code == EXIT_SCOPES_FAILED
    doc = result.json()
    statuses = {(s["account_id"], s["region"]): s["status"] for s in doc["scopes"]}
    assert statuses == {
        (ACCOUNT_A, "us-east-1"): "ok",
        (ACCOUNT_A, "eu-west-1"): "ok",
        (ACCOUNT_B, "us-east-1"): "failed",
        (ACCOUNT_B, "eu-west-1"): "failed",
    }
    error = next(s["error"] for s in doc["scopes"] if s["status"] == "failed")
    assert "sts:AssumeRole" in error and "external_id" in error
    assert len(harness.registry(config)) == 8


def test_delete_guard_withholds_then_force_applies(harness: Harness) -> None:
    config = harness.write_config(base_config())
    assert harness.scan(config).code == EXIT_OK
    fleet = copy.deepcopy(harness.fleet)
    for region in ("us-east-1", "eu-west-1"):
        fleet["accounts"][0]["regions"][region]["proxies"] = []  # 8 of 16 resources gone
    harness.update_fleet(fleet)
    guarded = harness.scan(config)
    assert guarded.code == EXIT_GUARD, guarded.stderr
    doc = guarded.json()
    assert doc["plan"]["delete"] == []
    assert len(doc["withheld"]) == 8
    assert all("delete guard" in w["reason"] for w in doc["withheld"])
    assert len(harness.registry(config)) == 16
    forced = harness.scan(config, "--force")
    assert forced.code == EXIT_OK
    assert len(forced.json()["plan"]["delete"]) == 8
    assert len(harness.registry(config)) == 8


def test_two_discovery_groups_share_a_registry(harness: Harness) -> None:
    config_a = harness.write_config(base_config("team-a", aws=[base_config()["aws"][0]]), "a.yaml")
    config_b = harness.write_config(base_config("team-b"), "b.yaml")
    assert harness.scan(config_a).code == EXIT_OK
    owned_by_a = harness.registry(config_a)
    assert len(owned_by_a) == 8

    # group B sees the same proxies of account A: the names are held by A → conflicts.
    result = harness.scan(config_b)
    assert result.code == EXIT_OK, result.stderr
    doc = result.json()
    assert len(doc["plan"]["create"]) == 8  # account B's resources
    assert doc["plan"]["update"] == [] and doc["plan"]["delete"] == []
    conflicts = [w for w in doc["withheld"] if "not owned" in w["reason"]]
    assert len(conflicts) == 8
    after = harness.registry(config_a)
    assert all(after[name] == resource for name, resource in owned_by_a.items())

    # A's fleet disappears for B's point of view: B never deletes A's resources.
    fleet = copy.deepcopy(harness.fleet)
    for region in ("us-east-1", "eu-west-1"):
        fleet["accounts"][0]["regions"][region]["proxies"] = []
    harness.update_fleet(fleet)
    again = harness.scan(config_b).json()
    assert again["plan"]["delete"] == []
    assert all(harness.registry(config_a)[name] == r for name, r in owned_by_a.items())


def test_get_resources_denied_falls_back_to_list_tags(harness: Harness) -> None:
    config = harness.write_config(base_config())
    harness.emulator.set_faults(
        [
            {
                "account": "*",
                "region": "*",
                "operation": "GetResources",
                "code": "AccessDeniedException",
                "status": 400,
            }
        ]
    )
    harness.emulator.reset_stats()
    result = harness.scan(config, "--dry-run")
    assert result.code == EXIT_OK, result.stderr
    created = result.json()["plan"]["create"]
    assert len(created) == 16
    assert all(r["metadata"]["labels"]["env"] == "prod" for r in created)


def test_truncated_tags_page_fails_the_scope_instead_of_dropping_tags(harness: Harness) -> None:
    config = harness.write_config(base_config())
    assert harness.scan(config).code == EXIT_OK
    before = harness.registry(config)
    harness.emulator.set_faults(
        [
            {
                "account": ACCOUNT_A,
                "region": "us-east-1",
                "operation": "GetResources",
                "code": "Malformed",
            }
        ]
    )
    result = harness.scan(config)
    assert result.code == EXIT_SCOPES_FAILED, result.stderr
    doc = result.json()
    failed = [s for s in doc["scopes"] if s["status"] == "failed"]
    assert [(s["account_id"], s["region"]) for s in failed] == [(ACCOUNT_A, "us-east-1")]
    assert "malformed" in failed[0]["error"] or "Malformed" in failed[0]["error"]
    assert doc["plan"]["update"] == [] and doc["plan"]["delete"] == []
    assert harness.registry(config) == before


def test_paging_beyond_one_page(harness: Harness) -> None:
    fleet = copy.deepcopy(harness.fleet)
    fleet["accounts"][0]["regions"]["us-east-1"]["proxies"] = [
        proxy(f"bulk-{i:03d}") for i in range(230)
    ]
    harness.update_fleet(fleet)
    config = harness.write_config(
        base_config(
            aws=[{"types": ["rdsproxy"], "regions": ["us-east-1"], "assume_role_arn": ROLE_A}]
        )
    )
    result = harness.scan(config, "--dry-run")
    assert result.code == EXIT_OK, result.stderr
    created = names(result.json()["plan"]["create"])
    assert len(created) == 460
    assert "bulk-229-bulk-229-ro-rdsproxy-us-east-1-111111111111" in created


def test_text_output_and_registry_commands(harness: Harness) -> None:
    config = harness.write_config(base_config())
    result = harness.run("scan", config=config)
    assert result.code == EXIT_OK, result.stderr
    assert "16 to create" in result.stdout
    assert "Scopes:" in result.stdout
    listing = harness.run("registry", "list", config=config)
    assert listing.code == EXIT_OK
    assert "a-east-1-rdsproxy-us-east-1-111111111111" in listing.stdout
    assert "16 resource(s)" in listing.stdout
    export = harness.run("registry", "export", config=config)
    assert export.stdout.startswith("kind: db") or export.stdout.startswith("---")
    assert export.stdout.count("kind: db") == 16


def test_bad_configs_exit_2_with_the_yaml_path(harness: Harness) -> None:
    cases = {
        "external_id without role": (
            {
                "discovery_group": "g",
                "aws": [{"types": ["rdsproxy"], "regions": ["us-east-1"], "external_id": "x"}],
            },
            "aws[0]",
        ),
        "unknown key": ({**base_config(), "colour": "blue"}, "colour"),
        "bad region": (
            {"discovery_group": "g", "aws": [{"types": ["rdsproxy"], "regions": ["moon-1"]}]},
            "aws[0].regions",
        ),
    }
    for case, (doc, path) in cases.items():
        config = harness.write_config(doc, f"{case.replace(' ', '_')}.yaml")
        result = harness.scan(config)
        assert result.code == EXIT_CONFIG, case
        assert path in result.stderr, (case, result.stderr)
        assert "Traceback" not in result.stderr, case
    broken = harness.tmp_path / "broken.yaml"
    broken.write_text("discovery_group: [unclosed\n")
    result = harness.run("scan", config=broken)
    assert result.code == EXIT_CONFIG and "line" in result.stderr
    assert "Traceback" not in result.stderr
    missing = harness.run("scan", config=harness.tmp_path / "nope.yaml")
    assert missing.code == EXIT_CONFIG and "no such file" in missing.stderr
    assert harness.run("validate", config=harness.write_config(base_config())).code == EXIT_OK


def test_base_credentials_scope_without_role(harness: Harness) -> None:
    fleet = copy.deepcopy(harness.fleet)
    fleet["accounts"].append(
        {"id": "000000000000", "regions": {"us-east-1": {"proxies": [proxy("home")]}}}
    )
    harness.update_fleet(fleet)
    config = harness.write_config(
        base_config(aws=[{"types": ["rdsproxy"], "regions": ["us-east-1"]}])
    )
    result = harness.scan(config, "--dry-run")
    assert result.code == EXIT_OK, result.stderr
    doc = result.json()
    assert doc["scopes"][0]["account_id"] == "000000000000"
    assert names(doc["plan"]["create"]) == {
        "home-rdsproxy-us-east-1-000000000000",
        "home-home-ro-rdsproxy-us-east-1-000000000000",
    }
