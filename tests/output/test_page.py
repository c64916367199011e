"""The status page renderer: pure, documents in, escaped HTML out."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

from discovery.output.page import HISTORY_LIMIT, REFRESH_S, CyclePoint, chart_svg, render_page

EVIL = '<script>alert("x")</script>'


def status(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "discovery_group": "prod",
        "version": "0.1.0",
        "ready": True,
        "ready_reason": "ready",
        "role": "leader",
        "dry_run": False,
        "registry": {"backend": "sqlite", "reachable": True, "error": ""},
        "cycles": {"completed": 3, "skipped": 0, "running": None, "next_at": None},
        "last_success_at": "2026-01-01T00:00:00Z",
    }
    doc.update(overrides)
    return doc


def cycle(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": "abc123",
        "result": "partial",
        "error": "",
        "scopes": [
            {
                "matcher": 0,
                "region": "us-east-1",
                "account_id": "111111111111",
                "status": "ok",
                "error": "",
                "resources": 2,
                "last_success_at": "2026-01-01T00:00:00Z",
                "skipped": [{"name": "p1", "reason": f"{EVIL!r} is not a valid database name"}],
            },
            {
                "matcher": 0,
                "region": "eu-west-1",
                "account_id": "111111111111",
                "status": "failed",
                "error": "rds:DescribeDBProxies failed: AccessDenied — grant rds:DescribeDBProxies",
                "resources": 0,
                "last_success_at": None,
                "skipped": [],
            },
        ],
        "withheld": [
            {"name": "gone-1", "action": "delete", "reason": "r", "code": "empty-scope"},
            {"name": EVIL, "action": "create", "reason": EVIL, "code": "conflict"},
        ],
        "withheld_truncated": False,
        "delete_guard_tripped": False,
    }
    doc.update(overrides)
    return doc


def points(n: int) -> list[CyclePoint]:
    return [
        CyclePoint(
            cycle_id=f"c{i}",
            finished_at=1_700_000_000 + i,
            duration=0.5 + i,
            result="ok",
            changes=i % 3,
            withheld=0,
        )
        for i in range(n)
    ]


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)


def test_everything_from_aws_is_escaped() -> None:
    page = render_page(status(discovery_group=EVIL), cycle(), points(3)).decode()
    assert "<script" not in page
    assert "&lt;script&gt;" in page
    parser = Tags()
    parser.feed(page)
    assert "script" not in parser.tags


def test_page_shows_scopes_withheld_conflicts_role_and_refreshes() -> None:
    page = render_page(status(), cycle(), points(3)).decode()
    assert f'<meta http-equiv="refresh" content="{REFRESH_S}">' in page
    assert '<strong id="role">leader</strong>' in page
    assert '<td class="status failed">failed</td>' in page
    assert '<div class="fix">fix: grant rds:DescribeDBProxies</div>' in page
    withheld = page.split('id="withheld"')[1].split("</table>")[0]
    assert "gone-1" in withheld and "empty-scope" in withheld and "conflict" not in withheld
    conflicts = page.split('id="conflicts"')[1].split("</table>")[0]
    assert "&lt;script&gt;" in conflicts and ">conflict<" in conflicts
    assert 'id="dry-run"' not in page
    assert 'id="dry-run"' in render_page(status(dry_run=True), cycle(), []).decode()


def test_chart_covers_at_most_the_last_50_cycles() -> None:
    svg = chart_svg(points(HISTORY_LIMIT + 20))
    assert svg.startswith('<svg id="cycle-chart"')
    assert len(re.findall(r'<rect class="bar"', svg)) == HISTORY_LIMIT
    assert "c20 ok" in svg and "c19 ok" not in svg  # the oldest fell off
    assert 'id="cycle-chart"' in chart_svg([])  # no cycle yet: a note in its place


def test_before_the_first_cycle() -> None:
    page = render_page(status(), None, []).decode()
    assert "Waiting for the first cycle" in page and "No cycle has finished yet" in page
