"""AWS RDS Proxies → Teleport `db` resources, exactly as Teleport's Discovery Service does it.

Pure functions (DESIGN §4): skip rules, protocol/port, labels from metadata and tags, the
matcher's tag selector, the discovery name suffix and the ownership labels. Nothing here does
I/O or logs; everything that is dropped comes back as a `Skipped` value with its reason.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from discovery.core.model import (
    LABEL_CLOUD,
    LABEL_DISCOVERED_NAME,
    LABEL_DISCOVERY_GROUP,
    LABEL_DISCOVERY_TYPE,
    LABEL_ORIGIN,
    ORIGIN_CLOUD,
    AWSInfo,
    Proxy,
    ProxyEndpoint,
    Resource,
    Skipped,
)

# Engine family → (protocol, port). The URI always uses this port, never the target's.
ENGINE_PROTOCOLS: Mapping[str, tuple[str, int]] = {
    "MYSQL": ("mysql", 3306),
    "POSTGRESQL": ("postgres", 5432),
    "SQLSERVER": ("sqlserver", 1433),
}
PROXY_STATUS_SKIP = frozenset(
    {
        "creating",
        "deleting",
        "incompatible-network",
        "insufficient-resource-limits",
        "suspended",
        "suspending",
    }
)
PROXY_STATUS_KEEP = frozenset({"available", "modifying", "reactivating"})
ENDPOINT_STATUS_SKIP = frozenset(
    {"creating", "deleting", "incompatible-network", "insufficient-resource-limits"}
)
ENDPOINT_STATUS_KEEP = frozenset({"available", "modifying"})

# Used with fullmatch: Python's `$` also matches before a final newline, Go's (Teleport's) not.
LABEL_KEY_RE = re.compile(r"[a-zA-Z/.0-9_:*-]+")
NAME_RE = re.compile(r"[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?")
# What no registry can hold: PostgreSQL's jsonb refuses NUL, UTF-8 refuses unpaired surrogates
# (which only a JSON escape in an AWS answer could produce). One such value in the plan would
# fail every apply of the discovery group, so it never gets there.
_UNSTORABLE_RE = re.compile("[\x00\ud800-\udfff]")
NAME_OVERRIDE_TAGS = ("TeleportDatabaseName", "teleport.dev/database_name")
MATCHER_SUBTYPE = "rdsproxy"
WILDCARD = "*"
_ARN_RE = re.compile(r"^arn:[^:]+:rds:(?P<region>[^:]+):(?P<account>\d{12}):db-proxy:(?P<id>.+)$")


@dataclass(frozen=True, kw_only=True)
class Converted:
    """Resources from one scope's proxies, everything left out, and what to warn about."""

    resources: tuple[Resource, ...]
    skipped: tuple[Skipped, ...]
    warnings: tuple[str, ...] = ()


# --- Tags and the selector ------------------------------------------------------------------


def storable(text: str) -> bool:
    """Whether every registry backend can store `text` (no NUL, no unpaired surrogate)."""
    return _UNSTORABLE_RE.search(text) is None


def tags_to_labels(tags: Mapping[str, str], owner: str) -> tuple[dict[str, str], list[Skipped]]:
    """Valid tag keys become labels; others are dropped and reported (never fatal)."""
    labels: dict[str, str] = {}
    dropped: list[Skipped] = []
    for key, value in tags.items():
        if not LABEL_KEY_RE.fullmatch(key):
            dropped.append(
                Skipped(
                    name=owner,
                    reason=f"tag key {key!r} is not a valid label key; tag dropped",
                    code="invalid-tag-key",
                )
            )
        elif not storable(value):
            dropped.append(
                Skipped(
                    name=owner,
                    reason=(
                        f"the value of tag {key!r} holds a character no registry can store "
                        "(NUL or an unpaired surrogate); tag dropped"
                    ),
                    code="invalid-tag-value",
                )
            )
        else:
            labels[key] = value
    return labels, dropped


def _glob_to_regex(pattern: str) -> re.Pattern[str]:
    return re.compile("^" + ".*".join(re.escape(p) for p in pattern.split("*")) + "$", re.S)


def value_matches(value: str, patterns: str | Sequence[str]) -> bool:
    """OR over entries: `*` any, `^...$` a regular expression, anything else an anchored glob."""
    if isinstance(patterns, str):
        patterns = (patterns,)  # a single string is one entry, not a sequence of characters
    for pattern in patterns:
        if pattern == WILDCARD:
            return True
        if pattern.startswith("^") and pattern.endswith("$"):
            if re.match(pattern, value, re.S):
                return True
        elif _glob_to_regex(pattern).match(value):
            return True
    return False


