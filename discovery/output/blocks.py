"""Text made of lines and tables, rendered plain (for scripts) or with rich (for a terminal).

The plain form is byte-stable: fixed two-space columns, no colour, no width limit, so a script
that parses `discovery scan` output keeps working. The rich form fits the console's width
(long names and URIs fold instead of running off the screen) and colours each row by what it
is: create, update, delete, withheld, failed. `terminal_console` honours NO_COLOR; a console
that is not a terminal writes no colour.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TextIO

from rich import box
from rich.console import Console
from rich.table import Table as RichTable
from rich.text import Text

__all__ = [
    "STYLES",
    "Block",
    "Line",
    "Table",
    "format_table",
    "plain",
    "rich_print",
    "terminal_console",
]

# Style name (what a row or line is) → rich style.
STYLES = {
    "title": "bold",
    "create": "green",
    "update": "yellow",
    "delete": "red",
    "withheld": "magenta",
    "failed": "bold red",
}
# Columns that may be folded to fit the width; the others (actions, ids, counts) never are.
_FOLDABLE = frozenset({"NAME", "DETAIL", "URI", "ERROR", "REASON"})


@dataclass(frozen=True)
class Line:
    text: str = ""
    style: str = ""


@dataclass(frozen=True)
class Table:
    headers: Sequence[str]
    rows: Sequence[Sequence[str]]
    # One style name per row ("" for none); empty means no row is styled.
    row_styles: Sequence[str] = field(default=())


Block = Line | Table


def format_table(rows: Sequence[Sequence[str]], headers: Sequence[str]) -> list[str]:
    """Plain columns: each as wide as its widest cell, two spaces apart, a dashed rule."""
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return out


def plain(blocks: Sequence[Block]) -> str:
    lines: list[str] = []
    for block in blocks:
        if isinstance(block, Line):
            lines.append(block.text)
        else:
            lines += format_table(block.rows, block.headers)
    return "\n".join(lines) + "\n"


def _rich_table(table: Table) -> RichTable:
    out = RichTable(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False, header_style="bold")
    for header in table.headers:
        foldable = header in _FOLDABLE
        out.add_column(
            header,
            overflow="fold" if foldable else "ellipsis",
            no_wrap=not foldable,
            ratio=1 if foldable else None,
        )
    styles = list(table.row_styles) or [""] * len(table.rows)
    for row, style in zip(table.rows, styles, strict=True):
        # Text, not markup: names and errors come from AWS and may hold "[...]".
        out.add_row(*(Text(cell) for cell in row), style=STYLES.get(style))
    return out


def terminal_console(file: TextIO | None = None) -> Console:
    """A console for a person's terminal; with NO_COLOR set, no colour and no other styling
    (https://no-color.org: the user asked for plain text, bold is not what they want either)."""
    plain_only = bool(os.environ.get("NO_COLOR"))
    return Console(file=file, color_system=None if plain_only else "auto")


def rich_print(blocks: Sequence[Block], console: Console) -> None:
    for block in blocks:
        if isinstance(block, Line):
            console.print(Text(block.text, style=STYLES.get(block.style, "")), soft_wrap=False)
        else:
            console.print(_rich_table(block))
