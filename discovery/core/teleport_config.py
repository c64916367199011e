"""Migration from Teleport: read a `teleport.yaml` and keep only what this service uses.

A Teleport Discovery Service is configured in the `discovery_service` section of teleport.yaml:
`discovery_group`, `poll_interval` and a list of `aws` matchers with Teleport's own field names
(`types`, `regions`, `tags`, `assume_role_arn`, `external_id`, plus EC2/EKS-only fields). This
module turns that section into the mapping our `Config` validates, and says what it left out:
matcher types other than `rdsproxy`, Azure/GCP/Kubernetes matchers, and Teleport-only fields.

Pure: a mapping in, a mapping plus warnings out. The YAML path of every kept field is remembered
so a validation error names the line of teleport.yaml a person has to fix.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

SECTION = "discovery_service"
# Top-level keys of Teleport's FileConfig (lib/config/fileconf.go); ours share none of them.
TELEPORT_TOP_LEVEL_KEYS = frozenset(
    {
        "version",
        "teleport",
        "auth_service",
        "ssh_service",
        "proxy_service",
        "kubernetes_service",
        "app_service",
        "db_service",
        "metrics_service",
        "debug_service",
        "windows_desktop_service",
        "tracing_service",
        SECTION,
        "okta_service",
        "jamf_service",
        "plugin_service",
        "access_graph",
    }
)
# The AWSMatcher fields we translate, and the Teleport-only ones we can ignore safely.
MATCHER_FIELDS = (
    "types",
    "regions",
    "tags",
    "assume_role_arn",
    "external_id",
    "organization",
    "assume_role_name",
    "assume_role",
)
MATCHER_IGNORED_FIELDS = frozenset({"install", "ssm", "kube_app_discovery", "setup_access_for_arn"})
# `integration` changes where credentials come from: ignoring it silently would scan with the
# wrong identity, so it is refused with a fix instead.
MATCHER_REFUSED_FIELDS = frozenset({"integration"})
SECTION_USED = ("discovery_group", "poll_interval", "aws")
SECTION_IGNORED = frozenset(
    {"enabled", "listen_addr", "azure", "gcp", "kubernetes", "access_graph"}
)
RDSPROXY = "rdsproxy"


class TeleportConfigError(ValueError):
    """teleport.yaml cannot be used; `path` is its YAML path, the message names the fix."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path


@dataclass(frozen=True, kw_only=True)
class Translated:
    """Our config as a mapping, what was left out, and where each kept matcher came from."""

    mapping: dict[str, Any]
    warnings: tuple[str, ...]
    matcher_origins: tuple[int, ...]  # index in discovery_service.aws of each kept matcher

    def original_loc(self, loc: Sequence[int | str]) -> tuple[int | str, ...]:
        """A validation error location in our config → its location in teleport.yaml."""
        parts = list(loc)
        if len(parts) >= 2 and parts[0] == "aws" and isinstance(parts[1], int):
            index = parts[1]
            if 0 <= index < len(self.matcher_origins):
                parts[1] = self.matcher_origins[index]
        return (SECTION, *parts)


def is_teleport_config(data: Mapping[str, Any]) -> bool:
    """A teleport.yaml has at least one of Teleport's top-level keys; our config has none."""
    return any(str(key) in TELEPORT_TOP_LEVEL_KEYS for key in data)


def _enabled(value: object) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in {"yes", "true", "1", "on", "y"}


def translate(data: Mapping[str, Any]) -> Translated:
    """teleport.yaml (parsed) → our config mapping plus warnings. Raises TeleportConfigError."""
    section = data.get(SECTION)
    if section is None:
        raise TeleportConfigError(
            SECTION,
            "this teleport.yaml has no discovery_service section; add one with discovery_group "
            "and aws matchers of type rdsproxy, or pass this service's own config file",
        )
    if not isinstance(section, Mapping):
        raise TeleportConfigError(SECTION, "expected a mapping")

    warnings: list[str] = []
    for key in section:
        name = str(key)
        if name in SECTION_USED or name in SECTION_IGNORED:
            continue
        raise TeleportConfigError(
            f"{SECTION}.{name}", "is not a known discovery_service setting (check its spelling)"
        )
    if "enabled" in section and not _enabled(section["enabled"]):
        warnings.append(
            f"{SECTION}.enabled is off in this teleport.yaml; its matchers are used anyway"
        )
    for other in ("azure", "gcp", "kubernetes"):
        if section.get(other):
            count = len(section[other]) if isinstance(section[other], Sequence) else 1
            warnings.append(
                f"{SECTION}.{other}: {count} matcher(s) ignored; "
                "only AWS rdsproxy matchers are used"
            )
    if section.get("access_graph"):
        warnings.append(f"{SECTION}.access_graph ignored")

    mapping: dict[str, Any] = {}
    if "discovery_group" in section:
        mapping["discovery_group"] = section["discovery_group"]
    else:
        raise TeleportConfigError(
            f"{SECTION}.discovery_group",
            "is required: set it to the discovery group this service owns (the same value as "
            "the Teleport Discovery Service it replaces, so it adopts those resources)",
        )
    if "poll_interval" in section:
        mapping["poll_interval"] = section["poll_interval"]

    raw_matchers = section.get("aws")
    if raw_matchers is None:
        raw_matchers = []
    if not isinstance(raw_matchers, Sequence) or isinstance(raw_matchers, str):
        raise TeleportConfigError(f"{SECTION}.aws", "expected a list of matchers")

    matchers: list[dict[str, Any]] = []
    origins: list[int] = []
    for index, raw in enumerate(raw_matchers):
        path = f"{SECTION}.aws[{index}]"
        if not isinstance(raw, Mapping):
            raise TeleportConfigError(path, "expected a mapping")
        matcher = _translate_matcher(raw, path, warnings)
        if matcher is not None:
            matchers.append(matcher)
            origins.append(index)
    if not matchers:
        raise TeleportConfigError(
            f"{SECTION}.aws",
            'no matcher has type "rdsproxy"; add types: ["rdsproxy"] to a matcher '
            "(other types are not handled by this service)",
        )
    mapping["aws"] = matchers
    return Translated(mapping=mapping, warnings=tuple(warnings), matcher_origins=tuple(origins))


