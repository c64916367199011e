"""Doctor's checks of a Teleport registry: tctl is there, the identity is usable, and the
identity's role may read `db` resources (`tctl get db`, the call every cycle starts with).

Writing (create/update/delete) cannot be checked without writing; the `get db` line says which
verbs the role needs besides, and a cycle names the missing one if a write is refused.
"""

from __future__ import annotations

import os
from pathlib import Path

from discovery.core.config import Config
from discovery.core.model import is_owned
from discovery.ops.diagnosis import Check, Status, failure
from discovery.registry.open import teleport_registry
from discovery.registry.teleport_tctl import TctlError

_CODES = {
    "missing": "tctl-missing",
    "identity": "tctl-identity",
    "denied": "tctl-denied",
    "unreachable": "tctl-unreachable",
    "timeout": "tctl-unreachable",
    "other": "tctl-error",
}


async def check_teleport(config: Config, config_path: Path) -> list[Check]:
    """Nothing when the registry is not a Teleport cluster."""
    if config.registry.backend != "teleport":
        return []
    registry = teleport_registry(config, config_path)
    settings = registry.tctl.settings
    checks: list[Check] = []
    found = registry.tctl.binary_path()
    if found is None:
        checks.append(failure("tctl", settings.tctl, "not found (registry.tctl)", "tctl-missing"))
        return checks
    checks.append(Check(check="tctl", status=Status.OK, subject=settings.tctl, detail=found))
    if settings.identity:
        if not os.access(settings.identity, os.R_OK) or not Path(settings.identity).is_file():
            checks.append(
                failure(
                    "tctl",
                    settings.identity,
                    "the identity file (registry.identity) is missing or unreadable",
                    "tctl-identity",
                )
            )
            return checks
        checks.append(
            Check(
                check="tctl",
                status=Status.OK,
                subject=settings.identity,
                detail=f"identity file, for {settings.auth_server}",
            )
        )
    try:
        stored = await registry.list_resources()
    except TctlError as exc:
        checks.append(failure("tctl", "get db", str(exc), _CODES[exc.kind]))
        return checks
    ours = sum(1 for s in stored if is_owned(s.resource, config.discovery_group))
    checks.append(
        Check(
            check="tctl",
            status=Status.OK,
            subject="get db",
            detail=(
                f"{len(stored)} db resource(s) readable, {ours} of discovery group "
                f"{config.discovery_group!r}; writing also needs db create, update, delete"
            ),
        )
    )
    return checks
