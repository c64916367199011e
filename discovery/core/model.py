"""Plain values shared by the pure core and the shell.

Everything here is a frozen dataclass with no behaviour beyond (de)serialisation, so the
core (conversion, plan) and the edges (AWS, registry, CLI) can exchange data without importing
each other.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

# --- What AWS told us ----------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ProxyEndpoint:
    """One entry of DescribeDBProxyEndpoints (default or custom endpoint of a proxy)."""

    name: str
    proxy_name: str
    endpoint: str
    status: str
    target_role: str
    is_default: bool
    vpc_id: str = ""


@dataclass(frozen=True, kw_only=True)
class Proxy:
    """One entry of DescribeDBProxies, with its endpoints and tags attached."""

    name: str
    arn: str
    endpoint: str
    engine_family: str
    status: str
    require_tls: bool
    vpc_id: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)
    endpoints: tuple[ProxyEndpoint, ...] = ()


# --- What the registry holds ---------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class AWSInfo:
    region: str
    account_id: str
    rdsproxy_name: str
    rdsproxy_resource_id: str
    rdsproxy_custom_endpoint_name: str = ""
    assume_role_arn: str = ""
    external_id: str = ""


@dataclass(frozen=True, kw_only=True)
class Resource:
    """A Teleport `db` v3 resource (DESIGN §5). Equality is the plan's notion of "unchanged"."""

    name: str
    description: str
    labels: Mapping[str, str]
    protocol: str
    uri: str
    aws: AWSInfo
    tls_server_name: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The DESIGN §5 document; empty optional fields are omitted."""
        rdsproxy: dict[str, str] = {"name": self.aws.rdsproxy_name}
        if self.aws.rdsproxy_custom_endpoint_name:
            rdsproxy["custom_endpoint_name"] = self.aws.rdsproxy_custom_endpoint_name
        if self.aws.rdsproxy_resource_id:
            rdsproxy["resource_id"] = self.aws.rdsproxy_resource_id
        aws: dict[str, Any] = {"region": self.aws.region, "account_id": self.aws.account_id}
        if self.aws.assume_role_arn:
            aws["assume_role_arn"] = self.aws.assume_role_arn
        if self.aws.external_id:
            aws["external_id"] = self.aws.external_id
        aws["rdsproxy"] = rdsproxy
        spec: dict[str, Any] = {"protocol": self.protocol, "uri": self.uri, "aws": aws}
        if self.tls_server_name:
            spec["tls"] = {"server_name": self.tls_server_name}
        metadata: dict[str, Any] = {"name": self.name}
        if self.description:
            metadata["description"] = self.description
        metadata["labels"] = dict(sorted(self.labels.items()))
        return {"kind": "db", "version": "v3", "metadata": metadata, "spec": spec}

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> Resource:
        """Inverse of `to_dict`. Raises KeyError/TypeError on a document that is not a db v3."""
        if doc.get("kind") != "db" or doc.get("version") != "v3":
            raise ValueError(f"not a db v3 resource: kind={doc.get('kind')!r}")
        metadata = doc["metadata"]
        spec = doc["spec"]
        aws = spec.get("aws") or {}
        rdsproxy = aws.get("rdsproxy") or {}
        return cls(
            name=str(metadata["name"]),
            description=str(metadata.get("description", "")),
            labels={str(k): str(v) for k, v in (metadata.get("labels") or {}).items()},
            protocol=str(spec["protocol"]),
            uri=str(spec["uri"]),
            aws=AWSInfo(
                region=str(aws.get("region", "")),
                account_id=str(aws.get("account_id", "")),
                rdsproxy_name=str(rdsproxy.get("name", "")),
                rdsproxy_resource_id=str(rdsproxy.get("resource_id", "")),
                rdsproxy_custom_endpoint_name=str(rdsproxy.get("custom_endpoint_name", "")),
                assume_role_arn=str(aws.get("assume_role_arn", "")),
                external_id=str(aws.get("external_id", "")),
            ),
            tls_server_name=str((spec.get("tls") or {}).get("server_name", "")),
        )


@dataclass(frozen=True, kw_only=True)
class StoredResource:
    """A resource as the registry holds it: the document plus the registry's revision."""

    resource: Resource
    revision: int


@dataclass(frozen=True, kw_only=True)
class Update:
    before: StoredResource
    after: Resource

    def __post_init__(self) -> None:
        # No backend can store a rename faithfully as an update: it is a delete and a create.
        if self.after.name != self.before.resource.name:
            raise ValueError(
                f"an update cannot rename {self.before.resource.name!r} to "
                f"{self.after.name!r}; delete and create instead"
            )


