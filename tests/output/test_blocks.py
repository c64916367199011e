"""Text reports: plain for scripts (byte-stable), rich for a terminal (fits, coloured)."""

from __future__ import annotations

import io
import re
from pathlib import Path

from rich.console import Console

from discovery.output.blocks import Line, Table, format_table, plain, rich_print

ANSI = re.compile(r"\x1b\[[0-9;]*m")
LONG = "orders-pg-orders-ro-rdsproxy-us-east-1-111111111111-with-a-long-suffix"
URI = "orders-ro.endpoint.proxy-0123456789ab.us-east-1.rds.amazonaws.com:5432"
BLOCKS = [
    Line("discovery group 'demo' (applied)", "title"),
    Table(
        ("ACTION", "NAME", "DETAIL"),
        [["create", LONG, URI], ["delete", "crm-[bold]x[/bold]", "crm.example:3306"]],
        ("create", "delete"),
    ),
    Line("1 scope(s) failed; their resources were left as they are.", "failed"),
]


def rendered(width: int, *, color: bool) -> str:
    out = io.StringIO()
    console = Console(
        file=out,
        width=width,
        force_terminal=color,
        color_system="standard" if color else None,
        no_color=not color,
    )
    rich_print(BLOCKS, console)
    return out.getvalue()


def test_plain_text_is_the_fixed_column_format_scripts_read() -> None:
    text = plain(BLOCKS)
    assert text.splitlines()[1:5] == format_table(
        [["create", LONG, URI], ["delete", "crm-[bold]x[/bold]", "crm.example:3306"]],
        ["ACTION", "NAME", "DETAIL"],
    )
    assert text.splitlines()[3].split() == ["create", LONG, URI]  # nothing cut, no colour
    assert not ANSI.search(text)


SNAPSHOT_80 = Path(__file__).parent / "snapshots" / "blocks_80.txt"


def test_a_terminal_table_fits_its_width_folding_long_names() -> None:
    text = rendered(80, color=False)
    assert all(len(line) <= 80 for line in text.splitlines())
    assert [line.rstrip() for line in text.splitlines()] == [
        line.rstrip() for line in SNAPSHOT_80.read_text().splitlines()
    ]
    # A long name folds onto more lines instead of being cut: all of it is there.
    name_column = "".join(line[9:42].strip() for line in text.splitlines()[3:6])
    assert name_column == LONG


def test_colour_on_a_terminal_by_what_each_row_is_and_none_with_no_color() -> None:
    coloured = rendered(120, color=True)
    create = next(line for line in coloured.splitlines() if "create" in line)
    delete = next(line for line in coloured.splitlines() if "delete" in line)
    assert "\x1b[32m" in create  # green
    assert "\x1b[31m" in delete  # red
    assert "\x1b[1;31m" in coloured  # the failed line, bold red
    assert not ANSI.search(rendered(120, color=False))


def test_cells_are_text_not_markup() -> None:
    # Names come from AWS (TeleportDatabaseName tags): "[bold]" is shown, never interpreted.
    assert "crm-[bold]x[/bold]" in ANSI.sub("", rendered(120, color=True))
