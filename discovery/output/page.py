"""The daemon's status page (`GET /`): the `/status` documents rendered as one HTML page.

For a person at a browser what `/status` is for a script: the role, the last cycles with a
chart of their duration and changes, every scope (a failed one in red, with its fix), the
withheld changes with their codes, the conflicts and what was skipped. Server-rendered, no
JavaScript; the browser reloads it every `REFRESH_S` seconds.

Pure: plain documents in (the same scrubbed dicts `/status` serializes), bytes out, so the
daemon renders it once per cycle. Every value is escaped: names, tag values and AWS error
messages are written by whoever can tag a proxy or word an error.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from typing import Any

__all__ = ["HISTORY_LIMIT", "REFRESH_S", "CyclePoint", "render_page"]

REFRESH_S = 5
# The chart (and the daemon's memory of past cycles) covers this many cycles.
HISTORY_LIMIT = 50
# The table of recent cycles shows this many of them, newest first.
TABLE_CYCLES = 10
CHART_W, CHART_H = 600, 120

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#1d1d1f;background:#fff}
h1{font-size:1.4em;margin:0 0 .3em}h2{font-size:1.1em;margin:1.4em 0 .4em}
table{border-collapse:collapse;margin:.3em 0}td,th{padding:.25em .6em;text-align:left;
vertical-align:top;border-bottom:1px solid #e3e3e3;white-space:nowrap}th{background:#f5f5f7}
td.wrap{white-space:normal;max-width:60em}tr.scope-failed{background:#fdecee}
.ok{color:#1b7f3b}.failed,.error,.fenced{color:#b00020;font-weight:600}
.partial,.warn{color:#a15c00;font-weight:600}.fix{color:#444;font-style:italic}
.muted{color:#666}.banner{padding:.4em .8em;background:#fff4d6;border:1px solid #e0b84c}
code{font-size:.95em}svg{border:1px solid #e3e3e3;background:#fafafa}
"""
_LINKS = " · ".join(
    f'<a href="{path}">{path}</a> {what}'
    for path, what in (
        ("/status", "(this page as JSON)"),
        ("/metrics", "(Prometheus)"),
        ("/healthz", "(alive)"),
        ("/readyz", "(ready)"),
    )
)
_RESULT_FILL = {"ok": "#1b7f3b", "partial": "#d08a00", "error": "#b00020", "fenced": "#b00020"}


@dataclass(frozen=True, kw_only=True)
class CyclePoint:
    """One past cycle, as the chart and the recent-cycles table show it."""

    cycle_id: str
    finished_at: float
    duration: float
    result: str
    changes: int  # creates + updates + deletes planned (applied unless dry-run or failed)
    withheld: int


def _e(value: Any) -> str:
    return escape("" if value is None else str(value), quote=True)


