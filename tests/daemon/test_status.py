"""`/status`'s scope documents: DESIGN §7's scope shape, bounded however much a scope skipped."""

from __future__ import annotations

from discovery.core.model import Skipped
from discovery.core.summary import ScopeSummary
from discovery.daemon.status import STATUS_SKIPPED_LIMIT, scope_status
from discovery.output.report import scope_document


def a_scope(skipped: int) -> ScopeSummary:
    return ScopeSummary(
        matcher=0,
        region="us-east-1",
        account_id="111111111111",
        assume_role_arn="",
        ok=True,
        error="",
        resources=1,
        skipped=tuple(
            Skipped(name=f"p{i}", reason="labels do not match the matcher's tags", code="no-match")
            for i in range(skipped)
        ),
        last_success=0.0,
    )


def test_a_scope_in_status_is_the_report_scope_plus_what_the_daemon_knows() -> None:
    scope = a_scope(3)
    doc = scope_status(scope)
    assert {k: v for k, v in doc.items() if k in scope_document(scope)} == scope_document(scope)
    assert doc["skipped_by_reason"] == {"no-match": 3}
    assert doc["skipped_truncated"] is False
    assert doc["last_success_at"] == "1970-01-01T00:00:00Z"


def test_thousands_of_skipped_items_are_listed_up_to_the_limit_and_all_counted() -> None:
    doc = scope_status(a_scope(STATUS_SKIPPED_LIMIT * 30))
    assert len(doc["skipped"]) == STATUS_SKIPPED_LIMIT
    assert doc["skipped"][0] == {"name": "p0", "reason": "labels do not match the matcher's tags"}
    assert doc["skipped_truncated"] is True
    assert doc["skipped_by_reason"] == {"no-match": STATUS_SKIPPED_LIMIT * 30}
