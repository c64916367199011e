"""The emulated AWS estate: accounts, roles, regions, RDS Proxies and their endpoints.

A fleet is written as YAML (or JSON) and validated here; unknown keys are errors. It holds
only plain data: everything AWS would derive (ARNs, hostnames, resource ids, VPC ids) is
derived deterministically by :mod:`discovery.emulator.state` when a field is not given.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from .fleet_org import OrganizationalUnitSpec, OrganizationSpec, OrgNodeId

__all__ = [
    "Account",
    "Fault",
    "Fleet",
    "FleetError",
    "OrganizationSpec",
    "OrganizationalUnitSpec",
    "ProxyEndpointSpec",
    "ProxySpec",
    "RegionSpec",
    "Role",
    "Throttle",
    "format_validation_error",
    "generate_fleet",
    "load_fleet",
    "parse_faults",
    "parse_fleet",
    "parse_throttle",
]


class FleetError(ValueError):
    """An invalid fleet, fault list or setting; the message names the offending field."""


def _coerce_scalar_to_str(value: Any) -> Any:
    # YAML turns `1234`, `true` or `1.5` into numbers/booleans; AWS tag values are strings.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


def _coerce_tags(value: Any) -> Any:
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return {str(_coerce_scalar_to_str(k)): _coerce_scalar_to_str(v) for k, v in value.items()}
    return value


AccountId = Annotated[str, StringConstraints(pattern=r"^\d{12}$")]
RegionName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9]+(-[a-z0-9]+)+$")]
NonEmpty = Annotated[str, StringConstraints(min_length=1)]
Tags = Annotated[dict[str, str], BeforeValidator(_coerce_tags)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Role(_Strict):
    """An IAM role the base caller may assume (trust policy reduced to the external id)."""

    name: Annotated[str, StringConstraints(pattern=r"^[\w+=,.@-]{1,64}$")]
    # Set: AssumeRole must pass exactly this ExternalId. Unset: AssumeRole must pass none.
    external_id: NonEmpty | None = None
    max_session_duration: int = Field(default=3600, ge=900, le=43200)


class ProxyEndpointSpec(_Strict):
    """A custom (non-default) endpoint of a proxy."""

    name: NonEmpty
    target_role: str = "READ_WRITE"
    status: str = "available"
    endpoint: NonEmpty | None = None
    # Raw overrides merged into the DescribeDBProxyEndpoints item (null removes a field).
    extra: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _not_default(cls, v: str) -> str:
        if v == "default":
            raise ValueError("'default' is reserved for the proxy's own endpoint")
        return v


class ProxySpec(_Strict):
    name: NonEmpty
    engine_family: str = "POSTGRESQL"
    status: str = "available"
    require_tls: bool = True
    # IAMAuth of the proxy's one auth entry (a Secrets Manager secret): what `doctor` checks
    # before the Teleport Database Service can connect with IAM authentication.
    iam_auth: Literal["REQUIRED", "DISABLED", "ENABLED"] = "REQUIRED"
    vpc_id: NonEmpty | None = None
    resource_id: NonEmpty | None = None
    endpoint: NonEmpty | None = None
    tags: Tags = Field(default_factory=dict)
    # False: tag:GetResources leaves this proxy out although it is tagged, as the real
    # tagging index does while it lags behind RDS (ListTagsForResource still answers).
    in_tagging_index: bool = True
    endpoints: list[ProxyEndpointSpec] = Field(default_factory=list)
    # Raw overrides merged into the DescribeDBProxies item (null removes a field).
    extra: dict[str, Any] = Field(default_factory=dict)


class RegionSpec(_Strict):
    proxies: list[ProxySpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_names(self) -> RegionSpec:
        seen: set[str] = set()
        endpoint_names: set[str] = set()
        resource_ids: set[str] = set()
        for proxy in self.proxies:
            if proxy.name in seen:
                raise ValueError(f"duplicate proxy name {proxy.name!r}")
            seen.add(proxy.name)
            if proxy.resource_id is not None:
                if proxy.resource_id in resource_ids:
                    raise ValueError(f"duplicate resource_id {proxy.resource_id!r}")
                resource_ids.add(proxy.resource_id)
            for endpoint in proxy.endpoints:
                # Like AWS: endpoint names are unique within an account and region.
                if endpoint.name in endpoint_names:
                    raise ValueError(f"duplicate endpoint name {endpoint.name!r}")
                endpoint_names.add(endpoint.name)
        return self


def _none_to_region(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: ({} if v is None else v) for k, v in value.items()}
    return value


class Account(_Strict):
    id: AccountId
    roles: list[Role] = Field(default_factory=list)
    regions: Annotated[dict[RegionName, RegionSpec], BeforeValidator(_none_to_region)] = Field(
        default_factory=dict
    )
    # Membership of the fleet's organization: the parent (root or OU id); None: not a member.
    ou: OrgNodeId | None = None
    status: Literal["ACTIVE", "SUSPENDED", "PENDING_CLOSURE"] = "ACTIVE"
    # What account:ListRegions answers as enabled; None: the keys of `regions`.
    enabled_regions: list[RegionName] | None = None
    # Listed by account:ListRegions as DISABLED (opt-in regions not opted into).
    disabled_regions: list[RegionName] = Field(default_factory=list)

    @property
    def listed_regions(self) -> list[str]:
        return list(self.regions) if self.enabled_regions is None else list(self.enabled_regions)

    @model_validator(mode="after")
    def _unique_roles(self) -> Account:
        names = [r.name for r in self.roles]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate role name(s) {dupes}")
        return self


class Fleet(_Strict):
    caller_account: AccountId = "000000000000"
    # When set, every credential issued by AssumeRole lives this long, whatever the request
    # asks for (may be shorter than AWS's 900 s minimum, to test refresh and expiry).
    credential_duration_seconds: int | None = Field(default=None, ge=1)
    accounts: list[Account] = Field(default_factory=list)
    organization: OrganizationSpec | None = None

    @model_validator(mode="after")
    def _unique_accounts(self) -> Fleet:
        ids = [a.id for a in self.accounts]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"duplicate account id(s) {dupes}")
        org = self.organization
        nodes = {org.root_id, *(ou.id for ou in org.ous)} if org else set()
        for ou in org.ous if org else ():
            if ou.parent not in nodes:
                raise ValueError(f"OU {ou.id}: parent {ou.parent!r} is not the root or an OU")
        for account in self.accounts:
            if account.ou is not None and account.ou not in nodes:
                raise ValueError(
                    f"account {account.id}: ou {account.ou!r} is not the organization's root "
                    "or one of its OUs (is `organization` set?)"
                )
        return self

    def account(self, account_id: str) -> Account | None:
        for account in self.accounts:
            if account.id == account_id:
                return account
        return None

    @property
    def proxy_count(self) -> int:
        return sum(len(r.proxies) for a in self.accounts for r in a.regions.values())


class Fault(_Strict):
    """A rule that makes matching calls fail, stall or return garbage.

    ``code`` is an AWS error code (answered with ``status``), or ``Timeout`` (sleep
    ``delay_seconds``, default 30, then answer normally) or ``Malformed`` (answer 200 with a
    truncated body). ``times`` limits how many calls the rule hits. For ``AssumeRole`` the
    ``account`` is the account of the requested role; otherwise the caller's account.
    """

    account: str = "*"
    region: str = "*"
    operation: str = "*"
    code: NonEmpty
    status: int | None = Field(default=None, ge=100, le=599)
    message: str | None = None
    times: int | None = Field(default=None, ge=0)
    delay_seconds: float | None = Field(default=None, ge=0)

    def matches(self, operation: str, account: str, region: str) -> bool:
        return (
            self.operation in ("*", operation)
            and self.account in ("*", account)
            and self.region in ("*", region)
        )


class Throttle(_Strict):
    """A token bucket per (service, account, region); AWS RDS allows ~300 then ~12/s."""

    burst: float = Field(default=300, gt=0)
    rate: float = Field(default=12, ge=0)


def format_validation_error(err: ValidationError, what: str = "fleet") -> str:
    parts = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "<root>"
        parts.append(f"{loc}: {e['msg']}")
    return f"invalid {what}: " + "; ".join(parts)


def _load_text(text: str | bytes) -> Any:
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    stripped = text.lstrip()
    if stripped.startswith(("{", "[")):
        try:
            return json.loads(text)  # fast path: big generated fleets are sent as JSON
        except json.JSONDecodeError:
            pass
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise FleetError(f"not valid YAML or JSON: {e}") from e


def parse_fleet(data: Fleet | Mapping[str, Any] | str | bytes) -> Fleet:
    """A :class:`Fleet` from a model, a mapping, or YAML/JSON text."""
    if isinstance(data, Fleet):
        return data
    if isinstance(data, str | bytes):
        data = _load_text(data)
        if data is None:
            data = {}
    if not isinstance(data, Mapping):
        raise FleetError("invalid fleet: the document must be a mapping")
    try:
        return Fleet.model_validate(data)
    except ValidationError as e:
        raise FleetError(format_validation_error(e)) from e


def load_fleet(path: str | Path) -> Fleet:
    """Read and validate a fleet file (YAML or JSON)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise FleetError(f"cannot read fleet file {path}: {e}") from e
    return parse_fleet(text)


