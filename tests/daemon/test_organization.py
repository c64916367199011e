"""`discovery run` with an organization matcher: the account listing is cached for
`organization.cache_ttl` (later cycles make no Organizations calls) and refreshed once it is
stale, so an account that joins the organization is scanned without a restart."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from discovery.emulator import EmulatorThread
from tests.harness.daemon import DaemonProcess
from tests.harness.fleet import proxy, resource_name
from tests.harness.wait import wait_until

ORG = {"id": "o-exampleorg01", "root_id": "r-root"}
ROLE = [{"name": "discovery"}]
EAST = "us-east-1"
NEWCOMER = "333333333333"


def org_fleet() -> dict[str, Any]:
    return {
        "caller_account": "000000000000",
        "organization": ORG,
        "accounts": [
            {
                "id": account,
                "ou": "r-root",
                "roles": ROLE,
                "regions": {EAST: {"proxies": [proxy(name)]}},
            }
            for account, name in (("111111111111", "a-1"), ("222222222222", "b-1"))
        ],
    }


def calls(emulator: EmulatorThread, operation: str) -> int:
    by_op = emulator.stats()["by_operation"]
    return sum(by_op.get(operation, {}).values())


def test_the_account_listing_is_cached_then_refreshed(
    emulator: EmulatorThread, daemons: Callable[..., DaemonProcess]
) -> None:
    fleet = org_fleet()
    emulator.set_fleet(fleet)
    emulator.reset_stats()
    config = {
        "discovery_group": "daemon",
        "poll_interval": "1s",
        "aws": [
            {
                "types": ["rdsproxy"],
                "regions": ["*"],
                "organization": {"id": ORG["id"]},
                "assume_role_name": "discovery",
            }
        ],
        "organization": {"cache_ttl": "15s"},
        "registry": {"backend": "sqlite", "path": "registry.db"},
    }
    daemon = daemons(config)
    daemon.wait_completed(3)
    # Three cycles, one listing of the organization and of each account's regions.
    assert calls(emulator, "ListRoots") == 1
    assert calls(emulator, "ListRegions") == 2
    assert set(daemon.registry()) >= {
        resource_name("a-1", EAST, "111111111111"),
        resource_name("b-1", EAST, "222222222222"),
    }

    joined = copy.deepcopy(fleet)
    joined["accounts"].append(
        {
            "id": NEWCOMER,
            "ou": "r-root",
            "roles": ROLE,
            "regions": {EAST: {"proxies": [proxy("c-1")]}},
        }
    )
    emulator.set_fleet(joined)
    wanted = resource_name("c-1", EAST, NEWCOMER)
    wait_until(lambda: wanted in daemon.registry(), timeout=90, what="the newcomer's proxy")
    assert calls(emulator, "ListRoots") >= 2  # the stale listing was refreshed
    assert daemon.stop() == 0
