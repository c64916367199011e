"""A two-letter external id (issue 12, hole 11): redacted as a value, never inside other words.

AWS allows an external id as short as 2 characters. The daemon's redactor used to replace it
wherever it occurred, so `external_id: us` turned `/status`'s `"status"` key into `"stat***"`
and every `us-east-1` into `***-east-1`, in the logs and in `/status`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from discovery.emulator import EmulatorThread
from discovery.output.logs import REDACTED
from tests.daemon.conftest import ACCOUNT_B, REGIONS, base_config
from tests.harness.daemon import DaemonProcess

Daemons = Callable[..., DaemonProcess]
SHORT_ID = "us"


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_a_two_letter_external_id_leaves_logs_and_status_intact(
    daemons: Daemons, emulator: EmulatorThread, fleet: dict[str, Any], log_format: str
) -> None:
    for account in fleet["accounts"]:
        for role in account["roles"]:
            role["external_id"] = SHORT_ID
    emulator.set_fleet(fleet)
    # B's role denied: its scopes fail, so error text (about external ids) reaches logs and /status.
    emulator.set_faults([{"account": ACCOUNT_B, "operation": "AssumeRole", "code": "AccessDenied"}])
    config = base_config()
    for matcher in config["aws"]:
        matcher["external_id"] = SHORT_ID
    daemon = daemons(config, log_format=log_format)

    status = daemon.wait_completed(1)
    status_text = daemon.get("/status")[1]
    assert REDACTED not in status_text, status_text
    scopes = status["last_cycle"]["scopes"]
    assert {scope["region"] for scope in scopes} == set(REGIONS)
    assert {scope["status"] for scope in scopes} == {"ok", "failed"}
    assert all("external_id" in s["error"] for s in scopes if s["status"] == "failed"), scopes

    assert daemon.stop() == 0
    log = daemon.log()
    assert REDACTED not in log, log
    if log_format == "json":
        regions = {line.get("region") for line in daemon.json_log()}
        assert set(REGIONS) <= regions, regions
    else:
        assert all(f"region={region}" in log for region in REGIONS), log
