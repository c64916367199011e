"""A reload that drops a region (issue 12, hole 7b), end to end: a real daemon, the emulator, a
real SQLite file. The reload logs what it leaves behind; the cycles keep those resources,
withheld with code `config-change` (in /status and the metrics), after a restart too; the
operator's `discovery scan --accept-config-change` deletes them."""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable
from typing import Any

import pytest

from discovery.core.config import Config
from discovery.core.model import (
    LABEL_DISCOVERY_GROUP,
    LABEL_ORIGIN,
    ORIGIN_CLOUD,
    AWSInfo,
    Resource,
    StoredResource,
)
from discovery.daemon.config_change import config_change_lines, log_config_change
from discovery.emulator import EmulatorThread
from discovery.registry.base import RegistryError
from discovery.registry.memory import MemoryRegistry
from tests.daemon.conftest import ACCOUNT_A, ACCOUNT_B, base_config
from tests.daemon.inprocess import ACCOUNT, ROLE, make_config
from tests.harness.cli import run_subprocess
from tests.harness.daemon import DaemonProcess
from tests.harness.env import process_env
from tests.harness.fleet import fleet_names
from tests.harness.wait import wait_until

Daemons = Callable[..., DaemonProcess]
WEST = "eu-west-1"


def withheld_config_change(daemon: DaemonProcess) -> dict[str, Any] | None:
    """The /status of a completed cycle that withheld config-change deletes, else None."""
    daemon.assert_running()
    status = daemon.status()
    last = status["last_cycle"]
    if last is None or not last["withheld_by_reason"].get("config-change"):
        return None
    return status


def test_a_reload_dropping_a_region_withholds_its_deletes_until_the_operator_accepts(
    daemons: Daemons, emulator: EmulatorThread, fleet: dict[str, Any]
) -> None:
    daemon = daemons(base_config())
    daemon.wait_ready()
    everything = fleet_names(fleet)
    west = {n for n in everything if f"-{WEST}-" in n}
    assert len(west) == 8 and set(daemon.registry()) == everything

    daemon.write_config(base_config(regions=("us-east-1",)))
    daemon.send(signal.SIGHUP)

    # At reload time: one line naming each account-region, its count and how to confirm.
    def preview() -> str | None:
        daemon.assert_running()
        lines = [
            line for line in daemon.log().splitlines() if "config change: the reloaded" in line
        ]
        return lines[0] if lines else None

    line = wait_until(preview, timeout=20, what="the reload's config-change line")
    assert "2 account-region(s) that hold 8 resource(s)" in line, line
    for account in (ACCOUNT_A, ACCOUNT_B):
        assert f"{account}/{WEST}: 4 (" in line, line
    assert "discovery scan --accept-config-change" in line
    assert sorted(west)[0] in line

    status = wait_until(
        lambda: withheld_config_change(daemon), timeout=30, what="a cycle withholding them"
    )
    assert status["last_cycle"]["withheld_by_reason"]["config-change"] == 8
    assert {w["name"] for w in status["last_cycle"]["withheld"]} == west
    assert daemon.scrape().value("rdsproxy_discovery_changes_withheld", reason="config-change") == 8
    daemon.wait_cycles(1)
    assert set(daemon.registry()) == everything
    assert "withheld [config-change]" in daemon.log()

    # A restart with the new config: nothing in memory, the same rule.
    assert daemon.stop() == 0
    daemon.start()
    daemon.wait_ready()
    wait_until(lambda: withheld_config_change(daemon), timeout=30, what="withheld after restart")
    assert set(daemon.registry()) == everything

    # The operator confirms (SQLite: one writer, so with the daemon stopped).
    assert daemon.stop() == 0
    accepted = run_subprocess(
        ["scan", "--accept-config-change", "--config", str(daemon.config_path)],
        env=process_env(emulator.url, {}),
        cwd=daemon.workdir,
    )
    assert accepted.code == 0, accepted.stderr
    assert set(daemon.registry()) == everything - west

    daemon.start()
    daemon.wait_ready()
    status = daemon.wait_completed(1)
    assert status["last_cycle"]["withheld"] == []
    assert set(daemon.registry()) == everything - west


def test_a_reload_renaming_the_group_says_how_many_it_orphans_and_how_to_adopt_them(
    daemons: Daemons, fleet: dict[str, Any]
) -> None:
    daemon = daemons(base_config())
    daemon.wait_ready()
    everything = fleet_names(fleet)

    daemon.write_config(base_config(discovery_group="renamed"))
    daemon.send(signal.SIGHUP)

    def orphaned() -> str | None:
        daemon.assert_running()
        lines = [line for line in daemon.log().splitlines() if "discovery_group change:" in line]
        return lines[0] if lines else None

    line = wait_until(orphaned, timeout=20, what="the reload's orphan count")
    assert f"{len(everything)} resource(s) of discovery group 'daemon' are orphaned" in line
    assert "discovery registry adopt --from-group daemon" in line
    daemon.wait_cycles(2)
    assert set(daemon.registry()) == everything  # orphaned, never deleted


# --- The reload's preview, in process --------------------------------------------------------


def stored_in(region: str, name: str, group: str = "unit") -> StoredResource:
    resource = Resource(
        name=name,
        description="",
        labels={LABEL_ORIGIN: ORIGIN_CLOUD, LABEL_DISCOVERY_GROUP: group},
        protocol="postgres",
        uri=f"{name}.example:5432",
        aws=AWSInfo(
            region=region, account_id=ACCOUNT, rdsproxy_name=name, rdsproxy_resource_id=name
        ),
    )
    return StoredResource(resource=resource, revision=1)


def two_regions() -> Config:
    return make_config(
        aws=[{"types": ["rdsproxy"], "regions": ["us-east-1", WEST], "assume_role_arn": ROLE}]
    )


def test_preview_lines_count_what_a_new_config_leaves_behind() -> None:
    current = [
        stored_in("us-east-1", "east"),
        *(stored_in(WEST, f"west-{i}") for i in range(7)),
        stored_in(WEST, "theirs", group="other"),
    ]

    [line] = config_change_lines(two_regions(), make_config(), current, {})

    assert "1 account-region(s) that hold 7 resource(s) of discovery group 'unit'" in line
    assert f"{ACCOUNT}/{WEST}: 7 (west-0, west-1, west-2, west-3, west-4 and 2 more)" in line
    assert config_change_lines(make_config(), two_regions(), current, {}) == []

    renamed = config_change_lines(two_regions(), make_config(discovery_group="new"), current, {})
    assert renamed == [
        "discovery_group change: 8 resource(s) of discovery group 'unit' are orphaned (never "
        "updated or deleted again); `discovery registry adopt --from-group unit` moves them "
        "to 'new'"
    ]


class Unreachable(MemoryRegistry):
    async def list_resources(self) -> list[StoredResource]:
        raise RegistryError("database is locked")


async def test_preview_that_cannot_read_the_registry_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING):
        await log_config_change(two_regions(), make_config(), Unreachable(), {})
    [record] = caplog.records
    assert "cannot read the registry" in record.getMessage()
    assert "database is locked" in record.getMessage()
    caplog.clear()

    with caplog.at_level(logging.WARNING):  # no matcher or group change: no read, no line
        await log_config_change(make_config(), make_config(poll_interval="2h"), Unreachable(), {})
    assert caplog.records == []
