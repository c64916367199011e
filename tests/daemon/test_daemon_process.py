"""`discovery run` end to end: a real daemon process, the emulator over HTTP, a real SQLite file.

What an operator relies on: it becomes ready, follows the fleet within an interval, shows a
denied region as down while keeping its resources, stops promptly on SIGTERM/SIGINT, survives a
broken config on SIGHUP, and never shows a credential or an external id anywhere.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from typing import Any

import pytest

from discovery.emulator import EmulatorThread
from tests.daemon.conftest import (
    ACCOUNT_A,
    ACCOUNT_B,
    EXTERNAL_ID_A,
    EXTERNAL_ID_B,
    INTERVAL_S,
    REGIONS,
    base_config,
    base_fleet,
)
from tests.harness.daemon import DaemonProcess, issued_credentials
from tests.harness.fleet import fleet_names, proxy, remove_proxy, resource_name
from tests.harness.wait import wait_until
from tests.tools import promtool

Daemons = Callable[..., DaemonProcess]
STOP_BUDGET_S = 5.0


def promtool_check(exposition: str) -> None:
    checked = subprocess.run(
        [promtool(), "check", "metrics"],
        input=exposition,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.strip() == "" and checked.stderr.strip() == "", checked.stdout


def stop(daemon: DaemonProcess, sig: signal.Signals = signal.SIGTERM) -> float:
    """Send `sig`, wait for exit 0, return how long it took."""
    started = time.monotonic()
    daemon.send(sig)
    code = daemon.wait_exit(timeout=STOP_BUDGET_S + 10)
    elapsed = time.monotonic() - started
    assert code == 0, daemon.log()[-4000:]
    return elapsed


def test_becomes_ready_and_serves_metrics_status_and_health(
    daemons: Daemons, fleet: dict[str, Any]
) -> None:
    daemon = daemons(base_config())
    code, body, _ = daemon.get("/healthz")
    assert code == 200, body
    daemon.wait_ready()

    expected = fleet_names(fleet)
    assert set(daemon.registry()) == expected

    status = daemon.status()
    assert status["ready"] is True
    assert status["discovery_group"] == "daemon"
    assert status["registry"] == {"backend": "sqlite", "reachable": True, "error": ""}
    # SQLite has one writer: the daemon leads through the lock file next to the registry.
    assert status["role"] == "leader"
    assert status["leadership"]["elected"] is True and status["leadership"]["last_error"] == ""
    last = status["last_cycle"]
    assert last["result"] == "ok"
    assert last["counts"]["discovered"] == len(expected)
    assert last["counts"]["owned"] == len(expected)
    assert last["withheld"] == []
    assert {(s["account_id"], s["region"], s["status"]) for s in last["scopes"]} == {
        (account, region, "ok") for account in (ACCOUNT_A, ACCOUNT_B) for region in REGIONS
    }
    assert all(s["last_success_at"] for s in last["scopes"])
    assert status["last_success_at"] is not None

    code, exposition, content_type = daemon.get("/metrics")
    assert code == 200 and content_type.startswith("text/plain")
    promtool_check(exposition)
    metrics = daemon.scrape()
    assert metrics.value("rdsproxy_discovery_cycles_total", result="ok") >= 1
    assert metrics.value("rdsproxy_discovery_cycles_total", result="error") == 0
    assert metrics.value("rdsproxy_discovery_changes_applied_total", action="create") == len(
        expected
    )
    assert metrics.value("rdsproxy_discovery_owned_resources") == len(expected)
    assert metrics.value("rdsproxy_discovery_registry_up") == 1
    assert metrics.value("rdsproxy_discovery_leader") == 1
    assert metrics.value("rdsproxy_discovery_cycles_total", result="fenced") == 0
    assert metrics.value("rdsproxy_discovery_poll_interval_seconds") == INTERVAL_S
    assert metrics.value("rdsproxy_discovery_last_success_timestamp_seconds") > time.time() - 600
    assert metrics.value("rdsproxy_discovery_build_info", version="0.1.0") == 1
    assert metrics.value("rdsproxy_discovery_cycle_duration_seconds_count") >= 1
    for account in (ACCOUNT_A, ACCOUNT_B):
        for region in REGIONS:
            assert metrics.value("rdsproxy_discovery_scope_up", account=account, region=region) == 1
            assert (
                metrics.value(
                    "rdsproxy_discovery_resources_discovered", account=account, region=region
                )
                == len(expected) / 4
            )
    assert (
        metrics.value("rdsproxy_discovery_aws_calls_total", operation="AssumeRole", outcome="ok")
        == 2
    )
    assert (
        metrics.value(
            "rdsproxy_discovery_aws_calls_total", operation="DescribeDBProxies", outcome="ok"
        )
        >= 4
    )
    # Low cardinality: no label value anywhere is a resource (or proxy) name.
    proxies = {
        p["name"] for a in fleet["accounts"] for r in a["regions"].values() for p in r["proxies"]
    }
    for samples in metrics.samples.values():
        for labels, _ in samples:
            assert not (set(labels.values()) & (expected | proxies)), labels

    code, body, _ = daemon.get("/")
    assert code == 200 and "/metrics" in body

    # Idle: SIGTERM stops it at once, with exit 0.
    assert stop(daemon) < STOP_BUDGET_S
    assert "Traceback" not in daemon.log()


def test_fleet_change_reaches_the_registry_within_one_interval(
    daemons: Daemons, emulator: EmulatorThread, fleet: dict[str, Any]
) -> None:
    daemon = daemons(base_config())
    daemon.wait_ready()
    before = daemon.scrape()

    region_a = fleet["accounts"][0]["regions"]["us-east-1"]
    region_a["proxies"].append(proxy("a-east-3"))
    remove_proxy(fleet, ACCOUNT_B, "eu-west-1", "b-west-2")
    fleet["accounts"][0]["regions"]["eu-west-1"]["proxies"][0]["tags"] = {"env": "staging"}
    emulator.set_fleet(fleet)

    # A cycle may have been running when the fleet changed and not seen it; the one after it
    # started later, so it must have. Two completed cycles later the registry is in step.
    daemon.wait_cycles(2, timeout=6 * INTERVAL_S + 10)
    registry = daemon.registry()
    assert set(registry) == fleet_names(fleet)
    changed = resource_name("a-west-1", "eu-west-1", ACCOUNT_A)
    assert registry[changed]["metadata"]["labels"]["env"] == "staging"

    after = daemon.scrape()

    def applied(metrics: Any, action: str) -> float:
        return float(metrics.value("rdsproxy_discovery_changes_applied_total", action=action))

    assert applied(after, "create") - applied(before, "create") == 2  # proxy + its endpoint
    assert applied(after, "update") - applied(before, "update") == 2  # labels of both
    assert applied(after, "delete") - applied(before, "delete") == 2
    assert after.value("rdsproxy_discovery_owned_resources") == len(fleet_names(fleet))
    assert "updated a-west-1-rdsproxy-eu-west-1-111111111111" in daemon.log()


def test_readyz_waits_for_the_first_cycle_and_follows_the_registry(
    daemons: Daemons, fleet: dict[str, Any]
) -> None:
    # The registry's directory does not exist yet: every cycle fails at the registry.
    daemon = daemons(base_config(registry={"backend": "sqlite", "path": "reg/registry.db"}))
    workdir = daemon.workdir

    def errors() -> float | None:
        value = daemon.scrape().value("rdsproxy_discovery_cycles_total", result="error")
        return value if value >= 1 else None

    wait_until(errors, timeout=20, what="a cycle to fail at the registry")
    assert daemon.get("/healthz")[0] == 200
    code, body, _ = daemon.get("/readyz")
    assert code == 503 and "registry unreachable" in body, body
    status = daemon.status()
    assert status["registry"]["reachable"] is False
    assert status["last_cycle"]["result"] == "error"
    assert status["cycles"]["completed"] == 0
    metrics = daemon.scrape()
    assert metrics.value("rdsproxy_discovery_registry_up") == 0
    assert metrics.value("rdsproxy_discovery_cycles_total", result="ok") == 0

    (workdir / "reg").mkdir()
    daemon.wait_ready(timeout=6 * INTERVAL_S + 10)

    (workdir / "reg").rename(workdir / "reg-away")

    def unready() -> bool:
        daemon.assert_running()
        return daemon.get("/readyz")[0] == 503

    wait_until(unready, timeout=6 * INTERVAL_S + 10, what="/readyz to turn 503 again")
    assert daemon.get("/healthz")[0] == 200
    assert daemon.scrape().value("rdsproxy_discovery_registry_up") == 0

    (workdir / "reg-away").rename(workdir / "reg")
    daemon.wait_ready(timeout=6 * INTERVAL_S + 10)
    assert daemon.scrape().value("rdsproxy_discovery_registry_up") == 1


def test_denied_region_is_down_keeps_its_resources_and_recovers(
    daemons: Daemons, emulator: EmulatorThread, fleet: dict[str, Any]
) -> None:
    daemon = daemons(base_config(), log_format="json")
    daemon.wait_ready()
    first_success = {
        (s["account_id"], s["region"]): s["last_success_at"]
        for s in daemon.status()["last_cycle"]["scopes"]
    }

    # Deny one region, and remove one of its proxies: the delete must be withheld, not done.
    emulator.set_faults(
        [
            {
                "account": ACCOUNT_B,
                "region": "eu-west-1",
                "operation": "DescribeDBProxies",
                "code": "AccessDenied",
            }
        ]
    )
    remove_proxy(fleet, ACCOUNT_B, "eu-west-1", "b-west-1")
    emulator.set_fleet(fleet)
    gone = {
        resource_name("b-west-1", "eu-west-1", ACCOUNT_B),
        resource_name("b-west-1-b-west-1-ro", "eu-west-1", ACCOUNT_B),
    }

    def down() -> Any:
        daemon.assert_running()
        metrics = daemon.scrape()
        up = metrics.get("rdsproxy_discovery_scope_up", account=ACCOUNT_B, region="eu-west-1")
        return metrics if up == 0 else None

    metrics = wait_until(down, timeout=6 * INTERVAL_S + 10, what="B/eu-west-1 to be down")
    for account in (ACCOUNT_A, ACCOUNT_B):
        for region in REGIONS:
            if (account, region) != (ACCOUNT_B, "eu-west-1"):
                assert (
                    metrics.value("rdsproxy_discovery_scope_up", account=account, region=region)
                    == 1
                )
    # A failed scope desires nothing, so each of its resources is a delete, withheld.
    frozen = {n for n in fleet_names(base_fleet()) if n.endswith(f"-eu-west-1-{ACCOUNT_B}")}
    assert metrics.value("rdsproxy_discovery_changes_withheld", reason="scope-failed") == len(
        frozen
    )
    assert metrics.value("rdsproxy_discovery_cycles_total", result="partial") >= 1
    assert (
        metrics.value(
            "rdsproxy_discovery_aws_calls_total", operation="DescribeDBProxies", outcome="denied"
        )
        >= 1
    )
    assert metrics.get(
        "rdsproxy_discovery_scope_last_success_timestamp_seconds",
        account=ACCOUNT_B,
        region="eu-west-1",
    )

    status = daemon.status()
    last = status["last_cycle"]
    assert last["result"] == "partial"
    scope = next(
        s for s in last["scopes"] if (s["account_id"], s["region"]) == (ACCOUNT_B, "eu-west-1")
    )
    assert scope["status"] == "failed"
    assert "rds:DescribeDBProxies" in scope["error"] and "AccessDenied" in scope["error"]
    assert scope["last_success_at"] == first_success[(ACCOUNT_B, "eu-west-1")]
    withheld = {w["name"]: w for w in last["withheld"]}
    assert set(withheld) == frozen and gone <= frozen
    assert all(w["action"] == "delete" and w["code"] == "scope-failed" for w in withheld.values())
    assert status["ready"] is True  # AWS failing one scope is not the daemon failing
    assert frozen <= set(daemon.registry())  # frozen: its resources stay

    emulator.set_faults([])

    def recovered() -> bool:
        daemon.assert_running()
        up = daemon.scrape().get(
            "rdsproxy_discovery_scope_up", account=ACCOUNT_B, region="eu-west-1"
        )
        return up == 1 and not (gone & set(daemon.registry()))

    wait_until(recovered, timeout=6 * INTERVAL_S + 10, what="B/eu-west-1 to recover")
    assert set(daemon.registry()) == fleet_names(fleet)
    assert stop(daemon) < STOP_BUDGET_S

    # JSON lines, each tagged with its cycle, and scope lines with their account and region.
    lines = daemon.json_log()
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    failed = [line for line in lines if line["message"].startswith("scope failed")]
    assert failed, "no 'scope failed' line"
    for line in failed:
        assert line["account"] == ACCOUNT_B and line["region"] == "eu-west-1", line
        assert "rds:DescribeDBProxies" in line["message"]
    finished = {line["cycle_id"] for line in lines if line["message"].startswith("cycle finished")}
    assert {line["cycle_id"] for line in failed} <= finished
    assert all("cycle_id" in line for line in lines if line["message"].startswith("cycle "))


def test_no_credential_or_external_id_in_logs_metrics_or_status(
    daemons: Daemons, emulator: EmulatorThread
) -> None:
    # One role denied (an error message about external ids), the other working.
    emulator.set_faults([{"account": ACCOUNT_B, "operation": "AssumeRole", "code": "AccessDenied"}])
    daemon = daemons(base_config(), log_format="json")
    daemon.wait_ready()
    status_text = daemon.get("/status")[1]
    metrics_text = daemon.get("/metrics")[1]
    readyz_text = daemon.get("/readyz")[1]
    assert '"status": "failed"' in status_text  # the denied role is there, reported
    assert stop(daemon) < STOP_BUDGET_S
    log_text = daemon.log()
    assert "sts:AssumeRole" in log_text

    secrets = {EXTERNAL_ID_A, EXTERNAL_ID_B} | issued_credentials(emulator)
    assert len(secrets) >= 5  # the external ids and at least one issued key, secret and token
    for where, text in (
        ("log", log_text),
        ("/status", status_text),
        ("/metrics", metrics_text),
        ("/readyz", readyz_text),
    ):
        leaked = sorted(s for s in secrets if s in text)
        assert not leaked, f"{where} shows {leaked}"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_stop_signal_mid_fetch_exits_0_within_5s(
    daemons: Daemons, emulator: EmulatorThread, sig: signal.Signals
) -> None:
    # Every DescribeDBProxies answers only after 10 s: the first cycle is stuck in its fetch.
    emulator.set_faults(
        [{"operation": "DescribeDBProxies", "code": "Timeout", "delay_seconds": 10}]
    )
    daemon = daemons(base_config())

    def in_cycle() -> bool:
        daemon.assert_running()
        return daemon.status()["cycles"]["running"] is not None

    wait_until(in_cycle, timeout=20, what="the first cycle to start")
    assert daemon.get("/readyz")[0] == 503
    elapsed = stop(daemon, sig)
    assert elapsed < STOP_BUDGET_S, f"took {elapsed:.1f}s"
    log = daemon.log()
    assert f"stopping ({sig.name})" in log
    assert "cycle cancelled" in log and "it wrote nothing" in log
    assert "Traceback" not in log
    assert not (daemon.workdir / "registry.db").exists() or daemon.registry() == {}


def test_sighup_rejects_a_broken_config_and_applies_a_good_one(
    daemons: Daemons, fleet: dict[str, Any]
) -> None:
    daemon = daemons(base_config(regions=("us-east-1",)))
    daemon.wait_ready()
    east = {n for n in fleet_names(fleet) if "-us-east-1-" in n}
    assert set(daemon.registry()) == east

    # Broken: a region that does not exist. Rejected, and the old config keeps running.
    broken = base_config(regions=("mars-central-1",))
    daemon.write_config(broken)
    daemon.send(signal.SIGHUP)

    def rejected() -> Any:
        daemon.assert_running()
        metrics = daemon.scrape()
        return (
            metrics
            if metrics.value("rdsproxy_discovery_config_reloads_total", result="rejected")
            else None
        )

    metrics = wait_until(rejected, timeout=20, what="the broken config to be rejected")
    assert metrics.value("rdsproxy_discovery_config_reloads_total", result="ok") == 0
    log = daemon.log()
    assert "config reload rejected" in log and "aws[0].regions" in log
    daemon.wait_cycles(1)
    assert daemon.get("/healthz")[0] == 200
    assert daemon.get("/readyz")[0] == 200
    assert set(daemon.registry()) == east

    # Broken YAML too.
    daemon.write_config("discovery_group: [daemon\n")
    daemon.send(signal.SIGHUP)
    wait_until(
        lambda: (
            daemon.scrape().value("rdsproxy_discovery_config_reloads_total", result="rejected") == 2
        ),
        timeout=20,
        what="the broken YAML to be rejected",
    )
    assert "broken YAML" in daemon.log()

    # Good: both regions and a longer interval; the next cycle applies it.
    daemon.write_config(base_config(poll_interval="3s"))
    daemon.send(signal.SIGHUP)
    wait_until(
        lambda: daemon.scrape().value("rdsproxy_discovery_config_reloads_total", result="ok") == 1,
        timeout=20,
        what="the good config to be taken",
    )
    assert daemon.status()["config"]["poll_interval_seconds"] == 3.0
    wait_until(
        lambda: set(daemon.registry()) == fleet_names(fleet),
        timeout=6 * 3.0 + 10,
        what="the reloaded config's regions in the registry",
    )
    assert daemon.scrape().value("rdsproxy_discovery_poll_interval_seconds") == 3.0
    assert stop(daemon) < STOP_BUDGET_S
