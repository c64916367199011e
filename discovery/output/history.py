"""`discovery registry history`: the apply journal as a table or as JSON.

Text is for a terminal: one line per applied cycle, newest first, with at most a few names per
action (the rest counted); JSON carries every name.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from discovery.core.journal import JournalEntry
from discovery.output.report import format_table

__all__ = ["NAMES_SHOWN", "render_history_json", "render_history_text"]

# Names shown per action in the text table; the rest are counted ("+8 more").
NAMES_SHOWN = 3


def render_history_json(entries: Sequence[JournalEntry]) -> str:
    return json.dumps({"entries": [e.to_dict() for e in entries]}, indent=2) + "\n"


def render_history_text(entries: Sequence[JournalEntry]) -> str:
    if not entries:
        return "no applies journaled yet\n"
    rows = [
        [
            e.at.strftime("%Y-%m-%d %H:%M:%SZ"),
            e.cycle_id,
            e.discovery_group,
            "yes" if e.forced else "",
            str(len(e.created)),
            str(len(e.updated)),
            str(len(e.deleted)),
            _names(e),
        ]
        for e in entries
    ]
    headers = ["TIME (UTC)", "CYCLE", "GROUP", "FORCED", "CREATED", "UPDATED", "DELETED", "NAMES"]
    lines = format_table(rows, headers)
    lines.append(f"{len(entries)} apply(s), newest first")
    return "\n".join(lines) + "\n"


def _names(entry: JournalEntry) -> str:
    parts = []
    for sign, names in (("+", entry.created), ("~", entry.updated), ("-", entry.deleted)):
        if not names:
            continue
        shown = " ".join(sign + n for n in names[:NAMES_SHOWN])
        more = len(names) - NAMES_SHOWN
        parts.append(f"{shown} (+{more} more)" if more > 0 else shown)
    return " ".join(parts)
