"""AWS RDS Proxies → Teleport `db` resources, exactly as Teleport's Discovery Service does it.

Pure functions (DESIGN §4): skip rules, protocol/port, the generated labels, and the order in
which the matcher's selector (`core.selector`), the discovery name (`core.naming`) and the
ownership labels apply. Nothing here does I/O, logs, or changes a value it was given: each
proxy and endpoint becomes a new `Resource` or a `Skipped` with its reason.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace

from discovery.core.model import (
    LABEL_CLOUD,
    LABEL_DISCOVERED_NAME,
    LABEL_DISCOVERY_GROUP,
    LABEL_DISCOVERY_TYPE,
    LABEL_ORIGIN,
    ORIGIN_CLOUD,
    AWSInfo,
    Matching,
    Proxy,
    ProxyEndpoint,
    Resource,
    Skipped,
)
from discovery.core.naming import name_override, name_suffix, valid_name
from discovery.core.selector import selector_matches, storable, tags_to_labels

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
MATCHER_SUBTYPE = "rdsproxy"
_ARN_RE = re.compile(r"^arn:[^:]+:rds:(?P<region>[^:]+):(?P<account>\d{12}):db-proxy:(?P<id>.+)$")


@dataclass(frozen=True, kw_only=True)
class Converted:
    """Resources from one scope's proxies, everything left out, and what to warn about."""

    resources: tuple[Resource, ...]
    skipped: tuple[Skipped, ...]
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Candidate:
    """A proxy or custom endpoint as a resource-to-be: before selector, naming and ownership.

    `labels` are the generated labels with the tags on top, exactly what the selector sees.
    """

    display: str  # how reports name it: "proxy" or "proxy/endpoint"
    name: str  # before the discovery suffix
    has_override: bool  # the name came from a name tag: no suffix
    description: str
    labels: Mapping[str, str]
    protocol: str
    uri: str
    aws: AWSInfo
    tls_server_name: str = ""


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


