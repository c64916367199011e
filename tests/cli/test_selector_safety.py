"""Issue 12, hole 9: anyone who can tag a proxy cannot stall a scan with a hostile tag value.

The selector's `^...$` entries run on RE2 (linear time, Teleport's own regexp syntax): a
pattern with nested quantifiers against thirty letters and a `!` answers at once, where a
backtracking engine took minutes. A pattern RE2 cannot run is a config error (exit 2).
"""

from __future__ import annotations

import copy

from tests.cli.conftest import ROLE_A, Harness, base_config, proxy

EAST = "us-east-1"
EVIL_PATTERN = "^([a-z0-9]+-?)+$"
# The scan's child is killed (and the test fails) if it takes longer than this; a backtracking
# engine needs minutes for the hostile tag below.
SCAN_BOUND_S = 60.0


def test_a_hostile_tag_value_does_not_stall_a_scan(harness: Harness) -> None:
    fleet = copy.deepcopy(harness.fleet)
    fleet["accounts"][0]["regions"][EAST]["proxies"] = [
        proxy("hostile", tags={"team": "a" * 30 + "!"}),
        proxy("friendly", tags={"team": "db-team"}),
    ]
    harness.update_fleet(fleet)
    config = harness.write_config(
        base_config(
            aws=[
                {
                    "types": ["rdsproxy"],
                    "regions": [EAST],
                    "assume_role_arn": ROLE_A,
                    "tags": {"team": EVIL_PATTERN},
                }
            ]
        )
    )
    result = harness.run("scan", "--output", "json", config=config, timeout=SCAN_BOUND_S)
    assert result.code == 0, result.stderr
    doc = result.json()
    # the friendly proxy and its reader endpoint; nothing of the hostile one
    assert {r["spec"]["aws"]["rdsproxy"]["name"] for r in doc["plan"]["create"]} == {"friendly"}
    assert len(doc["plan"]["create"]) == 2
    skipped = {s["name"]: s["reason"] for scope in doc["scopes"] for s in scope["skipped"]}
    assert "labels do not match" in skipped["hostile"]


def test_a_pattern_re2_cannot_run_is_a_config_error(harness: Harness) -> None:
    config = harness.write_config(
        base_config(
            aws=[
                {
                    "types": ["rdsproxy"],
                    "regions": [EAST],
                    "assume_role_arn": ROLE_A,
                    "tags": {"team": "^(a)\\1$"},
                }
            ]
        )
    )
    result = harness.run("validate", config=config)
    assert result.code == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert "aws[0].tags" in lines[0] and "RE2" in lines[0], lines[0]
