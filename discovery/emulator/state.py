"""Emulator state: the fleet as AWS would show it, issued credentials, faults, throttling, stats.

Everything here is plain Python (no moto, no aiohttp) and is used from one event loop.
"""

from __future__ import annotations

import base64
import bisect
import hashlib
import json
import secrets
import string
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from .fleet import Fault, Fleet, ProxySpec, Role, Throttle

__all__ = [
    "THROTTLING_CODES",
    "Buckets",
    "CredentialStore",
    "FaultInjector",
    "FleetIndex",
    "Identity",
    "ProxyRecord",
    "RegionIndex",
    "Stats",
    "decode_token",
    "encode_token",
]

# The codes botocore's standard retry mode treats as throttling (botocore.retries.standard).
THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "TransactionInProgressException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "LimitExceededException",
        "RequestThrottled",
        "SlowDown",
        "PriorRequestNotComplete",
        "EC2ThrottledException",
    }
)

_EPOCH = datetime(2024, 1, 1, tzinfo=UTC)


def _h(*parts: str) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()


def _created(hex8: str) -> datetime:
    return _EPOCH + timedelta(seconds=int(hex8, 16) % (365 * 24 * 3600))


# ---------------------------------------------------------------------------------------------
# Paging tokens: opaque, keyset based (the sort key of the first item of the next page), so a
# page boundary never skips or repeats an item even if the fleet changes between pages.


def encode_token(key: Sequence[Any]) -> str:
    raw = json.dumps(list(key), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str) -> tuple[Any, ...] | None:
    try:
        pad = "=" * (-len(token) % 4)
        value = json.loads(base64.urlsafe_b64decode(token + pad))
    except (ValueError, TypeError):
        return None
    if not isinstance(value, list):
        return None
    return tuple(value)


# ---------------------------------------------------------------------------------------------
# The fleet as AWS shows it.


@dataclass(frozen=True)
class ProxyRecord:
    account: str
    region: str
    name: str
    arn: str
    item: dict[str, Any]  # the DescribeDBProxies item
    tag_list: list[dict[str, str]]  # [{"Key", "Value"}] in the fleet's order
    tags: dict[str, str]
    in_tagging_index: bool = True  # False: tag:GetResources leaves it out (a lagging index)


@dataclass
class RegionIndex:
    proxies: list[ProxyRecord] = field(default_factory=list)  # sorted by name
    proxy_keys: list[tuple[str]] = field(default_factory=list)
    by_name: dict[str, ProxyRecord] = field(default_factory=dict)
    endpoints: list[dict[str, Any]] = field(default_factory=list)  # sorted by endpoint_keys
    endpoint_keys: list[tuple[str, int, str]] = field(default_factory=list)
    endpoint_arns: set[str] = field(default_factory=set)


_EMPTY_REGION = RegionIndex()