def _time(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _table(headers: Sequence[str], rows: Sequence[str], *, table_id: str) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    return f'<table id="{table_id}"><tr>{head}</tr>{"".join(rows)}</table>'


def _split_fix(error: str) -> tuple[str, str]:
    """Our errors end with ' — <the fix>'; the page shows the fix on a line of its own."""
    head, sep, fix = error.partition(" — ")
    return (head, fix) if sep else (error, "")


def chart_svg(points: Sequence[CyclePoint]) -> str:
    """Bars: each cycle's duration (coloured by result); dots joined by a line: its changes."""
    points = list(points)[-HISTORY_LIMIT:]
    if not points:
        return '<p class="muted" id="cycle-chart">No cycle has finished yet.</p>'
    top, bottom = 14, CHART_H - 14
    span = bottom - top
    slot = CHART_W / HISTORY_LIMIT
    longest = max(p.duration for p in points) or 1.0
    most = max(p.changes for p in points) or 1
    parts = [
        f'<svg id="cycle-chart" role="img" width="{CHART_W}" height="{CHART_H}" '
        f'viewBox="0 0 {CHART_W} {CHART_H}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>cycle duration (bars, longest {longest:.2f}s) and changes (line, most "
        f"{most}) over the last {len(points)} cycle(s)</title>",
    ]
    line = []
    for i, p in enumerate(points):
        x = i * slot
        height = max(1.0, span * p.duration / longest)
        fill = _RESULT_FILL.get(p.result, "#666")
        parts.append(
            f'<rect class="bar" x="{x + 1:.1f}" y="{bottom - height:.1f}" '
            f'width="{slot - 2:.1f}" height="{height:.1f}" fill="{fill}">'
            f"<title>{_e(p.cycle_id)} {_e(p.result)}: {p.duration:.2f}s, {p.changes} "
            f"change(s), {p.withheld} withheld</title></rect>"
        )
        line.append(f"{x + slot / 2:.1f},{bottom - span * p.changes / most:.1f}")
    parts.append(
        f'<polyline class="changes" points="{" ".join(line)}" fill="none" '
        'stroke="#2f5fd0" stroke-width="1.5"/>'
    )
    parts.append(
        f'<text x="4" y="11" font-size="10" fill="#444">{longest:.2f}s / {most} change(s)</text>'
    )
    parts.append("</svg>")
    return "".join(parts)


def _header(status: Mapping[str, Any], dry_run: bool) -> str:
    ready = "ready" if status.get("ready") else "not ready"
    registry = status.get("registry", {})
    reachable = registry.get("reachable")
    reg_state = {True: "reachable", False: "unreachable", None: "not tried yet"}[reachable]
    cycles = status.get("cycles", {})
    lines = [
        f"<h1>rdsproxy discovery — {_e(status.get('discovery_group'))}</h1>",
        '<p id="summary">'
        f'Role: <strong id="role">{_e(status.get("role"))}</strong> · '
        f'<span class="{"ok" if status.get("ready") else "failed"}">{ready}</span> '
        f'<span class="muted">({_e(status.get("ready_reason"))})</span> · '
        f"registry {_e(registry.get('backend'))} "
        f'<span class="{"failed" if reachable is False else "ok"}">{reg_state}</span>'
        f"{': ' + _e(registry.get('error')) if registry.get('error') else ''} · "
        f"version {_e(status.get('version'))}</p>",
        f'<p class="muted">Last success: {_e(status.get("last_success_at") or "never")} · '
        f"cycles completed: {_e(cycles.get('completed'))} · "
        f"running: {_e(cycles.get('running') or 'none')} · "
        f"next: {_e(cycles.get('next_at') or '—')}</p>",
    ]
    if dry_run:
        lines.insert(
            1,
            '<p class="banner" id="dry-run">dry-run: every cycle plans and reports; '
            "nothing is ever written to the registry</p>",
        )
    return "".join(lines)


def _cycles(history: Sequence[CyclePoint]) -> str:
    rows = [
        f"<tr><td><code>{_e(p.cycle_id)}</code></td><td>{_time(p.finished_at)}</td>"
        f'<td class="{_e(p.result)}">{_e(p.result)}</td><td>{p.duration:.2f}s</td>'
        f"<td>{p.changes}</td><td>{p.withheld}</td></tr>"
        for p in reversed(list(history)[-TABLE_CYCLES:])
    ]
    return f"<h2>Recent cycles</h2>{chart_svg(history)}" + _table(
        ["cycle", "finished", "result", "duration", "changes", "withheld"],
        rows,
        table_id="cycles",
    )


def _scopes(last: Mapping[str, Any]) -> str:
    rows = []
    for s in last.get("scopes", []):
        status = str(s.get("status", ""))
        head, fix = _split_fix(str(s.get("error") or ""))
        error = _e(head) + (f'<div class="fix">fix: {_e(fix)}</div>' if fix else "")
        rows.append(
            f'<tr class="scope scope-{_e(status)}"><td>{_e(s.get("matcher"))}</td>'
            f"<td>{_e(s.get('account_id') or '?')}</td><td>{_e(s.get('region'))}</td>"
            f'<td class="status {_e(status)}">{_e(status)}</td><td>{_e(s.get("resources"))}</td>'
            f"<td>{_e(s.get('last_success_at') or 'never')}</td>"
            f'<td class="wrap">{error}</td></tr>'
        )
    return "<h2>Scopes</h2>" + _table(
        ["matcher", "account", "region", "status", "resources", "last success", "error"],
        rows,
        table_id="scopes",
    )


def _withheld(last: Mapping[str, Any]) -> str:
    items = list(last.get("withheld", []))
    conflicts = [w for w in items if w.get("code") == "conflict"]
    others = [w for w in items if w.get("code") != "conflict"]

    def rows(ws: Sequence[Mapping[str, Any]]) -> list[str]:
        return [
            f'<tr class="withheld"><td>{_e(w.get("name"))}</td><td>{_e(w.get("action"))}</td>'
            f'<td><code class="code">{_e(w.get("code"))}</code></td>'
            f'<td class="wrap">{_e(w.get("reason"))}</td></tr>'
            for w in ws
        ]

    headers = ["name", "action", "code", "reason"]
    more = (
        " (the list stops here; /status counts them all)" if last.get("withheld_truncated") else ""
    )
    parts = [f"<h2>Withheld changes ({len(others)}){more}</h2>"]
    by_code = {c: n for c, n in dict(last.get("withheld_by_reason", {})).items() if c != "conflict"}
    if by_code:
        counts = ", ".join(f"<code>{_e(c)}</code> {_e(n)}" for c, n in sorted(by_code.items()))
        parts.append(f'<p id="withheld-by-code">By code: {counts}</p>')
    if last.get("delete_guard_tripped"):
        parts.append('<p class="warn">The delete guard tripped: deletes are withheld.</p>')
    parts.append(
        _table(headers, rows(others), table_id="withheld")
        if others
        else '<p class="muted" id="withheld">None.</p>'
    )
    parts.append(f"<h2>Conflicts ({len(conflicts)})</h2>")
    parts.append(
        _table(headers, rows(conflicts), table_id="conflicts")
        if conflicts
        else '<p class="muted" id="conflicts">None.</p>'
    )
    return "".join(parts)


def _skipped(last: Mapping[str, Any]) -> str:
    rows = [
        f"<tr><td>{_e(s.get('account_id') or '?')}/{_e(s.get('region'))}</td>"
        f'<td>{_e(k.get("name"))}</td><td class="wrap">{_e(k.get("reason"))}</td></tr>'
        for s in last.get("scopes", [])
        for k in s.get("skipped", [])
    ]
    if not rows:
        return ""
    return "<h2>Skipped by the conversion rules</h2>" + _table(
        ["scope", "name", "reason"], rows, table_id="skipped"
    )


def render_page(
    status: Mapping[str, Any],
    last_cycle: Mapping[str, Any] | None,
    history: Sequence[CyclePoint],
) -> bytes:
    """The page: `status` is `/status` without its last cycle, `last_cycle` its last cycle."""
    dry_run = bool(status.get("dry_run"))
    body = [_header(status, dry_run), _cycles(history)]
    if last_cycle is None:
        body.append('<p class="muted">Waiting for the first cycle.</p>')
    else:
        result = str(last_cycle.get("result", ""))
        error = last_cycle.get("error")
        body.append(
            f"<p>Last cycle <code>{_e(last_cycle.get('id'))}</code>: "
            f'<span class="{_e(result)}" id="last-result">{_e(result)}</span>'
            f"{' — ' + _e(error) if error else ''}</p>"
        )
        body.extend([_scopes(last_cycle), _withheld(last_cycle), _skipped(last_cycle)])
    page = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="refresh" content="{REFRESH_S}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>rdsproxy discovery — {_e(status.get('discovery_group'))}</title>"
        f"<style>{_CSS}</style></head><body>{''.join(body)}"
        f'<p class="muted">{_LINKS} — this page reloads every {REFRESH_S}s</p>'
        "</body></html>\n"
    )
    return page.encode("utf-8")
