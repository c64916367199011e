"""How a cycle's outcome is shown: the DESIGN §7 JSON document, YAML, and text (plain or rich).

Pure functions from a `CycleReport` to data or text. The counts come from the cycle's one
`CycleSummary`, and `scope_document` is the one JSON shape of a scope (the daemon's `/status`
uses it too).
"""

from __future__ import annotations

import json
from typing import Any

import yaml
from rich.console import Console

from discovery.core.summary import CycleReport, ScopeSummary, summarize
from discovery.output.blocks import Block, Line, Table, format_table, plain, rich_print

__all__ = [
    "brief_blocks",
    "format_table",
    "render_json",
    "render_rich",
    "render_text",
    "render_yaml",
    "report_document",
    "scope_document",
]


def scope_document(scope: ScopeSummary) -> dict[str, Any]:
    """DESIGN §7's scope object."""
    doc: dict[str, Any] = {
        "matcher": scope.matcher,
        "region": scope.region,
        "account_id": scope.account_id,
        "assume_role_arn": scope.assume_role_arn,
        "status": scope.status,
        "error": scope.error,
        "resources": scope.resources,
        "skipped": [{"name": s.name, "reason": s.reason} for s in scope.skipped],
    }
    return doc


def report_document(report: CycleReport) -> dict[str, Any]:
    plan = report.plan
    summary = summarize(report)
    return {
        "discovery_group": report.discovery_group,
        "dry_run": report.dry_run,
        "plan": {
            "create": [r.to_dict() for r in plan.create],
            "update": [
                {"before": u.before.resource.to_dict(), "after": u.after.to_dict()}
                for u in plan.update
            ],
            "delete": [s.resource.to_dict() for s in plan.delete],
            "unchanged": summary.unchanged,
        },
        "withheld": [
            {"name": w.name, "action": w.action, "reason": w.reason, "code": w.code}
            for w in plan.withheld
        ],
        "scopes": [scope_document(s) for s in summary.scopes],
    }


def render_json(report: CycleReport) -> str:
    return json.dumps(report_document(report), indent=2)


def render_yaml(report: CycleReport) -> str:
    return yaml.safe_dump(report_document(report), sort_keys=False, allow_unicode=True)


def _changed_fields(before: dict[str, Any], after: dict[str, Any], prefix: str = "") -> list[str]:
    fields: list[str] = []
    for key in sorted(set(before) | set(after)):
        b, a = before.get(key), after.get(key)
        if b == a:
            continue
        path = f"{prefix}.{key}" if prefix else key
        if isinstance(b, dict) and isinstance(a, dict):
            fields += _changed_fields(b, a, path)
        else:
            fields.append(path)
    return fields