def _merge_extra(item: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    for k, v in extra.items():
        if v is None:
            item.pop(k, None)
        else:
            item[k] = v
    return item


class FleetIndex:
    """Lookup structures derived once from a :class:`Fleet` (immutable afterwards)."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet
        self.regions: dict[tuple[str, str], RegionIndex] = {}
        self.by_arn: dict[str, ProxyRecord] = {}
        self.roles: dict[tuple[str, str], Role] = {}
        for account in fleet.accounts:
            for role in account.roles:
                self.roles[(account.id, role.name)] = role
            for region, spec in account.regions.items():
                self.regions[(account.id, region)] = self._build_region(
                    account.id, region, spec.proxies
                )

    def region(self, account: str, region: str) -> RegionIndex:
        return self.regions.get((account, region), _EMPTY_REGION)

    def _build_region(self, account: str, region: str, proxies: list[ProxySpec]) -> RegionIndex:
        idx = RegionIndex()
        region_hash = _h(account, region)
        host_id = region_hash[:12]
        default_vpc = "vpc-" + region_hash[12:29]
        subnets = ["subnet-" + _h("subnet", account, region, str(i))[:17] for i in range(3)]
        sg = "sg-" + _h("sg", account, region)[:17]
        endpoints: list[tuple[tuple[str, int, str], dict[str, Any]]] = []
        for spec in sorted(proxies, key=lambda p: p.name):
            ph = _h(account, region, spec.name)
            resource_id = spec.resource_id or "prx-" + ph[:17]
            arn = f"arn:aws:rds:{region}:{account}:db-proxy:{resource_id}"
            vpc = spec.vpc_id or default_vpc
            host = spec.endpoint or f"{spec.name}.proxy-{host_id}.{region}.rds.amazonaws.com"
            created = _created(ph[17:25])
            item: dict[str, Any] = {
                "DBProxyName": spec.name,
                "DBProxyArn": arn,
                "Status": spec.status,
                "EngineFamily": spec.engine_family,
                "VpcId": vpc,
                "VpcSecurityGroupIds": [sg],
                "VpcSubnetIds": list(subnets),
                "DefaultAuthScheme": "NONE",
                "Auth": [
                    {
                        "AuthScheme": "SECRETS",
                        "SecretArn": (
                            f"arn:aws:secretsmanager:{region}:{account}:secret:{spec.name}"
                        ),
                        "IAMAuth": spec.iam_auth,
                    }
                ],
                "RoleArn": f"arn:aws:iam::{account}:role/rds-proxy-{spec.name}"[:2048],
                "Endpoint": host,
                "RequireTLS": spec.require_tls,
                "IdleClientTimeout": 1800,
                "DebugLogging": False,
                "CreatedDate": created,
                "UpdatedDate": created,
                "EndpointNetworkType": "IPV4",
                "TargetConnectionNetworkType": "IPV4",
            }
            _merge_extra(item, spec.extra)
            tag_list = [{"Key": k, "Value": v} for k, v in spec.tags.items()]
            record = ProxyRecord(
                account,
                region,
                spec.name,
                arn,
                item,
                tag_list,
                dict(spec.tags),
                in_tagging_index=spec.in_tagging_index,
            )
            idx.proxies.append(record)
            idx.proxy_keys.append((spec.name,))
            idx.by_name[spec.name] = record
            self.by_arn[arn] = record

            default_ep = {
                "DBProxyEndpointName": "default",
                "DBProxyEndpointArn": (
                    f"arn:aws:rds:{region}:{account}:db-proxy-endpoint:prx-endpoint-{ph[25:42]}"
                ),
                "DBProxyName": spec.name,
                "Status": spec.status,
                "VpcId": vpc,
                "VpcSecurityGroupIds": [sg],
                "VpcSubnetIds": list(subnets),
                "Endpoint": host,
                "CreatedDate": created,
                "TargetRole": "READ_WRITE",
                "IsDefault": True,
                "EndpointNetworkType": "IPV4",
            }
            endpoints.append(((spec.name, 0, "default"), default_ep))
            for ep in spec.endpoints:
                eh = _h(account, region, spec.name, ep.name)
                ep_item: dict[str, Any] = {
                    "DBProxyEndpointName": ep.name,
                    "DBProxyEndpointArn": (
                        f"arn:aws:rds:{region}:{account}:db-proxy-endpoint:prx-endpoint-{eh[:17]}"
                    ),
                    "DBProxyName": spec.name,
                    "Status": ep.status,
                    "VpcId": vpc,
                    "VpcSecurityGroupIds": [sg],
                    "VpcSubnetIds": list(subnets),
                    "Endpoint": ep.endpoint
                    or f"{ep.name}.endpoint.proxy-{host_id}.{region}.rds.amazonaws.com",
                    "CreatedDate": _created(eh[17:25]),
                    "TargetRole": ep.target_role,
                    "IsDefault": False,
                    "EndpointNetworkType": "IPV4",
                }
                _merge_extra(ep_item, ep.extra)
                endpoints.append(((spec.name, 1, ep.name), ep_item))
        endpoints.sort(key=lambda kv: kv[0])
        idx.endpoint_keys = [k for k, _ in endpoints]
        idx.endpoints = [v for _, v in endpoints]
        idx.endpoint_arns = {str(v.get("DBProxyEndpointArn")) for v in idx.endpoints}
        return idx


def page_start(keys: Sequence[tuple[Any, ...]], token: tuple[Any, ...] | None) -> int:
    """Index of the first item whose key is >= the token's key (0 without a token)."""
    if token is None:
        return 0
    try:
        return bisect.bisect_left(keys, token)
    except TypeError:
        return len(keys)


# ---------------------------------------------------------------------------------------------
# Identities and credentials.


@dataclass(frozen=True)
class Identity:
    access_key_id: str
    account: str
    arn: str
    user_id: str
    role_arn: str | None = None
    expiration: float | None = None  # epoch seconds; None = never

    def expired(self, now: float | None = None) -> bool:
        return self.expiration is not None and (now or time.time()) >= self.expiration


_ALNUM_UPPER = string.ascii_uppercase + string.digits


def _rand(n: int, alphabet: str = _ALNUM_UPPER) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(n))


