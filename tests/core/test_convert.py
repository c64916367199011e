"""Conversion of RDS Proxies into `db` resources, checked against DESIGN §4 and §5.

The expectations come from the design text (which follows Teleport's Discovery Service), not from
the implementation: every skip rule, the protocol/port table, names and suffixes, labels, the tag
selector and the exact document shape.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

import pytest

from discovery.core.convert import Converted, convert_proxies
from discovery.core.model import Matching, Proxy, ProxyEndpoint, Resource

ACCOUNT = "123456789012"
REGION = "us-east-1"
GROUP = "prod"
ROLE = "arn:aws:iam::123456789012:role/discovery"
EXTERNAL_ID = "example-external-id"
SUFFIX = f"rdsproxy-{REGION}-{ACCOUNT}"

ORIGIN = "teleport.dev/origin"
CLOUD = "teleport.dev/cloud"
DISCOVERY_TYPE = "teleport.dev/discovery-type"
DISCOVERY_GROUP = "teleport.internal/discovery-group-name"
DISCOVERED_NAME = "teleport.internal/discovered-name"

MATCH_ALL: Mapping[str, Sequence[str]] = {"*": ["*"]}


def host(proxy_name: str, region: str = REGION) -> str:
    return f"{proxy_name}.proxy-cabc123xyz.{region}.rds.amazonaws.com"


def endpoint_host(endpoint_name: str, region: str = REGION) -> str:
    return f"{endpoint_name}.endpoint.proxy-cabc123xyz.{region}.rds.amazonaws.com"


def arn(resource_id: str = "prx-abc", region: str = REGION, account: str = ACCOUNT) -> str:
    return f"arn:aws:rds:{region}:{account}:db-proxy:{resource_id}"


def custom_endpoint(
    name: str,
    proxy_name: str = "rds-proxy-1",
    *,
    status: str = "available",
    role: str = "READ_ONLY",
    vpc_id: str = "vpc-0123",
) -> ProxyEndpoint:
    return ProxyEndpoint(
        name=name,
        proxy_name=proxy_name,
        endpoint=endpoint_host(name),
        status=status,
        target_role=role,
        is_default=False,
        vpc_id=vpc_id,
    )


def default_endpoint(proxy_name: str = "rds-proxy-1") -> ProxyEndpoint:
    return ProxyEndpoint(
        name="default",
        proxy_name=proxy_name,
        endpoint=host(proxy_name),
        status="available",
        target_role="READ_WRITE",
        is_default=True,
        vpc_id="vpc-0123",
    )


def make_proxy(
    name: str = "rds-proxy-1",
    *,
    engine: str = "POSTGRESQL",
    status: str = "available",
    require_tls: bool = True,
    tags: Mapping[str, str] | None = None,
    endpoints: Sequence[ProxyEndpoint] | None = None,
    proxy_arn: str | None = None,
    vpc_id: str = "vpc-0123",
    region: str = REGION,
) -> Proxy:
    return Proxy(
        name=name,
        arn=proxy_arn or arn(region=region),
        endpoint=host(name, region),
        engine_family=engine,
        status=status,
        require_tls=require_tls,
        vpc_id=vpc_id,
        tags=dict(tags or {}),
        endpoints=tuple(endpoints if endpoints is not None else [default_endpoint(name)]),
    )


def convert(
    proxies: Sequence[Proxy],
    *,
    tags: Mapping[str, Sequence[str]] = MATCH_ALL,
    assume_role_arn: str = "",
    external_id: str = "",
    group: str = GROUP,
) -> Converted:
    return convert_proxies(
        proxies,
        Matching(
            tags=tags,
            assume_role_arn=assume_role_arn,
            external_id=external_id,
            discovery_group=group,
        ),
    )


def by_name(converted: Converted) -> dict[str, Resource]:
    names = [r.name for r in converted.resources]
    assert len(names) == len(set(names)), f"duplicate resource names: {names}"
    return {r.name: r for r in converted.resources}


def skipped_text(converted: Converted) -> str:
    return " | ".join(f"{s.name}: {s.reason}" for s in converted.skipped)


PROXY_NAME = f"rds-proxy-1-{SUFFIX}"
READER_NAME = f"rds-proxy-1-reader-{SUFFIX}"


# --- Skip rules -----------------------------------------------------------------------------


PROXY_SKIPS = [
    pytest.param({"require_tls": False}, id="require-tls-false"),
    pytest.param({"status": "creating"}, id="status-creating"),
    pytest.param({"status": "deleting"}, id="status-deleting"),
    pytest.param({"status": "incompatible-network"}, id="status-incompatible-network"),
    pytest.param(
        {"status": "insufficient-resource-limits"}, id="status-insufficient-resource-limits"
    ),
    pytest.param({"status": "suspended"}, id="status-suspended"),
    pytest.param({"status": "suspending"}, id="status-suspending"),
    pytest.param({"engine": "MARIADB"}, id="engine-mariadb"),
    pytest.param({"engine": "ORACLE"}, id="engine-oracle"),
    pytest.param({"engine": ""}, id="engine-empty"),
]


@pytest.mark.parametrize("change", PROXY_SKIPS)
def test_skipped_proxy_takes_its_custom_endpoints_with_it(change: dict[str, object]) -> None:
    proxy = make_proxy(
        endpoints=[
            default_endpoint(),
            custom_endpoint("reader", role="READ_ONLY"),
            custom_endpoint("writer", role="READ_WRITE"),
        ],
        **change,  # type: ignore[arg-type]
    )

    converted = convert([proxy])

    assert converted.resources == ()
    # Never silently dropped: the proxy is reported with a reason ...
    proxy_skips = [s for s in converted.skipped if s.name == "rds-proxy-1"]
    assert proxy_skips, skipped_text(converted)
    assert all(s.reason for s in converted.skipped)
    # ... and so is each of its custom endpoints.
    for endpoint in ("reader", "writer"):
        assert any(endpoint in s.name for s in converted.skipped), skipped_text(converted)


def test_skipping_one_proxy_keeps_the_others() -> None:
    good = make_proxy("good-proxy", endpoints=[default_endpoint("good-proxy")])
    bad = make_proxy("bad-proxy", require_tls=False, endpoints=[default_endpoint("bad-proxy")])

    converted = convert([bad, good])

    assert [r.aws.rdsproxy_name for r in converted.resources] == ["good-proxy"]
    assert [s.name for s in converted.skipped] == ["bad-proxy"]


@pytest.mark.parametrize(
    "status",
    [
        pytest.param("available", id="available"),
        pytest.param("modifying", id="modifying"),
        pytest.param("reactivating", id="reactivating"),
        pytest.param("some-future-status", id="unknown-status"),
    ],
)
def test_kept_proxy_statuses_emit_proxy_and_custom_endpoints(status: str) -> None:
    proxy = make_proxy(status=status, endpoints=[default_endpoint(), custom_endpoint("reader")])

    converted = convert([proxy])

    assert set(by_name(converted)) == {PROXY_NAME, READER_NAME}


@pytest.mark.parametrize(
    "status",
    [
        pytest.param("creating", id="creating"),
        pytest.param("deleting", id="deleting"),
        pytest.param("incompatible-network", id="incompatible-network"),
        pytest.param("insufficient-resource-limits", id="insufficient-resource-limits"),
    ],
)
def test_skipped_endpoint_statuses_drop_only_that_endpoint(status: str) -> None:
    proxy = make_proxy(
        endpoints=[
            default_endpoint(),
            custom_endpoint("reader", status=status),
            custom_endpoint("writer", role="READ_WRITE"),
        ]
    )

    converted = convert([proxy])

    assert set(by_name(converted)) == {PROXY_NAME, f"rds-proxy-1-writer-{SUFFIX}"}
    reader_skips = [s for s in converted.skipped if "reader" in s.name]
    assert len(reader_skips) == 1, skipped_text(converted)
    assert reader_skips[0].reason


@pytest.mark.parametrize(
    "status",
    [
        pytest.param("available", id="available"),
        pytest.param("modifying", id="modifying"),
        pytest.param("some-future-status", id="unknown-status"),
    ],
)
def test_kept_endpoint_statuses(status: str) -> None:
    proxy = make_proxy(endpoints=[default_endpoint(), custom_endpoint("reader", status=status)])

    converted = convert([proxy])

    assert set(by_name(converted)) == {PROXY_NAME, READER_NAME}
    assert converted.skipped == ()


@pytest.mark.parametrize(
    "endpoints",
    [
        pytest.param([default_endpoint()], id="default-only"),
        pytest.param([], id="no-endpoints-listed"),
        pytest.param([default_endpoint(), custom_endpoint("reader")], id="default-and-custom"),
    ],
)
def test_default_endpoint_is_the_proxy_itself_not_emitted_twice(
    endpoints: list[ProxyEndpoint],
) -> None:
    converted = convert([make_proxy(endpoints=endpoints)])

    proxy_resources = [r for r in converted.resources if not r.aws.rdsproxy_custom_endpoint_name]
    assert [r.name for r in proxy_resources] == [PROXY_NAME]
    custom_names = [r.aws.rdsproxy_custom_endpoint_name for r in converted.resources]
    assert "default" not in custom_names
    assert len(converted.resources) == 1 + sum(not e.is_default for e in endpoints)
    assert converted.skipped == ()


def test_endpoints_are_not_filtered_by_target_role() -> None:
    proxy = make_proxy(
        endpoints=[
            default_endpoint(),
            custom_endpoint("ro", role="READ_ONLY"),
            custom_endpoint("rw", role="READ_WRITE"),
        ]
    )

    resources = by_name(convert([proxy]))

    assert resources[f"rds-proxy-1-ro-{SUFFIX}"].labels["endpoint-type"] == "READ_ONLY"
    assert resources[f"rds-proxy-1-rw-{SUFFIX}"].labels["endpoint-type"] == "READ_WRITE"
    assert "endpoint-type" not in resources[PROXY_NAME].labels


# --- Protocol, port and URI -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("engine", "protocol", "port"),
    [
        pytest.param("MYSQL", "mysql", 3306, id="mysql"),
        pytest.param("POSTGRESQL", "postgres", 5432, id="postgresql"),
        pytest.param("SQLSERVER", "sqlserver", 1433, id="sqlserver"),
    ],
)
def test_protocol_and_port_come_from_the_engine_family(
    engine: str, protocol: str, port: int
) -> None:
    proxy = make_proxy(engine=engine, endpoints=[default_endpoint(), custom_endpoint("reader")])

    resources = by_name(convert([proxy]))

    own = resources[PROXY_NAME]
    assert own.protocol == protocol
    assert own.uri == f"{host('rds-proxy-1')}:{port}"
    assert own.labels["engine"] == engine
    reader = resources[READER_NAME]
    assert reader.protocol == protocol
    assert reader.uri == f"{endpoint_host('reader')}:{port}"
    assert reader.labels["engine"] == engine


# --- The proxy's own resource ---------------------------------------------------------------


def test_proxy_resource_fields() -> None:
    proxy = make_proxy(proxy_arn=arn("prx-0a1b2c3d4e5f"), tags={"env": "prod"})

    converted = convert([proxy], assume_role_arn=ROLE, external_id=EXTERNAL_ID)

    (resource,) = converted.resources
    assert resource.name == "rds-proxy-1-rdsproxy-us-east-1-123456789012"
    assert resource.description == "RDS Proxy in us-east-1"
    assert resource.protocol == "postgres"
    assert resource.uri == f"{host('rds-proxy-1')}:5432"
    assert resource.tls_server_name == ""
    assert resource.aws.region == "us-east-1"
    assert resource.aws.account_id == "123456789012"
    assert resource.aws.rdsproxy_name == "rds-proxy-1"
    assert resource.aws.rdsproxy_resource_id == "prx-0a1b2c3d4e5f"
    assert resource.aws.rdsproxy_custom_endpoint_name == ""
    assert resource.aws.assume_role_arn == ROLE
    assert resource.aws.external_id == EXTERNAL_ID


@pytest.mark.parametrize(
    ("proxy_arn", "region", "account"),
    [
        pytest.param(
            "arn:aws:rds:eu-west-1:210987654321:db-proxy:prx-111",
            "eu-west-1",
            "210987654321",
            id="other-region-and-account",
        ),
        pytest.param(
            "arn:aws-cn:rds:cn-north-1:333333333333:db-proxy:prx-222",
            "cn-north-1",
            "333333333333",
            id="china-partition",
        ),
        pytest.param(
            "arn:aws-us-gov:rds:us-gov-west-1:444444444444:db-proxy:prx-333",
            "us-gov-west-1",
            "444444444444",
            id="govcloud-partition",
        ),
    ],
)
def test_region_and_account_come_from_the_proxy_arn(
    proxy_arn: str, region: str, account: str
) -> None:
    proxy = make_proxy("orders", proxy_arn=proxy_arn, region=region, endpoints=[])

    (resource,) = convert([proxy]).resources

    assert resource.aws.region == region
    assert resource.aws.account_id == account
    assert resource.labels["region"] == region
    assert resource.labels["account-id"] == account
    assert resource.description == f"RDS Proxy in {region}"
    assert resource.name == f"orders-rdsproxy-{region}-{account}"
    assert resource.aws.rdsproxy_resource_id == proxy_arn.rsplit(":", 1)[1]


def test_without_a_role_the_resource_carries_no_role_fields() -> None:
    (resource,) = convert([make_proxy()]).resources

    assert resource.aws.assume_role_arn == ""
    assert resource.aws.external_id == ""
    aws = resource.to_dict()["spec"]["aws"]
    assert "assume_role_arn" not in aws
    assert "external_id" not in aws


# --- Custom endpoint resources --------------------------------------------------------------


def test_custom_endpoint_resource_fields() -> None:
    proxy = make_proxy(
        engine="MYSQL",
        proxy_arn=arn("prx-0a1b2c3d4e5f"),
        endpoints=[default_endpoint(), custom_endpoint("reader", role="READ_ONLY")],
    )

    resources = by_name(convert([proxy], assume_role_arn=ROLE, external_id=EXTERNAL_ID))

    reader = resources["rds-proxy-1-reader-rdsproxy-us-east-1-123456789012"]
    assert reader.description == "RDS Proxy endpoint in us-east-1"
    assert reader.protocol == "mysql"
    assert reader.uri == f"{endpoint_host('reader')}:3306"
    # The custom endpoint's certificate is the proxy's wildcard: verify against the proxy host.
    assert reader.tls_server_name == host("rds-proxy-1")
    assert reader.aws.region == "us-east-1"
    assert reader.aws.account_id == "123456789012"
    assert reader.aws.rdsproxy_name == "rds-proxy-1"
    assert reader.aws.rdsproxy_resource_id == "prx-0a1b2c3d4e5f"
    assert reader.aws.rdsproxy_custom_endpoint_name == "reader"
    assert reader.aws.assume_role_arn == ROLE
    assert reader.aws.external_id == EXTERNAL_ID
    assert reader.labels["endpoint-type"] == "READ_ONLY"


def test_custom_endpoint_labels_are_the_proxy_labels_plus_endpoint_type() -> None:
    proxy = make_proxy(
        tags={"env": "prod", "team": "db"},
        vpc_id="vpc-proxy",
        endpoints=[default_endpoint(), custom_endpoint("reader", vpc_id="vpc-endpoint")],
    )

    resources = by_name(convert([proxy]))

    own = dict(resources[PROXY_NAME].labels)
    reader = dict(resources[READER_NAME].labels)
    assert reader.pop("endpoint-type") == "READ_ONLY"
    # Only the discovered (pre-suffix) name differs between the two.
    assert own.pop(DISCOVERED_NAME) == "rds-proxy-1"
    assert reader.pop(DISCOVERED_NAME) == "rds-proxy-1-reader"
    assert reader == own
    assert reader["vpc-id"] == "vpc-proxy"


def test_custom_endpoints_inherit_the_proxy_tags() -> None:
    proxy = make_proxy(
        tags={"env": "prod"}, endpoints=[default_endpoint(), custom_endpoint("reader")]
    )

    resources = by_name(convert([proxy]))

    assert resources[READER_NAME].labels["env"] == "prod"


# --- Labels -------------------------------------------------------------------------------


def test_generated_labels() -> None:
    proxy = make_proxy(engine="POSTGRESQL", vpc_id="vpc-0a1b", endpoints=[])

    (resource,) = convert([proxy]).resources

    assert dict(resource.labels) == {
        "account-id": ACCOUNT,
        "region": REGION,
        CLOUD: "AWS",
        "vpc-id": "vpc-0a1b",
        "engine": "POSTGRESQL",
        DISCOVERED_NAME: "rds-proxy-1",
        ORIGIN: "cloud",
        DISCOVERY_TYPE: "rdsproxy",
        DISCOVERY_GROUP: GROUP,
    }


@pytest.mark.parametrize(
    ("tag_key", "tag_value"),
    [
        pytest.param("engine", "aurora-postgres", id="engine"),
        pytest.param("vpc-id", "vpc-from-tag", id="vpc-id"),
        pytest.param("region", "somewhere", id="region"),
        pytest.param("account-id", "not-an-account", id="account-id"),
    ],
)
def test_tags_overwrite_generated_labels(tag_key: str, tag_value: str) -> None:
    proxy = make_proxy(tags={tag_key: tag_value}, endpoints=[])

    (resource,) = convert([proxy]).resources

    assert resource.labels[tag_key] == tag_value
    # spec.aws still comes from the ARN, not from labels.
    assert resource.aws.region == REGION
    assert resource.aws.account_id == ACCOUNT


@pytest.mark.parametrize(
    "key",
    [
        pytest.param("env name", id="space"),
        pytest.param("env=prod", id="equals"),
        pytest.param("cost,center", id="comma"),
        pytest.param("owner@team", id="at-sign"),
        pytest.param("ключ", id="non-ascii"),
        pytest.param("#hash", id="hash"),
        pytest.param("", id="empty"),
    ],
)
def test_invalid_tag_keys_are_dropped_and_reported(key: str) -> None:
    proxy = make_proxy(
        tags={key: "v", "env": "prod"}, endpoints=[default_endpoint(), custom_endpoint("reader")]
    )

    converted = convert([proxy])

    resources = by_name(converted)
    assert set(resources) == {PROXY_NAME, READER_NAME}
    for resource in resources.values():
        assert key not in resource.labels
        assert resource.labels["env"] == "prod"
    reports = [s for s in converted.skipped if repr(key) in s.reason or f"'{key}'" in s.reason]
    assert reports, skipped_text(converted)
    assert all(s.reason for s in reports)


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("with spaces", id="spaces"),
        pytest.param("ünïcödé", id="unicode"),
        pytest.param("", id="empty"),
        pytest.param("a=b,c;d", id="punctuation"),
    ],
)
def test_tag_values_are_kept_as_they_are(value: str) -> None:
    (resource,) = convert([make_proxy(tags={"note": value}, endpoints=[])]).resources

    assert resource.labels["note"] == value


# --- Naming ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "override_key",
    [
        pytest.param("TeleportDatabaseName", id="TeleportDatabaseName"),
        pytest.param("teleport.dev/database_name", id="teleport.dev-database_name"),
    ],
)
def test_name_override_tag_replaces_the_proxy_name_without_suffix(override_key: str) -> None:
    proxy = make_proxy(
        tags={override_key: "orders-db"},
        endpoints=[default_endpoint(), custom_endpoint("reader")],
    )

    converted = convert([proxy])

    resources = by_name(converted)
    assert set(resources) == {"orders-db", "orders-db-reader"}
    assert resources["orders-db"].aws.rdsproxy_name == "rds-proxy-1"
    assert resources["orders-db-reader"].aws.rdsproxy_custom_endpoint_name == "reader"
    # The name was chosen by the operator, not renamed by discovery.
    for resource in resources.values():
        assert DISCOVERED_NAME not in resource.labels


@pytest.mark.parametrize(
    ("proxy_name", "expected"),
    [
        pytest.param(
            "rds-proxy-1", "rds-proxy-1-rdsproxy-us-east-1-123456789012", id="design-example"
        ),
        pytest.param("my-rdsproxy", "my-rdsproxy-us-east-1-123456789012", id="has-subtype"),
        pytest.param(
            "MyRDSProxy-Orders",
            "MyRDSProxy-Orders-us-east-1-123456789012",
            id="has-subtype-other-case",
        ),
        pytest.param("orders-us-east-1", "orders-us-east-1-rdsproxy-123456789012", id="has-region"),
        pytest.param(
            "Orders-US-EAST-1",
            "Orders-US-EAST-1-rdsproxy-123456789012",
            id="has-region-other-case",
        ),
        pytest.param(
            "orders-123456789012", "orders-123456789012-rdsproxy-us-east-1", id="has-account"
        ),
        pytest.param(
            "rdsproxy-us-east-1-123456789012", "rdsproxy-us-east-1-123456789012", id="has-all"
        ),
    ],
)
def test_discovery_suffix_leaves_out_parts_already_in_the_name(
    proxy_name: str, expected: str
) -> None:
    proxy = make_proxy(proxy_name, endpoints=[])

    (resource,) = convert([proxy]).resources

    assert resource.name == expected
    if expected != proxy_name:
        assert resource.labels[DISCOVERED_NAME] == proxy_name
    else:
        # No suffix, no rename: nothing to remember (as Teleport's applyDiscoveryNameSuffix).
        assert DISCOVERED_NAME not in resource.labels


def test_custom_endpoint_name_is_proxy_endpoint_suffix() -> None:
    proxy = make_proxy(endpoints=[default_endpoint(), custom_endpoint("read-only")])

    resources = by_name(convert([proxy]))

    reader = resources["rds-proxy-1-read-only-rdsproxy-us-east-1-123456789012"]
    assert reader.labels[DISCOVERED_NAME] == "rds-proxy-1-read-only"


# --- Ownership labels ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        pytest.param(ORIGIN, "cloud", id="origin"),
        pytest.param(CLOUD, "AWS", id="cloud"),
        pytest.param(DISCOVERY_TYPE, "rdsproxy", id="discovery-type"),
        pytest.param(DISCOVERY_GROUP, GROUP, id="discovery-group"),
    ],
)
def test_ownership_labels_are_set_last_over_same_key_tags(key: str, expected: str) -> None:
    proxy = make_proxy(
        tags={key: "spoofed"}, endpoints=[default_endpoint(), custom_endpoint("reader")]
    )

    resources = by_name(convert([proxy]))

    for resource in resources.values():
        assert resource.labels[key] == expected


def test_discovery_group_comes_from_the_matching() -> None:
    (resource,) = convert([make_proxy(endpoints=[])], group="staging-eu").resources

    assert resource.labels[DISCOVERY_GROUP] == "staging-eu"


def test_discovered_name_tag_is_replaced_by_the_real_original_name() -> None:
    proxy = make_proxy(tags={DISCOVERED_NAME: "spoofed"}, endpoints=[])

    (resource,) = convert([proxy]).resources

    assert resource.labels[DISCOVERED_NAME] == "rds-proxy-1"


# --- The full document (DESIGN §5) ----------------------------------------------------------


def test_proxy_document_is_exactly_the_design_shape() -> None:
    proxy = make_proxy(
        engine="POSTGRESQL",
        proxy_arn=arn("prx-0a1b2c3d4e5f"),
        vpc_id="vpc-0123",
        tags={"env": "prod", "team": "db"},
        endpoints=[default_endpoint()],
    )

    (resource,) = convert([proxy], assume_role_arn=ROLE, external_id=EXTERNAL_ID).resources

    expected = {
        "kind": "db",
        "version": "v3",
        "metadata": {
            "name": "rds-proxy-1-rdsproxy-us-east-1-123456789012",
            "description": "RDS Proxy in us-east-1",
            "labels": {
                "account-id": "123456789012",
                "region": "us-east-1",
                "teleport.dev/cloud": "AWS",
                "vpc-id": "vpc-0123",
                "engine": "POSTGRESQL",
                "env": "prod",
                "team": "db",
                "teleport.internal/discovered-name": "rds-proxy-1",
                "teleport.dev/origin": "cloud",
                "teleport.dev/discovery-type": "rdsproxy",
                "teleport.internal/discovery-group-name": "prod",
            },
        },
        "spec": {
            "protocol": "postgres",
            "uri": "rds-proxy-1.proxy-cabc123xyz.us-east-1.rds.amazonaws.com:5432",
            "aws": {
                "region": "us-east-1",
                "account_id": "123456789012",
                "assume_role_arn": "arn:aws:iam::123456789012:role/discovery",
                "external_id": "example-external-id",
                "rdsproxy": {"name": "rds-proxy-1", "resource_id": "prx-0a1b2c3d4e5f"},
            },
        },
    }
    document = resource.to_dict()
    assert document == expected
    assert json.loads(json.dumps(document)) == expected
    assert Resource.from_dict(document) == resource


def test_custom_endpoint_document_is_exactly_the_design_shape() -> None:
    proxy = make_proxy(
        engine="MYSQL",
        proxy_arn=arn("prx-0a1b2c3d4e5f"),
        vpc_id="vpc-0123",
        tags={"env": "prod"},
        endpoints=[default_endpoint(), custom_endpoint("reader", role="READ_ONLY")],
    )

    resources = by_name(convert([proxy]))

    expected = {
        "kind": "db",
        "version": "v3",
        "metadata": {
            "name": "rds-proxy-1-reader-rdsproxy-us-east-1-123456789012",
            "description": "RDS Proxy endpoint in us-east-1",
            "labels": {
                "account-id": "123456789012",
                "region": "us-east-1",
                "teleport.dev/cloud": "AWS",
                "vpc-id": "vpc-0123",
                "engine": "MYSQL",
                "env": "prod",
                "endpoint-type": "READ_ONLY",
                "teleport.internal/discovered-name": "rds-proxy-1-reader",
                "teleport.dev/origin": "cloud",
                "teleport.dev/discovery-type": "rdsproxy",
                "teleport.internal/discovery-group-name": "prod",
            },
        },
        "spec": {
            "protocol": "mysql",
            "uri": "reader.endpoint.proxy-cabc123xyz.us-east-1.rds.amazonaws.com:3306",
            "aws": {
                "region": "us-east-1",
                "account_id": "123456789012",
                "rdsproxy": {
                    "name": "rds-proxy-1",
                    "custom_endpoint_name": "reader",
                    "resource_id": "prx-0a1b2c3d4e5f",
                },
            },
            "tls": {"server_name": "rds-proxy-1.proxy-cabc123xyz.us-east-1.rds.amazonaws.com"},
        },
    }
    reader = resources["rds-proxy-1-reader-rdsproxy-us-east-1-123456789012"]
    document = reader.to_dict()
    assert document == expected
    assert json.loads(json.dumps(document)) == expected
    assert Resource.from_dict(document) == reader


# --- The tag selector ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("selector", "kept"),
    [
        pytest.param({"region": ["us-east-1"]}, {"orders", "billing"}, id="on-region"),
        pytest.param({"region": ["eu-*"]}, set(), id="on-region-none"),
        pytest.param({"engine": ["MYSQL"]}, {"billing"}, id="on-engine"),
        pytest.param({"engine": ["^POSTGRES.*$"]}, {"orders"}, id="on-engine-regex"),
        pytest.param({"env": ["prod"]}, {"orders"}, id="on-tag"),
        pytest.param({"env": ["prod", "staging"]}, {"orders", "billing"}, id="on-tag-or"),
        pytest.param({"account-id": [ACCOUNT]}, {"orders", "billing"}, id="on-account"),
        pytest.param({"vpc-id": ["vpc-a"]}, {"orders"}, id="on-vpc"),
        pytest.param({CLOUD: ["AWS"]}, {"orders", "billing"}, id="on-cloud"),
        pytest.param({"env": ["prod"], "engine": ["MYSQL"]}, set(), id="and-none"),
    ],
)
def test_selector_applies_to_generated_labels_and_tags(
    selector: Mapping[str, Sequence[str]], kept: set[str]
) -> None:
    proxies = [
        make_proxy("orders", engine="POSTGRESQL", vpc_id="vpc-a", tags={"env": "prod"}),
        make_proxy("billing", engine="MYSQL", vpc_id="vpc-b", tags={"env": "staging"}),
    ]

    converted = convert(proxies, tags=selector)

    assert {r.aws.rdsproxy_name for r in converted.resources} == kept
    # A non-match is reported, never silently dropped.
    assert {s.name for s in converted.skipped} == {"orders", "billing"} - kept
    assert all(s.reason for s in converted.skipped)


@pytest.mark.parametrize(
    ("selector", "matches"),
    [
        pytest.param({"region": ["tagged-region"]}, True, id="tag-overwrote-region"),
        pytest.param({"region": ["us-east-1"]}, False, id="generated-region-overwritten"),
    ],
)
def test_selector_sees_tags_on_top_of_generated_labels(
    selector: Mapping[str, Sequence[str]], matches: bool
) -> None:
    proxy = make_proxy(tags={"region": "tagged-region"}, endpoints=[])

    converted = convert([proxy], tags=selector)

    assert len(converted.resources) == int(matches)


@pytest.mark.parametrize(
    "selector",
    [
        pytest.param({DISCOVERED_NAME: ["*"]}, id="discovered-name-not-yet-set"),
        pytest.param({ORIGIN: ["cloud"]}, id="origin-is-set-after"),
        pytest.param({DISCOVERY_GROUP: [GROUP]}, id="group-is-set-after"),
    ],
)
def test_selector_runs_before_renaming_and_ownership(
    selector: Mapping[str, Sequence[str]],
) -> None:
    converted = convert([make_proxy(endpoints=[])], tags=selector)

    assert converted.resources == ()
    assert [s.name for s in converted.skipped] == ["rds-proxy-1"]


def test_selector_sees_the_endpoint_type_of_custom_endpoints() -> None:
    proxy = make_proxy(
        endpoints=[
            default_endpoint(),
            custom_endpoint("ro", role="READ_ONLY"),
            custom_endpoint("rw", role="READ_WRITE"),
        ]
    )

    converted = convert([proxy], tags={"endpoint-type": ["READ_ONLY"]})

    assert [r.name for r in converted.resources] == [f"rds-proxy-1-ro-{SUFFIX}"]
    # The proxy itself has no endpoint-type label and the READ_WRITE endpoint does not match.
    assert len(converted.skipped) == 2


def test_selector_runs_on_the_original_name_tags_before_override() -> None:
    proxy = make_proxy(tags={"TeleportDatabaseName": "orders-db"}, endpoints=[])

    converted = convert([proxy], tags={"TeleportDatabaseName": ["orders-*"]})

    assert [r.name for r in converted.resources] == ["orders-db"]


# --- Conversion never changes what it was given ---------------------------------------------


def test_owner_label_tag_does_not_hide_custom_endpoints() -> None:
    # The selector sees the tag (cloud=x) on the proxy and on each of its custom endpoints: the
    # proxy's ownership labels (cloud=AWS) are its own, never what its endpoints are matched on.
    proxy = make_proxy(tags={CLOUD: "x"}, endpoints=[default_endpoint(), custom_endpoint("reader")])

    converted = convert([proxy], tags={CLOUD: ["x"]})

    assert set(by_name(converted)) == {PROXY_NAME, READER_NAME}, skipped_text(converted)
    assert converted.skipped == ()
    for resource in converted.resources:
        assert resource.labels[CLOUD] == "AWS"


def test_an_endpoint_does_not_inherit_the_proxy_discovered_name() -> None:
    # The endpoint's name already holds every suffix part, so it is not renamed and must not
    # carry the discovered name its proxy got.
    endpoint = custom_endpoint(f"{REGION}-{ACCOUNT}-rdsproxy", proxy_name="p")
    proxy = make_proxy("p", endpoints=[default_endpoint("p"), endpoint])

    resources = by_name(convert([proxy]))

    assert resources[f"p-{SUFFIX}"].labels[DISCOVERED_NAME] == "p"
    assert DISCOVERED_NAME not in resources[f"p-{REGION}-{ACCOUNT}-rdsproxy"].labels


def test_conversion_leaves_its_inputs_as_they_were() -> None:
    tags = {"env": "prod", CLOUD: "x"}
    selector = {"env": ["prod"]}
    proxy = make_proxy(tags=tags, endpoints=[default_endpoint(), custom_endpoint("reader")])
    before = (dict(proxy.tags), proxy.endpoints, {k: list(v) for k, v in selector.items()})

    first = convert([proxy], tags=selector)
    second = convert([proxy], tags=selector)

    assert (dict(proxy.tags), proxy.endpoints, selector) == before
    assert first == second
