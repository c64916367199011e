"""One JSON shape for a scope everywhere: scan's JSON (DESIGN §7) and the daemon's `/status`,
both rendered from the cycle's one `CycleSummary`."""

from __future__ import annotations

import json

from discovery.core.model import Scope, ScopeResult, Skipped
from discovery.core.plan import Plan
from discovery.core.summary import CycleReport, summarize
from discovery.daemon.status import scope_status
from discovery.output.report import render_json, render_text, scope_document

ROLE = "arn:aws:iam::222222222222:role/discovery"
# DESIGN §7's scope object, in its order.
SCOPE_KEYS = [
    "matcher",
    "region",
    "account_id",
    "assume_role_arn",
    "status",
    "error",
    "resources",
    "skipped",
]

REPORT = CycleReport(
    discovery_group="g",
    dry_run=True,
    plan=Plan(
        create=(), update=(), delete=(), unchanged=0, withheld=(), owned=0, guard_tripped=False
    ),
    scopes=(
        ScopeResult(
            scope=Scope(matcher_index=0, region="us-east-1", assume_role_arn=ROLE),
            ok=True,
            account_id="222222222222",
            skipped=(Skipped(name="p", reason="TLS is off", code="tls-disabled"),),
        ),
        ScopeResult(scope=Scope(matcher_index=1, region="eu-west-1"), ok=False, error="denied"),
    ),
    applied=False,
)


def test_scan_json_scopes_are_design_scope_objects() -> None:
    doc = json.loads(render_json(REPORT))
    assert [list(s) for s in doc["scopes"]] == [SCOPE_KEYS, SCOPE_KEYS]
    east, west = doc["scopes"]
    assert east == {
        "matcher": 0,
        "region": "us-east-1",
        "account_id": "222222222222",
        "assume_role_arn": ROLE,
        "status": "ok",
        "error": "",
        "resources": 0,
        "skipped": [{"name": "p", "reason": "TLS is off"}],
    }
    assert (west["status"], west["error"], west["account_id"]) == ("failed", "denied", "")


def test_status_scopes_are_the_same_objects_plus_what_a_daemon_knows() -> None:
    scopes = summarize(REPORT, last_success={REPORT.scopes[0].scope: 0.0}).scopes
    for scope in scopes:
        status = scope_status(scope)
        assert {k: status[k] for k in SCOPE_KEYS} == scope_document(scope)
        assert set(status) - set(SCOPE_KEYS) == {
            "skipped_by_reason",
            "skipped_truncated",
            "last_success_at",
        }
        assert status["skipped_truncated"] is False
    east = scope_status(scopes[0])
    assert east["skipped_by_reason"] == {"tls-disabled": 1}
    assert east["last_success_at"] == "1970-01-01T00:00:00Z"
    assert scope_status(scopes[1])["last_success_at"] is None


def test_text_counts_come_from_the_summary() -> None:
    text = render_text(REPORT)
    assert "Planned: 0 to create, 0 to update, 0 to delete, 0 unchanged" in text
    assert "Skipped: 1" in text
    assert "1 scope(s) failed; their resources were left as they are." in text