def selector_matches(
    selector: Mapping[str, str | Sequence[str]], labels: Mapping[str, str]
) -> bool:
    """Teleport's MatchLabels: `{"*": "*"}` matches all; otherwise every key present (AND)."""
    if not selector:
        return False
    wildcard = selector.get(WILDCARD, ())
    if wildcard == WILDCARD or list(wildcard) == [WILDCARD]:
        return True
    for key, patterns in selector.items():
        if key not in labels:
            return False
        if not value_matches(labels[key], patterns):
            return False
    return True


# --- Naming ---------------------------------------------------------------------------------


def _clean_part(part: str) -> str:
    part = re.sub(r"-+", "-", part.replace(" ", "-"))
    return part.strip("-")


def name_suffix(name: str, parts: Sequence[str]) -> str:
    """The discovery suffix: parts not already in the name and valid as a name tail."""
    lower = name.lower()
    kept: list[str] = []
    for raw in parts:
        part = _clean_part(raw)
        if not part or part.lower() in lower or not NAME_RE.fullmatch("a" + part):
            continue
        kept.append(part)
    return "-".join(kept)


def name_override(labels: Mapping[str, str]) -> str:
    for key in NAME_OVERRIDE_TAGS:
        value = labels.get(key, "")
        if value:
            return value
    return ""


# --- Conversion -----------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class _ProxyMeta:
    region: str
    account_id: str
    resource_id: str


def parse_proxy_arn(arn: str) -> _ProxyMeta | None:
    match = _ARN_RE.match(arn)
    if match is None:
        return None
    return _ProxyMeta(region=match["region"], account_id=match["account"], resource_id=match["id"])


def _proxy_skip_reason(proxy: Proxy) -> tuple[str, str] | None:
    if not proxy.require_tls:
        return "RequireTLS is false; Teleport only connects over TLS", "tls-disabled"
    if proxy.status in PROXY_STATUS_SKIP:
        return f"proxy status is {proxy.status!r}", f"status-{proxy.status}"
    if proxy.engine_family not in ENGINE_PROTOCOLS:
        return f"engine family {proxy.engine_family!r} is not supported", "unsupported-engine"
    if not proxy.endpoint:
        return "proxy has no endpoint", "no-endpoint"
    return None


def _endpoint_skip_reason(endpoint: ProxyEndpoint) -> tuple[str, str] | None:
    if endpoint.status in ENDPOINT_STATUS_SKIP:
        return f"endpoint status is {endpoint.status!r}", f"endpoint-status-{endpoint.status}"
    if not endpoint.endpoint:
        return "endpoint has no address", "no-endpoint"
    return None


@dataclass(frozen=True, kw_only=True)
class Matching:
    """What a matcher contributes to conversion: its selector and credentials info."""

    tags: Mapping[str, str | Sequence[str]]
    assume_role_arn: str = ""
    external_id: str = ""
    discovery_group: str


def convert_proxies(proxies: Sequence[Proxy], matching: Matching) -> Converted:
    """All proxies of one scope → resources (filtered, named, owned), plus what was skipped."""
    resources: list[Resource] = []
    skipped: list[Skipped] = []
    for proxy in proxies:
        _convert_proxy(proxy, matching, resources, skipped)
    return Converted(
        resources=tuple(resources), skipped=tuple(skipped), warnings=unknown_statuses(proxies)
    )


def unknown_statuses(proxies: Sequence[Proxy]) -> tuple[str, ...]:
    """Statuses Teleport does not know: kept (as Teleport does), but worth a warning."""
    warnings: list[str] = []
    for proxy in proxies:
        if proxy.status not in PROXY_STATUS_KEEP | PROXY_STATUS_SKIP:
            warnings.append(f"proxy {proxy.name}: unknown status {proxy.status!r}, kept")
        for ep in proxy.endpoints:
            if not ep.is_default and ep.status not in ENDPOINT_STATUS_KEEP | ENDPOINT_STATUS_SKIP:
                warnings.append(
                    f"endpoint {proxy.name}/{ep.name}: unknown status {ep.status!r}, kept"
                )
    return tuple(warnings)