def parse_faults(data: Iterable[Fault | Mapping[str, Any]] | str | bytes | None) -> list[Fault]:
    """A list of faults from models, mappings or YAML/JSON text (a list)."""
    if data is None:
        return []
    if isinstance(data, str | bytes):
        data = _load_text(data)
        if data is None:
            return []
    if isinstance(data, Mapping) or not isinstance(data, Iterable):
        raise FleetError("invalid faults: expected a list")
    out: list[Fault] = []
    for i, item in enumerate(data):
        if isinstance(item, Fault):
            out.append(item)
            continue
        try:
            out.append(Fault.model_validate(item))
        except ValidationError as e:
            raise FleetError(format_validation_error(e, f"fault #{i}")) from e
    return out


def parse_throttle(
    data: Throttle | Mapping[str, Any] | Sequence[float] | str | None,
) -> Throttle | None:
    """A throttle from a model, ``{"burst", "rate"}``, ``(burst, rate)`` or ``"BURST,RATE"``."""
    if data is None or isinstance(data, Throttle):
        return data
    try:
        if isinstance(data, str):
            parts = [p.strip() for p in data.split(",")]
            if len(parts) != 2:
                raise FleetError(f"invalid throttle {data!r}: expected BURST,RATE")
            return Throttle(burst=float(parts[0]), rate=float(parts[1]))
        if isinstance(data, Mapping):
            return Throttle.model_validate(data)
        burst, rate = data
        return Throttle(burst=burst, rate=rate)
    except ValidationError as e:
        raise FleetError(format_validation_error(e, "throttle")) from e
    except (TypeError, ValueError) as e:
        if isinstance(e, FleetError):
            raise
        raise FleetError(f"invalid throttle {data!r}: {e}") from e