def _translate_matcher(
    raw: Mapping[str, Any], path: str, warnings: list[str]
) -> dict[str, Any] | None:
    for key in raw:
        name = str(key)
        if name in MATCHER_FIELDS or name in MATCHER_IGNORED_FIELDS:
            continue
        if name in MATCHER_REFUSED_FIELDS:
            if raw[key]:
                raise TeleportConfigError(
                    f"{path}.{name}",
                    "AWS OIDC integrations are not supported; give this service AWS credentials "
                    "(instance role, IRSA or environment) and use assume_role_arn instead",
                )
            continue
        raise TeleportConfigError(
            f"{path}.{name}", "is not a known AWS matcher setting (check its spelling)"
        )
    types = raw.get("types")
    if isinstance(types, str):
        types = [types]
    if not isinstance(types, Sequence) or not types:
        raise TeleportConfigError(
            f"{path}.types", 'at least one type is required, e.g. types: ["rdsproxy"]'
        )
    names = [str(t) for t in types]
    others = [t for t in names if t != RDSPROXY]
    if others:
        kept = "kept for rdsproxy" if RDSPROXY in names else "matcher ignored"
        warnings.append(f"{path}.types: {', '.join(others)} not handled by this service ({kept})")
    if RDSPROXY not in names:
        return None
    for name in sorted(MATCHER_IGNORED_FIELDS):
        if raw.get(name):
            warnings.append(f"{path}.{name} ignored (it only applies to EC2/EKS discovery)")
    matcher: dict[str, Any] = {"types": [RDSPROXY]}
    for field in ("regions", "tags", "assume_role_arn", "external_id", "assume_role_name"):
        if field in raw and raw[field] is not None:
            matcher[field] = raw[field]
    if raw.get("assume_role") is not None:
        matcher.update(_translate_assume_role(raw["assume_role"], f"{path}.assume_role"))
    if raw.get("organization") is not None:
        matcher["organization"] = _translate_organization(
            raw["organization"], f"{path}.organization"
        )
    return matcher


_ASSUME_ROLE_FIELDS = {
    "role_arn": "assume_role_arn",
    "role_name": "assume_role_name",
    "external_id": "external_id",
}


def _translate_assume_role(raw: object, path: str) -> dict[str, Any]:
    """Teleport's nested `assume_role: {role_arn, role_name, external_id}` (as in its
    DiscoveryConfig resource) → our flat fields."""
    if not isinstance(raw, Mapping):
        raise TeleportConfigError(path, "expected a mapping with role_arn or role_name")
    out: dict[str, Any] = {}
    for key, value in raw.items():
        ours = _ASSUME_ROLE_FIELDS.get(str(key))
        if ours is None:
            raise TeleportConfigError(
                f"{path}.{key}",
                "is not a known assume_role setting (role_arn, role_name, external_id)",
            )
        if value:
            out[ours] = value
    return out


def _translate_organization(raw: object, path: str) -> dict[str, Any]:
    """Teleport's AWSOrganizationMatcher spelling (`organization_id`, `organizational_units:
    {include, exclude}`, `*` for the whole organization) → ours (`id`, `include_ous`,
    `exclude_ous`)."""
    if not isinstance(raw, Mapping):
        raise TeleportConfigError(path, "expected a mapping with organization_id")
    for key in raw:
        if str(key) not in ("organization_id", "organizational_units"):
            raise TeleportConfigError(
                f"{path}.{key}", "is not a known organization setting (check its spelling)"
            )
    out: dict[str, Any] = {"id": raw.get("organization_id", "")}
    units = raw.get("organizational_units") or {}
    if not isinstance(units, Mapping):
        raise TeleportConfigError(f"{path}.organizational_units", "expected include/exclude lists")
    for key in units:
        if str(key) not in ("include", "exclude"):
            raise TeleportConfigError(
                f"{path}.organizational_units.{key}", "expected include or exclude"
            )
    include = [str(u) for u in units.get("include") or []]
    if "*" in include:
        include = []  # the whole organization: its root
    out["include_ous"] = include
    out["exclude_ous"] = [str(u) for u in units.get("exclude") or []]
    return out