def _blocks(report: CycleReport) -> list[Block]:
    """The text report as lines and tables, each with a style name; rendered plain or rich."""
    plan = report.plan
    summary = summarize(report)
    out: list[Block] = []

    def line(text: str = "", style: str = "") -> None:
        out.append(Line(text, style))

    mode = (
        "dry run, nothing written"
        if report.dry_run
        else ("applied" if report.applied else "nothing to apply")
    )
    line(f"discovery group {report.discovery_group!r} ({mode})", "title")
    line()
    rows: list[list[str]] = []
    rows += [["create", r.name, r.uri] for r in plan.create]
    for u in plan.update:
        changed = _changed_fields(u.before.resource.to_dict(), u.after.to_dict())
        rows.append(["update", u.after.name, ", ".join(changed)])
    rows += [["delete", s.resource.name, s.resource.uri] for s in plan.delete]
    verb = "Planned" if report.dry_run else "Changes"
    line(
        f"{verb}: {summary.to_create} to create, {summary.to_update} to update, "
        f"{summary.to_delete} to delete, {summary.unchanged} unchanged"
    )
    if rows:
        out.append(Table(("ACTION", "NAME", "DETAIL"), rows, tuple(r[0] for r in rows)))
    if plan.withheld:
        line()
        line(f"Withheld: {summary.withheld}", "withheld")
        groups: dict[tuple[str, str], list[str]] = {}
        for w in plan.withheld:
            groups.setdefault((w.action, w.reason), []).append(w.name)
        for (action, reason), names in groups.items():
            line(f"  {len(names)} {action}(s): {reason}", "withheld")
            for name in names:
                line(f"    {name}")
    line()
    line("Scopes:")
    scope_rows = [
        [
            str(s.matcher),
            s.account_id or "?",
            s.region,
            "ok" if s.ok else "FAILED",
            str(s.resources),
            str(len(s.skipped)),
            s.error,
        ]
        for s in summary.scopes
    ]
    out.append(
        Table(
            ("MATCHER", "ACCOUNT", "REGION", "STATUS", "RESOURCES", "SKIPPED", "ERROR"),
            scope_rows,
            tuple("" if s.ok else "failed" for s in summary.scopes),
        )
    )
    skipped = [(s.region, k) for s in summary.scopes for k in s.skipped]
    if skipped:
        line()
        line(f"Skipped: {summary.skipped}")
        out.append(
            Table(
                ("REGION", "NAME", "REASON"), [[region, k.name, k.reason] for region, k in skipped]
            )
        )
    if summary.guard_tripped:
        line()
        line(
            "Deletes withheld by the delete guard; review them, then run `discovery scan --force`.",
            "withheld",
        )
    if summary.failed:
        line()
        line(f"{summary.failed} scope(s) failed; their resources were left as they are.", "failed")
    return out


def render_text(report: CycleReport) -> str:
    """The plain report: byte-stable for scripts (no colour, no width limit)."""
    return plain(_blocks(report))


def render_rich(report: CycleReport, console: Console) -> None:
    """The report for a person at a terminal: tables fit `console`'s width, with colour."""
    rich_print(_blocks(report), console)


def brief_blocks(report: CycleReport, *, sample: int = 4) -> list[Block]:
    """A cycle at a glance (the demo): the counts, a few sample changes, withheld counts by
    code, and only the scopes that failed."""
    plan = report.plan
    summary = summarize(report)
    verb = "Planned" if report.dry_run else "Changes"
    out: list[Block] = [
        Line(
            f"{verb}: {summary.to_create} to create, {summary.to_update} to update, "
            f"{summary.to_delete} to delete, {summary.unchanged} unchanged"
        )
    ]
    rows: list[list[str]] = [["create", r.name, r.uri] for r in plan.create]
    for u in plan.update:
        changed = _changed_fields(u.before.resource.to_dict(), u.after.to_dict())
        rows.append(["update", u.after.name, ", ".join(changed)])
    rows += [["delete", s.resource.name, s.resource.uri] for s in plan.delete]
    if rows:
        shown = rows[:sample]
        out.append(Table(("ACTION", "NAME", "DETAIL"), shown, tuple(r[0] for r in shown)))
        if len(rows) > sample:
            out.append(Line(f"  … and {len(rows) - sample} more"))
    if plan.withheld:
        codes: dict[str, int] = {}
        for w in plan.withheld:
            codes[w.code] = codes.get(w.code, 0) + 1
        by_code = ", ".join(f"{n} {code}" for code, n in sorted(codes.items()))
        out.append(Line(f"Withheld: {summary.withheld} ({by_code})", "withheld"))
    failed = [s for s in summary.scopes if not s.ok]
    out.append(Line(f"Scopes: {len(summary.scopes) - len(failed)} of {len(summary.scopes)} ok"))
    if failed:
        out.append(
            Table(
                ("ACCOUNT", "REGION", "STATUS", "ERROR"),
                [[s.account_id or "?", s.region, "FAILED", s.error] for s in failed],
                tuple("failed" for _ in failed),
            )
        )
        out.append(
            Line(f"{len(failed)} scope(s) failed; their resources were left as they are.", "failed")
        )
    return out