_ENGINES = ("POSTGRESQL", "MYSQL", "SQLSERVER")


def generate_fleet(
    *,
    accounts: int = 1,
    regions: Sequence[str] = ("us-east-1",),
    proxies_per_region: int = 10,
    endpoints_per_proxy: int = 1,
    caller_account: str = "000000000000",
    first_account: int = 111111111111,
    role_name: str = "discovery",
    external_id: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> Fleet:
    """A synthetic fleet of ``accounts x regions x proxies_per_region`` proxies.

    Accounts are numbered from ``first_account``; each has a role ``role_name`` (with
    ``external_id`` if given, ``"{external_id}-{n}"`` style is left to the caller). Proxies are
    named ``proxy-00000``…, engines rotate POSTGRESQL/MYSQL/SQLSERVER, endpoints alternate
    READ_ONLY/READ_WRITE, and every proxy is tagged (``tags`` plus ``index``).
    """
    base_tags = dict(tags or {"env": "bench", "team": "platform"})
    account_list: list[dict[str, Any]] = []
    for a in range(accounts):
        acct = f"{first_account + a:012d}"
        region_map: dict[str, Any] = {}
        for region in regions:
            proxies = []
            for p in range(proxies_per_region):
                eps = [
                    {
                        "name": f"proxy-{p:05d}-ep{e}",
                        "target_role": "READ_ONLY" if e % 2 == 0 else "READ_WRITE",
                    }
                    for e in range(endpoints_per_proxy)
                ]
                proxy_tags: dict[str, str] = {**base_tags, "index": str(p)}
                proxies.append(
                    {
                        "name": f"proxy-{p:05d}",
                        "engine_family": _ENGINES[p % len(_ENGINES)],
                        "tags": proxy_tags,
                        "endpoints": eps,
                    }
                )
            region_map[region] = {"proxies": proxies}
        role: dict[str, Any] = {"name": role_name}
        if external_id is not None:
            role["external_id"] = external_id
        account_list.append({"id": acct, "roles": [role], "regions": region_map})
    return Fleet.model_validate({"caller_account": caller_account, "accounts": account_list})
