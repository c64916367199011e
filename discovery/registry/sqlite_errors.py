"""SQLite's errors as the registry's: one `RegistryError` naming the file and what to do.

Split from `sqlite` (connections, schema, applies) because the table of causes and fixes is
long and changes on its own.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from discovery.registry.base import RegistryError

__all__ = ["SQLITE_BUSY", "SQLITE_LOCKED", "translate"]

# Primary SQLite result codes (the low byte of an extended code).
SQLITE_PERM = 3
SQLITE_BUSY = 5
SQLITE_LOCKED = 6
SQLITE_READONLY = 8
SQLITE_IOERR = 10
SQLITE_CORRUPT = 11
SQLITE_FULL = 13
SQLITE_CANTOPEN = 14
SQLITE_AUTH = 23
SQLITE_NOTADB = 26


def translate(exc: sqlite3.Error, path: Path, busy_timeout_s: float) -> RegistryError:
    """Re-raise SQLite's error as ours, naming the file and what the operator can do."""
    code = getattr(exc, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    text = str(exc)
    lowered = text.lower()
    if primary in (SQLITE_BUSY, SQLITE_LOCKED) or "locked" in lowered:
        hint = (
            f"registry {path} is locked: another connection held its write lock for longer "
            f"than the busy timeout ({busy_timeout_s:g}s); check for another discovery process "
            "or a tool (sqlite3 shell, backup) holding the file, or raise the busy timeout"
        )
    elif primary in (SQLITE_READONLY, SQLITE_PERM, SQLITE_AUTH) or "readonly" in lowered:
        hint = (
            f"registry {path} is read-only: make the file and its directory (SQLite creates "
            "-wal and -shm files next to it) writable by the user running discovery"
        )
    elif primary == SQLITE_FULL or "disk is full" in lowered:
        hint = f"registry {path}: the disk is full; free space on its file system"
    elif primary == SQLITE_NOTADB or "not a database" in lowered:
        hint = (
            f"{path} is not an SQLite database; point registry.path at a new file or at the "
            "discovery registry"
        )
    elif primary == SQLITE_CORRUPT or "malformed" in lowered:
        hint = (
            f"registry {path} is corrupt; restore it from a backup (or move it aside: the next "
            "cycle re-creates the resources this discovery group owns)"
        )
    elif primary == SQLITE_CANTOPEN or "unable to open" in lowered:
        hint = (
            f"cannot open registry {path}: check that its directory exists and is writable "
            "by the user running discovery, and that the path is not a directory"
        )
    elif primary == SQLITE_IOERR:
        hint = f"registry {path}: I/O error; check the disk and file system"
    else:
        hint = f"registry {path}: SQLite error"
    return RegistryError(f"{hint} (sqlite: {text})")