def _convert_proxy(
    proxy: Proxy, matching: Matching, resources: list[Resource], skipped: list[Skipped]
) -> None:
    reason = _proxy_skip_reason(proxy)
    meta = parse_proxy_arn(proxy.arn)
    if reason is None and meta is None:
        reason = (f"proxy ARN {proxy.arn!r} is not an RDS Proxy ARN", "invalid-arn")
    if reason is not None or meta is None:
        text, code = reason or ("", "")
        skipped.append(Skipped(name=proxy.name, reason=text, code=code))
        for endpoint in proxy.endpoints:
            if not endpoint.is_default:
                skipped.append(
                    Skipped(
                        name=f"{proxy.name}/{endpoint.name}",
                        reason=f"its proxy was skipped: {text}",
                        code="proxy-skipped",
                    )
                )
        return

    protocol, port = ENGINE_PROTOCOLS[proxy.engine_family]
    tag_labels, dropped = tags_to_labels(proxy.tags, proxy.name)
    skipped.extend(dropped)
    labels: dict[str, str] = {
        "account-id": meta.account_id,
        "region": meta.region,
        LABEL_CLOUD: "AWS",
        "vpc-id": proxy.vpc_id,
        "engine": proxy.engine_family,
    }
    labels.update(tag_labels)
    aws = AWSInfo(
        region=meta.region,
        account_id=meta.account_id,
        rdsproxy_name=proxy.name,
        rdsproxy_resource_id=meta.resource_id,
        assume_role_arn=matching.assume_role_arn,
        external_id=matching.external_id,
    )
    override = name_override(labels)
    base_name = override or proxy.name
    _emit(
        resources,
        skipped,
        matching,
        display=proxy.name,
        name=base_name,
        has_override=bool(override),
        description=f"RDS Proxy in {meta.region}",
        labels=labels,
        protocol=protocol,
        uri=f"{proxy.endpoint}:{port}",
        aws=aws,
        tls_server_name="",
    )
    for endpoint in proxy.endpoints:
        if endpoint.is_default:
            continue  # the proxy's own resource already represents it
        display = f"{proxy.name}/{endpoint.name}"
        ep_reason = _endpoint_skip_reason(endpoint)
        if ep_reason is not None:
            skipped.append(Skipped(name=display, reason=ep_reason[0], code=ep_reason[1]))
            continue
        _emit(
            resources,
            skipped,
            matching,
            display=display,
            name=f"{base_name}-{endpoint.name}",
            has_override=bool(override),
            description=f"RDS Proxy endpoint in {meta.region}",
            labels={**labels, "endpoint-type": endpoint.target_role},
            protocol=protocol,
            uri=f"{endpoint.endpoint}:{port}",
            aws=AWSInfo(
                region=aws.region,
                account_id=aws.account_id,
                rdsproxy_name=aws.rdsproxy_name,
                rdsproxy_resource_id=aws.rdsproxy_resource_id,
                rdsproxy_custom_endpoint_name=endpoint.name,
                assume_role_arn=aws.assume_role_arn,
                external_id=aws.external_id,
            ),
            tls_server_name=proxy.endpoint,
        )


def _emit(
    resources: list[Resource],
    skipped: list[Skipped],
    matching: Matching,
    *,
    display: str,
    name: str,
    has_override: bool,
    description: str,
    labels: dict[str, str],
    protocol: str,
    uri: str,
    aws: AWSInfo,
    tls_server_name: str,
) -> None:
    if not selector_matches(matching.tags, labels):
        skipped.append(
            Skipped(name=display, reason="labels do not match the matcher's tags", code="no-match")
        )
        return
    if not has_override:
        suffix = name_suffix(name, (MATCHER_SUBTYPE, aws.region, aws.account_id))
        if suffix:
            labels[LABEL_DISCOVERED_NAME] = name
            name = f"{name}-{suffix}"
    if not NAME_RE.fullmatch(name):
        skipped.append(
            Skipped(
                name=display,
                reason=f"{name!r} is not a valid database name (letters, digits and '-')",
                code="invalid-name",
            )
        )
        return
    fields = (description, protocol, uri, tls_server_name, *labels.keys(), *labels.values())
    aws_fields = (aws.region, aws.rdsproxy_name, aws.rdsproxy_resource_id, aws.external_id)
    if not all(storable(text) for text in (*fields, *aws_fields)):
        skipped.append(
            Skipped(
                name=display,
                reason="a field AWS returned holds a character no registry can store "
                "(NUL or an unpaired surrogate)",
                code="invalid-value",
            )
        )
        return
    labels[LABEL_ORIGIN] = ORIGIN_CLOUD
    labels[LABEL_CLOUD] = "AWS"
    labels[LABEL_DISCOVERY_TYPE] = MATCHER_SUBTYPE
    labels[LABEL_DISCOVERY_GROUP] = matching.discovery_group
    resources.append(
        Resource(
            name=name,
            description=description,
            labels=labels,
            protocol=protocol,
            uri=uri,
            aws=aws,
            tls_server_name=tls_server_name,
        )
    )
