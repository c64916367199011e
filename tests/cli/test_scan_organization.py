"""`discovery scan` with an organization matcher and `regions: ["*"]`, against the emulator's
Organizations and account:ListRegions: every ACTIVE account's enabled regions are scanned and
exactly their resources registered; an account that vanishes, is suspended, whose listing or
region listing fails, or whose role cannot be assumed loses nothing."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.cli.conftest import Harness, proxy
from tests.harness.fleet import resource_name

EXIT_OK, EXIT_SCOPES_FAILED = 0, 3
ORG_ID = "o-exampleorg01"
ROOT, PROD, TEAM, SANDBOX = "r-root", "ou-root-prod0001", "ou-root-team0001", "ou-root-sand0001"
A, B, C, D, E, F = (str(n) * 12 for n in range(1, 7))
ROLE = [{"name": "discovery", "external_id": "ext-org"}]
DAY = 24 * 3600.0


def org_fleet() -> dict[str, Any]:
    """A (root), B (prod), C (prod/team) are ACTIVE and in scope; D is in the excluded sandbox,
    E is SUSPENDED, F is not a member. Pages of one item, so every listing pages."""
    return {
        "caller_account": "000000000000",
        "organization": {
            "id": ORG_ID,
            "root_id": ROOT,
            "page_size": 1,
            "ous": [
                {"id": PROD, "parent": ROOT},
                {"id": TEAM, "parent": PROD},
                {"id": SANDBOX, "parent": ROOT},
            ],
        },
        "accounts": [
            {
                "id": A,
                "ou": ROOT,
                "roles": ROLE,
                "regions": {
                    "us-east-1": {"proxies": [proxy("a-1"), proxy("a-2", endpoints=[])]},
                    "eu-west-1": {"proxies": [proxy("a-3", endpoints=[])]},
                },
            },
            {
                "id": B,
                "ou": PROD,
                "roles": ROLE,
                # us-west-2 is enabled but empty; ap-east-1 is not enabled: never scanned.
                "enabled_regions": ["us-east-1", "us-west-2"],
                "disabled_regions": ["ap-east-1"],
                "regions": {
                    "us-east-1": {"proxies": [proxy("b-1", endpoints=[])]},
                    "ap-east-1": {"proxies": [proxy("b-opted-out", endpoints=[])]},
                },
            },
            {
                "id": C,
                "ou": TEAM,
                "roles": ROLE,
                "regions": {"eu-west-1": {"proxies": [proxy("c-1", endpoints=[])]}},
            },
            {
                "id": D,
                "ou": SANDBOX,
                "roles": ROLE,
                "regions": {"us-east-1": {"proxies": [proxy("d-1", endpoints=[])]}},
            },
            {
                "id": E,
                "ou": PROD,
                "status": "SUSPENDED",
                "roles": ROLE,
                "regions": {"us-east-1": {"proxies": [proxy("e-1", endpoints=[])]}},
            },
            {
                "id": F,
                "roles": ROLE,
                "regions": {"us-east-1": {"proxies": [proxy("f-1", endpoints=[])]}},
            },
        ],
    }


EXPECTED = {
    resource_name("a-1", "us-east-1", A),
    resource_name("a-1-a-1-ro", "us-east-1", A),
    resource_name("a-2", "us-east-1", A),
    resource_name("a-3", "eu-west-1", A),
    resource_name("b-1", "us-east-1", B),
    resource_name("c-1", "eu-west-1", C),
}


def org_config(**matcher: Any) -> dict[str, Any]:
    return {
        "discovery_group": "e2e",
        "aws": [
            {
                "types": ["rdsproxy"],
                "regions": ["*"],
                "organization": {"id": ORG_ID, "exclude_ous": [SANDBOX]},
                "assume_role_name": "discovery",
                "external_id": "ext-org",
                **matcher,
            }
        ],
        "registry": {"backend": "sqlite", "path": "registry.db"},
    }


@pytest.fixture
def org(harness: Harness) -> Harness:
    harness.update_fleet(org_fleet())
    return harness


def edit_account(harness: Harness, account: str, **fields: Any) -> None:
    fleet = copy.deepcopy(harness.fleet)
    for doc in fleet["accounts"]:
        if doc["id"] == account:
            doc.update(fields)
    harness.update_fleet(fleet)


def state_path(harness: Harness) -> Path:
    return harness.tmp_path / "registry.db.accounts.json"


def first_import(harness: Harness) -> Path:
    config = harness.write_config(org_config())
    result = harness.scan(config)
    assert result.code == EXIT_OK, result.stderr
    assert set(harness.registry(config)) == EXPECTED
    return config


def calls(harness: Harness, operation: str) -> int:
    return sum(harness.emulator.stats()["by_operation"].get(operation, {}).values())


def test_every_active_accounts_enabled_regions_are_registered_exactly(org: Harness) -> None:
    config = org.write_config(org_config())
    org.emulator.reset_stats()
    result = org.scan(config)
    assert result.code == EXIT_OK, result.stderr
    # Pages of one item: root (A), prod (B, E), team (C); the excluded sandbox is not walked.
    assert calls(org, "ListAccountsForParent") == 1 + 2 + 1
    assert calls(org, "ListRegions") == 2 + 2 + 1  # A: 2 regions, B: 2, C: 1, a page each
    doc = result.json()
    assert {r["metadata"]["name"] for r in doc["plan"]["create"]} == EXPECTED
    scanned = {(s["account_id"], s["region"]) for s in doc["scopes"]}
    assert scanned == {
        (A, "eu-west-1"),
        (A, "us-east-1"),
        (B, "us-east-1"),
        (B, "us-west-2"),
        (C, "eu-west-1"),
    }
    created = {r["metadata"]["name"]: r for r in doc["plan"]["create"]}
    aws = created[resource_name("c-1", "eu-west-1", C)]["spec"]["aws"]
    assert aws["assume_role_arn"] == f"arn:aws:iam::{C}:role/discovery"
    assert aws["external_id"] == "ext-org"
    assert set(org.registry(config)) == EXPECTED
    # Steady state: the same listing, nothing to write.
    again = org.scan(config)
    assert again.code == EXIT_OK and not again.json()["plan"]["create"]


def test_all_regions_with_an_explicit_role(org: Harness) -> None:
    matcher = {
        "types": ["rdsproxy"],
        "regions": ["*"],
        "assume_role_arn": f"arn:aws:iam::{B}:role/discovery",
        "external_id": "ext-org",
    }
    config = org.write_config({**org_config(), "aws": [matcher]})
    result = org.scan(config)
    assert result.code == EXIT_OK, result.stderr
    scanned = {(s["account_id"], s["region"]) for s in result.json()["scopes"]}
    assert scanned == {(B, "us-east-1"), (B, "us-west-2")}  # not the opted-out ap-east-1
    assert set(org.registry(config)) == {resource_name("b-1", "us-east-1", B)}


def test_include_ous_limits_the_accounts_to_their_subtrees(org: Harness) -> None:
    config = org.write_config(
        org_config(organization={"id": ORG_ID, "include_ous": [PROD], "exclude_ous": [TEAM]})
    )
    result = org.scan(config)
    assert result.code == EXIT_OK, result.stderr
    assert set(org.registry(config)) == {resource_name("b-1", "us-east-1", B)}


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"ou": None}, id="vanishes"),
        pytest.param({"status": "SUSPENDED"}, id="suspended"),
    ],
)
def test_an_account_gone_from_the_listing_is_frozen_until_the_grace_ends(
    org: Harness, change: dict[str, Any]
) -> None:
    config = first_import(org)
    before = org.registry(config)
    edit_account(org, C, **change)

    result = org.scan(config)

    assert result.code == EXIT_OK, result.stderr
    doc = result.json()
    assert doc["plan"]["delete"] == []
    c_name = resource_name("c-1", "eu-west-1", C)
    held = [w for w in doc["withheld"] if w["name"] == c_name]
    assert held and held[0]["action"] == "delete", doc["withheld"]
    assert f"account {C}" in held[0]["reason"] and "gone_grace" in held[0]["reason"]
    assert org.registry(config) == before
    gone = json.loads(state_path(org).read_text())["first_seen_gone"]
    assert set(gone) == {C} and abs(gone[C] - time.time()) < 300

    # Gone for longer than the grace (the state file says since yesterday): now it may go.
    state_path(org).write_text(json.dumps({"version": 1, "first_seen_gone": {C: gone[C] - DAY}}))
    result = org.scan(config)
    assert result.code == EXIT_OK, result.stderr
    assert {r["metadata"]["name"] for r in result.json()["plan"]["delete"]} == {c_name}
    assert set(org.registry(config)) == EXPECTED - {c_name}


def test_without_the_state_file_a_vanished_account_is_never_emptied(org: Harness) -> None:
    config = first_import(org)
    edit_account(org, C, ou=None)
    for _ in range(2):
        state_path(org).unlink(missing_ok=True)  # e.g. cron on a fresh host each time
        result = org.scan(config)
        assert result.code == EXIT_OK, result.stderr
        assert result.json()["plan"]["delete"] == []
    assert set(org.registry(config)) == EXPECTED


def test_a_failed_organization_listing_changes_nothing(org: Harness) -> None:
    config = first_import(org)
    before = org.registry(config)
    fleet = copy.deepcopy(org.fleet)
    fleet["accounts"][0]["regions"]["us-east-1"]["proxies"] = []  # A's proxies are gone too
    org.update_fleet(fleet)
    org.emulator.set_faults(
        [
            {
                "operation": "ListAccountsForParent",
                "account": "000000000000",
                "code": "AccessDeniedException",
            }
        ]
    )

    result = org.scan(config)

    assert result.code == EXIT_SCOPES_FAILED, result.stderr
    doc = result.json()
    failed = [s for s in doc["scopes"] if s["status"] == "failed"]
    assert len(failed) == 1 and failed[0]["region"] == "*"
    assert "organizations:ListAccountsForParent" in failed[0]["error"]
    assert doc["plan"]["delete"] == [] and doc["plan"]["create"] == []
    held = {w["name"]: w for w in doc["withheld"]}
    for gone in (resource_name("a-1", "us-east-1", A), resource_name("a-2", "us-east-1", A)):
        # Frozen by the failed listing (not merely caught by the delete guard).
        assert "could not be listed" in held[gone]["reason"], held[gone]
    assert org.registry(config) == before
    assert "Traceback" not in result.stderr


def test_the_wrong_organization_id_changes_nothing(org: Harness) -> None:
    config = first_import(org)
    before = org.registry(config)
    edit_account(org, C, ou=None)
    wrong = org.write_config(org_config(organization={"id": "o-otherorg0001"}))

    result = org.scan(wrong)

    assert result.code == EXIT_SCOPES_FAILED, result.stderr
    error = next(s["error"] for s in result.json()["scopes"] if s["status"] == "failed")
    assert "organization.id is o-otherorg0001" in error and ORG_ID in error
    reasons = {w["reason"] for w in result.json()["withheld"]}
    assert reasons and all("could not be listed" in r for r in reasons), reasons
    assert org.registry(config) == before


def test_a_new_account_whose_role_cannot_be_assumed_fails_alone(org: Harness) -> None:
    config = first_import(org)
    fleet = copy.deepcopy(org.fleet)
    fleet["accounts"].append(
        {"id": "777777777777", "ou": PROD, "regions": {"us-east-1": {"proxies": [proxy("g-1")]}}}
    )
    fleet["accounts"][0]["regions"]["eu-west-1"]["proxies"].append(proxy("a-new", endpoints=[]))
    org.update_fleet(fleet)

    result = org.scan(config)

    assert result.code == EXIT_SCOPES_FAILED, result.stderr
    doc = result.json()
    failed = [s for s in doc["scopes"] if s["status"] == "failed"]
    assert [(s["account_id"], s["region"]) for s in failed] == [("777777777777", "*")]
    assert "cannot assume arn:aws:iam::777777777777:role/discovery" in failed[0]["error"]
    assert "trust policy" in failed[0]["error"] and "deploy/iam" in failed[0]["error"]
    # The rest of the organization goes ahead.
    assert {r["metadata"]["name"] for r in doc["plan"]["create"]} == {
        resource_name("a-new", "eu-west-1", A)
    }
    assert set(org.registry(config)) == EXPECTED | {resource_name("a-new", "eu-west-1", A)}


def test_a_failed_region_listing_freezes_that_account(org: Harness) -> None:
    config = first_import(org)
    before = org.registry(config)
    fleet = copy.deepcopy(org.fleet)
    fleet["accounts"][1]["regions"]["us-east-1"]["proxies"] = []  # B's proxy is gone
    fleet["accounts"][0]["regions"]["eu-west-1"]["proxies"].append(proxy("a-new", endpoints=[]))
    org.update_fleet(fleet)
    org.emulator.set_faults(
        [
            {
                "operation": "ListRegions",
                "account": B,
                "code": "InternalServerException",
                "status": 500,
            }
        ]
    )

    result = org.scan(config)

    assert result.code == EXIT_SCOPES_FAILED, result.stderr
    doc = result.json()
    failed = [s for s in doc["scopes"] if s["status"] == "failed"]
    assert [(s["account_id"], s["region"]) for s in failed] == [(B, "*")]
    assert "account:ListRegions" in failed[0]["error"]
    assert doc["plan"]["delete"] == []
    b_name = resource_name("b-1", "us-east-1", B)
    assert any(w["name"] == b_name and w["action"] == "delete" for w in doc["withheld"])
    after = org.registry(config)
    assert after[b_name] == before[b_name]
    assert resource_name("a-new", "eu-west-1", A) in after


def test_an_empty_region_listing_freezes_that_account(org: Harness) -> None:
    config = first_import(org)
    before = org.registry(config)
    edit_account(org, B, enabled_regions=[], disabled_regions=[])

    result = org.scan(config)

    assert result.code == EXIT_SCOPES_FAILED, result.stderr
    failed = [s for s in result.json()["scopes"] if s["status"] == "failed"]
    assert [(s["account_id"], s["region"]) for s in failed] == [(B, "*")]
    assert "listed no enabled region" in failed[0]["error"]
    assert org.registry(config) == before


def test_teleport_yaml_organization_spelling(org: Harness) -> None:
    teleport = {
        "version": "v3",
        "discovery_service": {
            "enabled": True,
            "discovery_group": "e2e",
            "aws": [
                {
                    "types": ["rdsproxy"],
                    "regions": ["*"],
                    "organization": {
                        "organization_id": ORG_ID,
                        "organizational_units": {"include": ["*"], "exclude": [SANDBOX]},
                    },
                    "assume_role_name": "discovery",
                    "external_id": "ext-org",
                }
            ],
        },
    }
    config = org.write_config(teleport, name="teleport.yaml")
    result = org.scan(config, "--dry-run")
    assert result.code == EXIT_OK, result.stderr
    assert {r["metadata"]["name"] for r in result.json()["plan"]["create"]} == EXPECTED


def test_validate_says_which_matchers_expand_from_listings(org: Harness) -> None:
    config = org.write_config(org_config())
    result = org.run("validate", config=config)
    assert result.code == EXIT_OK, result.stderr
    assert "1 matcher(s), 0 scope(s) (+ 1 matcher(s) whose accounts or regions AWS lists" in (
        result.stdout
    )


def test_run_once_lists_the_organization_too(org: Harness) -> None:
    config = org.write_config(org_config())
    result = org.run("run", "--once", config=config)
    assert result.code == EXIT_OK, result.stderr
    assert set(org.registry(config)) == EXPECTED
    edit_account(org, C, ou=None)
    again = org.run("run", "--once", config=config)
    assert again.code == EXIT_OK, again.stderr
    assert set(org.registry(config)) == EXPECTED  # the vanished account is frozen, not emptied
    assert C in json.loads(state_path(org).read_text())["first_seen_gone"]
