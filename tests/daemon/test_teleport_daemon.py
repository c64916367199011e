"""`discovery run` writing into a Teleport cluster: a real daemon process, the emulator over
HTTP, the stand-in tctl (discovery/demo/tctl_standin.py) as the cluster."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from discovery.emulator import EmulatorThread
from tests.daemon.conftest import ACCOUNT_A, INTERVAL_S, base_config
from tests.harness.daemon import DaemonProcess
from tests.harness.fleet import fleet_names, proxy
from tests.harness.tctl import StandinTctl
from tests.harness.wait import wait_until

Daemons = Callable[..., DaemonProcess]


def test_daemon_keeps_the_cluster_in_step_and_survives_a_failing_tctl(
    daemons: Daemons, emulator: EmulatorThread, fleet: dict[str, Any], tmp_path: Path
) -> None:
    tctl = StandinTctl(tmp_path / "teleport")
    config = base_config(registry={"backend": "teleport", "tctl": str(tctl.path)})
    daemon = daemons(config)
    daemon.wait_ready()
    assert set(tctl.resources()) == fleet_names(fleet)

    # Steady state: cycles go on, and not one of them writes.
    tctl.clear_calls()
    daemon.wait_cycles(2, timeout=6 * INTERVAL_S + 10)
    assert tctl.writes() == []
    assert set(tctl.subcommands()) == {"get"}

    # The identity expires while the fleet grows: each cycle fails, is counted, writes nothing.
    tctl.set_faults(expired=True)
    fleet["accounts"][0]["regions"]["us-east-1"]["proxies"].append(proxy("a-east-3"))
    emulator.set_fleet(fleet)

    def errors() -> float:
        return daemon.scrape().get("rdsproxy_discovery_cycles_total", result="error") or 0.0

    wait_until(lambda: errors() >= 2, timeout=8 * INTERVAL_S + 10, what="two failed cycles")
    assert "renew the bot identity" in daemon.log()
    assert "Traceback" not in daemon.log()
    assert set(tctl.resources()) == fleet_names(fleet) - {
        f"a-east-3-rdsproxy-us-east-1-{ACCOUNT_A}",
        f"a-east-3-a-east-3-ro-rdsproxy-us-east-1-{ACCOUNT_A}",
    }
    daemon.assert_running()

    # The identity is renewed: the next cycle writes what was missing.
    tctl.set_faults()
    wait_until(
        lambda: set(tctl.resources()) == fleet_names(fleet),
        timeout=8 * INTERVAL_S + 10,
        what="the new proxy in the cluster",
    )
