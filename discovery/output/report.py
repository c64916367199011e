"""How a cycle's outcome is shown: the DESIGN §7 JSON document, YAML, and a text table.

Pure functions from a `CycleReport` to data or text.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from discovery.core.model import ScopeResult
from discovery.reconcile.cycle import CycleReport


def scope_document(result: ScopeResult) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "matcher": result.scope.matcher_index,
        "region": result.scope.region,
        "account_id": result.account_id,
        "assume_role_arn": result.scope.assume_role_arn,
        "status": "ok" if result.ok else "failed",
        "error": result.error,
        "resources": len(result.resources),
        "skipped": [{"name": s.name, "reason": s.reason} for s in result.skipped],
    }
    return doc


def report_document(report: CycleReport) -> dict[str, Any]:
    plan = report.plan
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
            "unchanged": plan.unchanged,
        },
        "withheld": [
            {"name": w.name, "action": w.action, "reason": w.reason} for w in plan.withheld
        ],
        "scopes": [scope_document(s) for s in report.scopes],
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
        f"{verb}: {len(plan.create)} to create, {len(plan.update)} to update, "
        f"{len(plan.delete)} to delete, {plan.unchanged} unchanged"
    )
    if rows:
        lines += format_table(rows, ["ACTION", "NAME", "DETAIL"])
    if plan.withheld:
        lines.append("")
        lines.append(f"Withheld: {len(plan.withheld)}")
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
            str(s.scope.matcher_index),
            s.account_id or "?",
            s.scope.region,
            "ok" if s.ok else "FAILED",
            str(len(s.resources)),
            str(len(s.skipped)),
            s.error,
        ]
        for s in report.scopes
    ]
    lines += format_table(
        scope_rows, ["MATCHER", "ACCOUNT", "REGION", "STATUS", "RESOURCES", "SKIPPED", "ERROR"]
    )
    skipped = [(s.scope.region, k) for s in report.scopes for k in s.skipped]
    if skipped:
        lines.append("")
        lines.append(f"Skipped: {len(skipped)}")
        lines += format_table(
            [[region, k.name, k.reason] for region, k in skipped], ["REGION", "NAME", "REASON"]
        )
    if plan.guard_tripped:
        lines.append("")
        lines.append(
            "Deletes withheld by the delete guard; review them, then run `discovery scan --force`."
        )
    if report.failed_scopes:
        lines.append("")
        lines.append(
            f"{report.failed_scopes} scope(s) failed; their resources were left as they are."
        )
    return "\n".join(lines) + "\n"
