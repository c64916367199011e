"""`discovery scan` after a config change that drops a region or an account (issue 12, hole 7b):
the resources the config no longer covers stay, withheld with code `config-change` (exit 4),
until `--accept-config-change` (or `--force`) deletes them once."""

from __future__ import annotations

import copy
from typing import Any

from tests.cli.conftest import ACCOUNT_A, ACCOUNT_B, ROLE_A, Harness, base_config

EXIT_OK, EXIT_WITHHELD = 0, 4
EAST, WEST = "us-east-1", "eu-west-1"


def names(resources: list[dict[str, Any]]) -> set[str]:
    return {r["metadata"]["name"] for r in resources}


def east_only() -> dict[str, Any]:
    config = base_config()
    for matcher in config["aws"]:
        matcher["regions"] = [EAST]
    return config


def test_a_dropped_region_is_withheld_until_the_change_is_accepted(harness: Harness) -> None:
    full = harness.write_config(base_config())
    assert harness.scan(full).code == EXIT_OK
    everything = set(harness.registry(full))
    west = {n for n in everything if f"-{WEST}-" in n}
    assert len(west) == 8  # 4 proxies of two accounts, each with its default endpoint

    config = harness.write_config(east_only())
    result = harness.scan(config)

    assert result.code == EXIT_WITHHELD, result.stderr
    doc = result.json()
    held = {w["name"]: w["reason"] for w in doc["withheld"]}
    assert set(held) == west
    assert names(doc["plan"]["delete"]) == set()
    for name, reason in held.items():
        account = ACCOUNT_A if name.endswith(ACCOUNT_A) else ACCOUNT_B
        assert reason.startswith("config change:") and f"{account}/{WEST}" in reason
        assert "--accept-config-change" in reason
        assert f"delete {name} withheld [config-change]: " in result.stderr
    assert set(harness.registry(config)) == everything

    # The same config, again: still withheld (nothing remembers the old config).
    assert harness.scan(config).code == EXIT_WITHHELD
    assert set(harness.registry(config)) == everything

    accepted = harness.scan(config, "--accept-config-change")

    assert accepted.code == EXIT_OK, accepted.stderr
    assert names(accepted.json()["plan"]["delete"]) == west
    assert set(harness.registry(config)) == everything - west
    assert harness.scan(config).code == EXIT_OK


def test_a_dropped_account_is_withheld_and_force_applies_it(harness: Harness) -> None:
    full = harness.write_config(base_config())
    assert harness.scan(full).code == EXIT_OK
    everything = set(harness.registry(full))
    of_b = {n for n in everything if n.endswith(ACCOUNT_B)}
    only_a = base_config(
        aws=[{"types": ["rdsproxy"], "regions": [EAST, WEST], "assume_role_arn": ROLE_A}]
    )
    config = harness.write_config(only_a)

    dry = harness.scan(config, "--dry-run")
    assert dry.code == EXIT_WITHHELD, dry.stderr
    held = dry.json()["withheld"]
    assert {w["name"] for w in held} == of_b
    assert all(w["reason"].startswith("config change:") for w in held), held

    forced = harness.scan(config, "--force")

    assert forced.code == EXIT_OK, forced.stderr
    assert set(harness.registry(config)) == everything - of_b


def test_a_small_dropped_region_under_the_guard_is_withheld_too(harness: Harness) -> None:
    # B's eu-west-1 is 4 of 16 resources: under the delete guard's fraction, so only the
    # config-change rule keeps it.
    full = harness.write_config(base_config())
    assert harness.scan(full).code == EXIT_OK
    everything = set(harness.registry(full))
    west_of_b = {n for n in everything if f"-{WEST}-" in n and n.endswith(ACCOUNT_B)}
    assert len(west_of_b) == 4
    config = base_config()
    config["aws"][1]["regions"] = [EAST]
    path = harness.write_config(config)

    result = harness.scan(path)

    assert result.code == EXIT_WITHHELD, result.stderr
    assert {w["name"] for w in result.json()["withheld"]} == west_of_b
    assert set(harness.registry(path)) == everything
    assert harness.scan(path, "--accept-config-change").code == EXIT_OK
    assert set(harness.registry(path)) == everything - west_of_b


def test_a_region_whose_scope_fails_stays_frozen_even_when_accepted(harness: Harness) -> None:
    full = harness.write_config(base_config())
    assert harness.scan(full).code == EXIT_OK
    everything = set(harness.registry(full))
    harness.emulator.set_faults(
        [{"operation": "DescribeDBProxies", "region": WEST, "code": "AccessDenied"}]
    )

    result = harness.scan(full, "--accept-config-change")

    assert result.code == 3, result.stderr  # a scope failed: its resources are frozen
    codes = {w["name"]: w["reason"] for w in result.json()["withheld"]}
    assert all(not r.startswith("config change") for r in codes.values()), codes
    assert set(harness.registry(full)) == everything


def test_an_accepted_config_change_is_a_checkpoint_for_the_windowed_guard(
    harness: Harness,
) -> None:
    full = harness.write_config(base_config())
    assert harness.scan(full).code == EXIT_OK
    everything = set(harness.registry(full))
    config = base_config()
    config["aws"][1]["regions"] = [EAST]  # B's eu-west-1 dropped: 4 resources
    path = harness.write_config(config)
    assert harness.scan(path, "--accept-config-change").code == EXIT_OK

    # Then a proxy of A goes (2 resources). Were the 4 confirmed deletes counted in
    # safety.delete_window, 6 of 16 would trip the guard; the operator's review resets it.
    fleet = copy.deepcopy(harness.fleet)
    proxies = fleet["accounts"][0]["regions"][EAST]["proxies"]
    fleet["accounts"][0]["regions"][EAST]["proxies"] = proxies[:1]
    harness.update_fleet(fleet)
    gone = {n for n in everything if "a-east-2" in n}
    assert len(gone) == 2

    result = harness.scan(path)

    assert result.code == EXIT_OK, result.stdout
    assert names(result.json()["plan"]["delete"]) == gone