def convert_proxies(proxies: Sequence[Proxy], matching: Matching) -> Converted:
    """All proxies of one scope → resources (filtered, named, owned), plus what was skipped."""
    outcomes = [outcome for proxy in proxies for outcome in convert_proxy(proxy, matching)]
    return Converted(
        resources=tuple(o for o in outcomes if isinstance(o, Resource)),
        skipped=tuple(o for o in outcomes if isinstance(o, Skipped)),
        warnings=unknown_statuses(proxies),
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


def convert_proxy(proxy: Proxy, matching: Matching) -> tuple[Resource | Skipped, ...]:
    """One proxy → its own resource and one per custom endpoint, or why each was left out."""
    accepted = _accept(proxy)
    if isinstance(accepted, Skipped):
        return (accepted, *_orphaned_endpoints(proxy, accepted.reason))
    tag_labels, dropped = tags_to_labels(proxy.tags, proxy.name)
    own = proxy_candidate(proxy, accepted, tag_labels, matching)
    endpoints = (
        _endpoint_outcome(proxy, endpoint, own, matching)
        for endpoint in proxy.endpoints
        if not endpoint.is_default  # the proxy's own resource already represents it
    )
    return (*dropped, resolve(own, matching), *endpoints)


def proxy_candidate(
    proxy: Proxy, meta: _ProxyMeta, tag_labels: Mapping[str, str], matching: Matching
) -> Candidate:
    """The proxy's own resource-to-be: generated labels, then its tags over them."""
    protocol, port = ENGINE_PROTOCOLS[proxy.engine_family]
    labels = {
        "account-id": meta.account_id,
        "region": meta.region,
        LABEL_CLOUD: "AWS",
        "vpc-id": proxy.vpc_id,
        "engine": proxy.engine_family,
        **tag_labels,
    }
    override = name_override(labels)
    return Candidate(
        display=proxy.name,
        name=override or proxy.name,
        has_override=bool(override),
        description=f"RDS Proxy in {meta.region}",
        labels=labels,
        protocol=protocol,
        uri=f"{proxy.endpoint}:{port}",
        aws=AWSInfo(
            region=meta.region,
            account_id=meta.account_id,
            rdsproxy_name=proxy.name,
            rdsproxy_resource_id=meta.resource_id,
            assume_role_arn=matching.assume_role_arn,
            external_id=matching.external_id,
        ),
    )


def endpoint_candidate(proxy: Proxy, endpoint: ProxyEndpoint, own: Candidate) -> Candidate:
    """A custom endpoint: the proxy's candidate (before any ownership label) plus its role."""
    _, port = ENGINE_PROTOCOLS[proxy.engine_family]
    return replace(
        own,
        display=f"{proxy.name}/{endpoint.name}",
        name=f"{own.name}-{endpoint.name}",
        description=f"RDS Proxy endpoint in {own.aws.region}",
        labels={**own.labels, "endpoint-type": endpoint.target_role},
        uri=f"{endpoint.endpoint}:{port}",
        aws=replace(own.aws, rdsproxy_custom_endpoint_name=endpoint.name),
        # The custom endpoint's certificate is the proxy's wildcard one.
        tls_server_name=proxy.endpoint,
    )


def resolve(candidate: Candidate, matching: Matching) -> Resource | Skipped:
    """Selector, then the discovery name, then storability, then the ownership labels."""
    if not selector_matches(matching.tags, candidate.labels):
        return Skipped(
            name=candidate.display,
            reason="labels do not match the matcher's tags",
            code="no-match",
        )
    name = candidate.name
    labels = dict(candidate.labels)
    if not candidate.has_override:
        suffix = name_suffix(
            name, (MATCHER_SUBTYPE, candidate.aws.region, candidate.aws.account_id)
        )
        if suffix:
            labels[LABEL_DISCOVERED_NAME] = name
            name = f"{name}-{suffix}"
    if not valid_name(name):
        return Skipped(
            name=candidate.display,
            reason=f"{name!r} is not a valid database name (letters, digits and '-')",
            code="invalid-name",
        )
    mismatch = _role_mismatch(candidate.aws)
    if mismatch:
        return Skipped(name=candidate.display, reason=mismatch, code="role-account-mismatch")
    if not _storable(candidate, labels):
        return Skipped(
            name=candidate.display,
            reason="a field AWS returned holds a character no registry can store "
            "(NUL or an unpaired surrogate)",
            code="invalid-value",
        )
    return Resource(
        name=name,
        description=candidate.description,
        # Set last, over any tag of the same key: ownership is never a tag's to claim.
        labels={
            **labels,
            LABEL_ORIGIN: ORIGIN_CLOUD,
            LABEL_CLOUD: "AWS",
            LABEL_DISCOVERY_TYPE: MATCHER_SUBTYPE,
            LABEL_DISCOVERY_GROUP: matching.discovery_group,
        },
        protocol=candidate.protocol,
        uri=candidate.uri,
        aws=candidate.aws,
        tls_server_name=candidate.tls_server_name,
    )


def _role_mismatch(aws: AWSInfo) -> str:
    """Why Teleport would reject the resource's role, "" when it would not.

    Teleport's database validation requires `assume_role_arn` to be in the database's own
    account and partition (lib/services/database.go, CheckARNPartitionAndAccount).
    """
    if not aws.assume_role_arn:
        return ""
    parts = aws.assume_role_arn.split(":")
    partition, account = parts[1], parts[4]
    if account != aws.account_id or partition != aws_partition(aws.region):
        return (
            f"assume_role_arn {aws.assume_role_arn} is not in the proxy's account "
            f"{aws.account_id} ({aws_partition(aws.region)}): Teleport rejects such a database; "
            "set the matcher's db_assume_role_arn to a role in that account"
        )
    return ""


def aws_partition(region: str) -> str:
    """The ARN partition of a region: aws, aws-cn or aws-us-gov."""
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def _storable(candidate: Candidate, labels: Mapping[str, str]) -> bool:
    aws = candidate.aws
    fields = (
        candidate.description,
        candidate.protocol,
        candidate.uri,
        candidate.tls_server_name,
        *labels.keys(),
        *labels.values(),
        aws.region,
        aws.rdsproxy_name,
        aws.rdsproxy_resource_id,
        aws.external_id,
    )
    return all(storable(text) for text in fields)


def _accept(proxy: Proxy) -> _ProxyMeta | Skipped:
    """The proxy's ARN parts when Teleport would register it, else why it is skipped."""
    reason = _proxy_skip_reason(proxy)
    meta = parse_proxy_arn(proxy.arn)
    if reason is None and meta is not None:
        return meta
    text, code = reason or (f"proxy ARN {proxy.arn!r} is not an RDS Proxy ARN", "invalid-arn")
    return Skipped(name=proxy.name, reason=text, code=code)


def _orphaned_endpoints(proxy: Proxy, why: str) -> Iterator[Skipped]:
    for endpoint in proxy.endpoints:
        if not endpoint.is_default:
            yield Skipped(
                name=f"{proxy.name}/{endpoint.name}",
                reason=f"its proxy was skipped: {why}",
                code="proxy-skipped",
            )


def _endpoint_outcome(
    proxy: Proxy, endpoint: ProxyEndpoint, own: Candidate, matching: Matching
) -> Resource | Skipped:
    reason = _endpoint_skip_reason(endpoint)
    if reason is not None:
        return Skipped(name=f"{proxy.name}/{endpoint.name}", reason=reason[0], code=reason[1])
    return resolve(endpoint_candidate(proxy, endpoint, own), matching)


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
