"""What a taken reload will hold back or orphan, logged at reload time (issue 12, hole 7b).

The plan withholds config-change deletes by itself, every cycle (`discovery.core.coverage`):
this only tells the operator at once, from the registry's current contents, what the new
config leaves behind and how to confirm it. It writes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

from discovery.core.config import Config
from discovery.core.coverage import coverage_of_config, uncovered
from discovery.core.model import StoredResource, is_owned
from discovery.core.scopes import expand_scopes
from discovery.registry.base import Registry

log = logging.getLogger(__name__)

# The log line names this many resources of each account-region, then says how many more.
NAMES_SHOWN = 5


def config_change_lines(
    old: Config,
    new: Config,
    current: Iterable[StoredResource],
    accounts: Mapping[str, str],
) -> list[str]:
    """The warnings for `old` → `new` over the registry's `current` contents (pure)."""
    current = list(current)
    lines: list[str] = []
    owned = [s for s in current if is_owned(s.resource, new.discovery_group)]
    areas = uncovered(owned, coverage_of_config(expand_scopes(new), accounts))
    if areas:
        total = sum(len(names) for names in areas.values())
        shown = "; ".join(
            f"{account or '?'}/{region}: {len(names)} ({_names(names)})"
            for (account, region), names in areas.items()
        )
        lines.append(
            f"config change: the reloaded config no longer covers {len(areas)} account-region(s) "
            f"that hold {total} resource(s) of discovery group {new.discovery_group!r}; their "
            f"deletes are withheld (code config-change) until you confirm them: {shown}. To "
            "delete them, run `discovery scan --accept-config-change` (with SQLite, while the "
            "daemon is stopped); else put the regions back"
        )
    if new.discovery_group != old.discovery_group:
        orphaned = sum(1 for s in current if is_owned(s.resource, old.discovery_group))
        lines.append(
            f"discovery_group change: {orphaned} resource(s) of discovery group "
            f"{old.discovery_group!r} are orphaned (never updated or deleted again); "
            f"`discovery registry adopt --from-group {old.discovery_group}` moves them to "
            f"{new.discovery_group!r}"
        )
    return lines


async def log_config_change(
    old: Config, new: Config, registry: Registry, accounts: Mapping[str, str]
) -> None:
    """Read the registry and log `config_change_lines`; a registry that does not answer now is
    logged too (the next cycle still withholds what it must)."""
    if not _may_leave_behind(old, new):
        return
    try:
        current = await registry.list_resources()
    except Exception as exc:  # a preview only: the plan's own rule does not depend on it
        log.warning(
            "config change: cannot read the registry to tell what the reloaded config leaves "
            "behind (%s); the next cycles withhold such deletes all the same",
            exc,
        )
        return
    for line in config_change_lines(old, new, current, accounts):
        log.warning("%s", line)


def _may_leave_behind(old: Config, new: Config) -> bool:
    return old.discovery_group != new.discovery_group or old.aws != new.aws


def _names(names: list[str]) -> str:
    shown = ", ".join(names[:NAMES_SHOWN])
    more = len(names) - NAMES_SHOWN
    return f"{shown} and {more} more" if more > 0 else shown
