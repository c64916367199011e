"""How a cycle's outcome is shown: the DESIGN §7 JSON document, YAML, and a text table.

Pure functions from a `CycleReport` to data or text. The counts come from the cycle's one
`CycleSummary`, and `scope_document` is the one JSON shape of a scope (the daemon's `/status`
uses it too).
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from discovery.core.summary import CycleReport, ScopeSummary, summarize


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


def format_table(rows: list[list[str]], headers: list[str]) -> list[str]:
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return out


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


def render_text(report: CycleReport) -> str:
    plan = report.plan
    summary = summarize(report)
    lines: list[str] = []
    mode = (
        "dry run, nothing written"
        if report.dry_run
        else ("applied" if report.applied else "nothing to apply")
    )
    lines.append(f"discovery group {report.discovery_group!r} ({mode})")
    lines.append("")
    rows: list[list[str]] = []
    rows += [["create", r.name, r.uri] for r in plan.create]
    for u in plan.update:
        changed = _changed_fields(u.before.resource.to_dict(), u.after.to_dict())
        rows.append(["update", u.after.name, ", ".join(changed)])
    rows += [["delete", s.resource.name, s.resource.uri] for s in plan.delete]
    verb = "Planned" if report.dry_run else "Changes"
    lines.append(
        f"{verb}: {summary.to_create} to create, {summary.to_update} to update, "
        f"{summary.to_delete} to delete, {summary.unchanged} unchanged"
    )
    if rows:
        lines += format_table(rows, ["ACTION", "NAME", "DETAIL"])
    if plan.withheld:
        lines.append("")
        lines.append(f"Withheld: {summary.withheld}")
        groups: dict[tuple[str, str], list[str]] = {}
        for w in plan.withheld:
            groups.setdefault((w.action, w.reason), []).append(w.name)
        for (action, reason), names in groups.items():
            lines.append(f"  {len(names)} {action}(s): {reason}")
            lines += [f"    {name}" for name in names]
    lines.append("")
    lines.append("Scopes:")
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
    lines += format_table(
        scope_rows, ["MATCHER", "ACCOUNT", "REGION", "STATUS", "RESOURCES", "SKIPPED", "ERROR"]
    )
    skipped = [(s.region, k) for s in summary.scopes for k in s.skipped]
    if skipped:
        lines.append("")
        lines.append(f"Skipped: {summary.skipped}")
        lines += format_table(
            [[region, k.name, k.reason] for region, k in skipped], ["REGION", "NAME", "REASON"]
        )
    if summary.guard_tripped:
        lines.append("")
        lines.append(
            "Deletes withheld by the delete guard; review them, then run `discovery scan --force`."
        )
    if summary.failed:
        lines.append("")
        lines.append(f"{summary.failed} scope(s) failed; their resources were left as they are.")
    return "\n".join(lines) + "\n"