@dataclass(frozen=True, kw_only=True)
class JournalStamp:
    """Which cycle an apply belongs to: with it, the apply also writes its journal row (the
    names come from the changes themselves, see `discovery.core.journal`)."""

    cycle_id: str
    discovery_group: str
    at: datetime  # when the cycle applied, UTC (timezone-aware)
    forced: bool = False  # `scan --force`: the guards were overridden for this apply


@dataclass(frozen=True, kw_only=True)
class Changes:
    """What one apply writes, all in one transaction (with `journal`, its journal row too)."""

    create: tuple[Resource, ...] = ()
    update: tuple[Update, ...] = ()
    delete: tuple[StoredResource, ...] = ()
    journal: JournalStamp | None = None

    def __bool__(self) -> bool:
        return bool(self.create or self.update or self.delete)


# --- Where resources come from -------------------------------------------------------------


# A matcher's tag selector in hashable form: (label key, accepted values) pairs, config order.
Selector = tuple[tuple[str, tuple[str, ...]], ...]


@dataclass(frozen=True, kw_only=True)
class Matching:
    """What a matcher contributes to conversion: its selector, role fields and owner.

    The role fields are the ones the Teleport Database Service connects with
    (`spec.aws.assume_role_arn`/`external_id`): the discovery role unless the matcher names a
    `db_assume_role_arn` of its own.
    """

    tags: Mapping[str, str | Sequence[str]]
    assume_role_arn: str = ""
    external_id: str = ""
    discovery_group: str


@dataclass(frozen=True, kw_only=True)
class Scope:
    """One (matcher, role, region): the unit that is fetched, and frozen when it fails.

    It carries what converting its proxies needs (the matcher's selector and the discovery
    group), so the cycle never goes back to the config by `matcher_index`. Hashable: the
    daemon keys per-scope state by it. A scope built without a selector matches nothing.
    """

    matcher_index: int
    region: str
    assume_role_arn: str = ""
    external_id: str = ""
    selector: Selector = ()
    discovery_group: str = ""
    # The matcher's connection role, when it differs from the discovery role above.
    db_assume_role_arn: str = ""
    db_external_id: str = ""

    @property
    def role_account_id(self) -> str:
        """The account the scope is in, when the role ARN tells it; "" otherwise."""
        return self.assume_role_arn.split(":")[4] if self.assume_role_arn else ""

    @property
    def matching(self) -> Matching:
        if self.db_assume_role_arn:
            role, external_id = self.db_assume_role_arn, self.db_external_id
        else:
            role, external_id = self.assume_role_arn, self.external_id
        return Matching(
            tags=dict(self.selector),
            assume_role_arn=role,
            external_id=external_id,
            discovery_group=self.discovery_group,
        )


@dataclass(frozen=True, kw_only=True)
class Skipped:
    """Something AWS returned that did not become a resource, and why (never silent)."""

    name: str
    reason: str
    code: str  # low-cardinality reason for metrics, e.g. "tls-disabled"


@dataclass(frozen=True, kw_only=True)
class ScopeResult:
    """The outcome of one scope's fetch + conversion. A failed scope carries no resources."""

    scope: Scope
    ok: bool
    account_id: str = ""
    error: str = ""
    resources: tuple[Resource, ...] = ()
    skipped: tuple[Skipped, ...] = ()
    # What the failure means (`discovery.aws.calls.ErrorKind`'s value), "" when ok; lets
    # `discovery.core.outage` tell one failure shared by every scope from N separate ones.
    error_kind: str = ""


# --- Labels that decide ownership (DESIGN §4, §6) -----------------------------------------

LABEL_ORIGIN = "teleport.dev/origin"
LABEL_CLOUD = "teleport.dev/cloud"
LABEL_DISCOVERY_TYPE = "teleport.dev/discovery-type"
LABEL_DISCOVERY_GROUP = "teleport.internal/discovery-group-name"
LABEL_DISCOVERED_NAME = "teleport.internal/discovered-name"
ORIGIN_CLOUD = "cloud"


def is_owned(resource: Resource, discovery_group: str) -> bool:
    """Owned = origin cloud and our discovery group (DESIGN §6)."""
    labels = resource.labels
    return (
        labels.get(LABEL_ORIGIN) == ORIGIN_CLOUD
        and labels.get(LABEL_DISCOVERY_GROUP) == discovery_group
    )
