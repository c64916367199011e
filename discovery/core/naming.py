"""The name a discovered resource gets, as Teleport's Discovery Service names it (DESIGN §4).

The proxy's (or endpoint's) name plus a suffix of what is not already in it (matcher type,
region, account) so that the same proxy name in two accounts does not collide, unless a tag
overrides the name. Teleport refuses a name that is not a valid database name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

NAME_RE = re.compile(r"[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?")
NAME_OVERRIDE_TAGS = ("TeleportDatabaseName", "teleport.dev/database_name")


def valid_name(name: str) -> bool:
    """Letters, digits and '-', starting with a letter and not ending with '-'."""
    return NAME_RE.fullmatch(name) is not None


def _clean_part(part: str) -> str:
    part = re.sub(r"-+", "-", part.replace(" ", "-"))
    return part.strip("-")


def name_suffix(name: str, parts: Sequence[str]) -> str:
    """The discovery suffix: parts not already in the name and valid as a name tail."""
    lower = name.lower()
    kept: list[str] = []
    for raw in parts:
        part = _clean_part(raw)
        if not part or part.lower() in lower or not valid_name("a" + part):
            continue
        kept.append(part)
    return "-".join(kept)


def name_override(labels: Mapping[str, str]) -> str:
    """The name a tag asks for (the first non-empty override tag), or ""."""
    for key in NAME_OVERRIDE_TAGS:
        value = labels.get(key, "")
        if value:
            return value
    return ""