class CredentialStore:
    """Credentials issued by AssumeRole (AKID -> identity). Unknown AKIDs are the base caller."""

    def __init__(self) -> None:
        self._issued: dict[str, tuple[Identity, str, str]] = {}

    def base_identity(self, access_key_id: str, caller_account: str) -> Identity:
        uid = "AIDA" + _h("user", caller_account)[:17].upper()
        return Identity(
            access_key_id=access_key_id,
            account=caller_account,
            arn=f"arn:aws:iam::{caller_account}:user/emulator",
            user_id=uid,
        )

    def lookup(self, access_key_id: str) -> Identity | None:
        entry = self._issued.get(access_key_id)
        return entry[0] if entry else None

    def issue(
        self, *, account: str, role_name: str, role_arn: str, session_name: str, duration: int
    ) -> tuple[Identity, str, str, datetime]:
        """Issue credentials; returns (identity, secret, session token, expiration)."""
        expiration = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=duration)
        akid = "ASIA" + _rand(16)
        secret = _rand(40, string.ascii_letters + string.digits + "+/")
        token = "FwoGZXIvYXdzEmulator" + _rand(200, string.ascii_letters + string.digits + "+/")
        role_id = "AROA" + _h("role", account, role_name)[:17].upper()
        identity = Identity(
            access_key_id=akid,
            account=account,
            arn=f"arn:aws:sts::{account}:assumed-role/{role_name}/{session_name}",
            user_id=f"{role_id}:{session_name}",
            role_arn=role_arn,
            expiration=expiration.timestamp(),
        )
        self._issued[akid] = (identity, secret, token)
        return identity, secret, token, expiration

    def __len__(self) -> int:
        return len(self._issued)


# ---------------------------------------------------------------------------------------------
# Faults, throttling, counters.


class FaultInjector:
    def __init__(self, faults: Iterable[Fault] = ()) -> None:
        self._faults: list[Fault] = []
        self._remaining: list[int | None] = []
        self.replace(faults)

    def replace(self, faults: Iterable[Fault]) -> None:
        self._faults = list(faults)
        self._remaining = [f.times for f in self._faults]

    def match(self, operation: str, account: str, region: str) -> Fault | None:
        """The first matching fault with hits left (consuming one hit), or None."""
        for i, fault in enumerate(self._faults):
            left = self._remaining[i]
            if left == 0 or not fault.matches(operation, account, region):
                continue
            if left is not None:
                self._remaining[i] = left - 1
            return fault
        return None

    def describe(self) -> list[dict[str, Any]]:
        return [
            {**f.model_dump(), "remaining": r}
            for f, r in zip(self._faults, self._remaining, strict=True)
        ]


class Buckets:
    """Token buckets keyed by (service, account, region)."""

    def __init__(self, throttle: Throttle | None) -> None:
        self.throttle = throttle
        self._state: dict[tuple[str, str, str], tuple[float, float]] = {}

    def take(self, key: tuple[str, str, str]) -> bool:
        t = self.throttle
        if t is None:
            return True
        now = time.monotonic()
        tokens, last = self._state.get(key, (t.burst, now))
        tokens = min(t.burst, tokens + (now - last) * t.rate)
        if tokens >= 1.0:
            self._state[key] = (tokens - 1.0, now)
            return True
        self._state[key] = (tokens, now)
        return False


class Stats:
    OUTCOMES = ("ok", "error", "throttled")

    def __init__(self) -> None:
        self.calls: Counter[tuple[str, str, str, str]] = Counter()
        # Client connections that sent a request since the last reset, by the client's
        # (host, port): a port is not reused while its connection lives, nor soon after.
        self.peers: set[Any] = set()

    def connection(self, transport: Any) -> None:
        peer = transport.get_extra_info("peername") if transport is not None else None
        if peer is not None:
            self.peers.add(tuple(peer))

    def record(self, operation: str, account: str, region: str, outcome: str) -> None:
        self.calls[(operation, account, region, outcome)] += 1

    def reset(self) -> None:
        self.calls.clear()
        self.peers.clear()

    def snapshot(self) -> dict[str, Any]:
        by_op: dict[str, dict[str, int]] = {}
        for (op, _a, _r, outcome), n in self.calls.items():
            d = by_op.setdefault(op, dict.fromkeys(self.OUTCOMES, 0))
            d[outcome] = d.get(outcome, 0) + n
        return {
            "total": sum(self.calls.values()),
            "connections": len(self.peers),
            "by_operation": dict(sorted(by_op.items())),
            "calls": [
                {"operation": op, "account": a, "region": r, "outcome": o, "count": n}
                for (op, a, r, o), n in sorted(self.calls.items())
            ],
        }
