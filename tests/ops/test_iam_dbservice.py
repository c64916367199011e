"""print-iam's Database Service side: `rds-db:connect` for the roles registered as
`spec.aws.assume_role_arn`, their trust of the Database Service, and its own policy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from discovery.cli.main import main
from discovery.core.config import ConfigError, config_from_mapping
from discovery.core.model import AWSInfo, Resource
from discovery.ops.iam import iam_plan, render_text
from discovery.ops.iam_dbservice import (
    DB_SERVICE_PLACEHOLDER,
    ROLE_POLICY_LIMIT,
    dbuser_arn,
    policy_size,
)

from .conftest import DEPLOY
from .test_iam import MOTO_ACCOUNT, moto_iam  # noqa: F401 (the moto fixture)

ROLE_A = "arn:aws:iam::111111111111:role/discovery"
ROLE_B = "arn:aws:iam::222222222222:role/discovery"
CONNECT = "arn:aws:iam::222222222222:role/teleport-db-access"
SERVICE = "arn:aws:iam::000000000000:role/discovery-service"
DB_SERVICE = "arn:aws:iam::000000000000:role/teleport-db-service"


def config(*matchers: dict[str, Any]) -> Any:
    return config_from_mapping({"discovery_group": "g", "aws": list(matchers)})


def matcher(regions: list[str], **fields: str) -> dict[str, Any]:
    return {"types": ["rdsproxy"], "regions": regions, **fields}


def sids(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["Sid"]: s for s in doc["Statement"]}


def registered(role: str, account: str, region: str, resource_id: str, **extra: str) -> Resource:
    return Resource(
        name=f"{resource_id}-{extra.get('custom_endpoint_name', '')}",
        description="",
        labels={},
        protocol="postgres",
        uri="h:5432",
        aws=AWSInfo(
            region=region,
            account_id=account,
            rdsproxy_name=resource_id,
            rdsproxy_resource_id=resource_id,
            rdsproxy_custom_endpoint_name=extra.get("custom_endpoint_name", ""),
            assume_role_arn=role,
        ),
    )


def test_the_discovery_role_connects_and_trusts_the_database_service_by_default() -> None:
    plan = iam_plan(
        config(
            matcher(["us-east-1", "eu-west-1"], assume_role_arn=ROLE_A),
            matcher(["us-east-1"], assume_role_arn=ROLE_B, external_id="ext-b"),
        ),
        principal=SERVICE,
        db_service_principal=DB_SERVICE,
    )

    role_b = plan.role(ROLE_B)
    assert role_b is not None
    permissions = sids(role_b.permissions_policy)
    assert set(permissions) == {"RDSProxyDiscoveryRead", "TeleportDatabaseConnect"}
    assert permissions["TeleportDatabaseConnect"] == {
        "Sid": "TeleportDatabaseConnect",
        "Effect": "Allow",
        "Action": "rds-db:connect",
        "Resource": ["arn:aws:rds-db:us-east-1:222222222222:dbuser:*/*"],
    }
    trust = sids(role_b.trust_policy)
    assert trust["TrustRDSProxyDiscovery"]["Principal"] == {"AWS": SERVICE}
    # The registered external_id is what the Database Service passes, so the trust requires it.
    assert trust["TrustTeleportDatabaseService"] == {
        "Sid": "TrustTeleportDatabaseService",
        "Effect": "Allow",
        "Principal": {"AWS": DB_SERVICE},
        "Action": "sts:AssumeRole",
        "Condition": {"StringEquals": {"sts:ExternalId": "ext-b"}},
    }
    role_a = plan.role(ROLE_A)
    assert role_a is not None
    assert sids(role_a.permissions_policy)["TeleportDatabaseConnect"]["Resource"] == [
        "arn:aws:rds-db:eu-west-1:111111111111:dbuser:*/*",
        "arn:aws:rds-db:us-east-1:111111111111:dbuser:*/*",
    ]
    assert "Condition" not in sids(role_a.trust_policy)["TrustTeleportDatabaseService"]
    assert plan.db_service_policy == {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "TeleportDatabaseAssumeRoles",
                "Effect": "Allow",
                "Action": "sts:AssumeRole",
                "Resource": [ROLE_A, ROLE_B],
            }
        ],
    }
    assert plan.notes == ()


def test_a_db_assume_role_arn_is_its_own_role_and_the_discovery_role_only_reads() -> None:
    plan = iam_plan(
        config(
            matcher(
                ["us-east-1"],
                assume_role_arn=ROLE_B,
                external_id="ext-b",
                db_assume_role_arn=CONNECT,
                db_external_id="ext-db",
            )
        ),
        principal=SERVICE,
        db_service_principal=DB_SERVICE,
    )

    discovery, connect = plan.role(ROLE_B), plan.role(CONNECT)
    assert discovery is not None and connect is not None
    assert set(sids(discovery.permissions_policy)) == {"RDSProxyDiscoveryRead"}
    assert set(sids(discovery.trust_policy)) == {"TrustRDSProxyDiscovery"}
    assert set(sids(connect.permissions_policy)) == {"TeleportDatabaseConnect"}
    # the proxies are in the discovery role's account
    assert connect.connect_resources == ("arn:aws:rds-db:us-east-1:222222222222:dbuser:*/*",)
    trust = sids(connect.trust_policy)
    assert set(trust) == {"TrustTeleportDatabaseService"}
    assert trust["TrustTeleportDatabaseService"]["Condition"] == {
        "StringEquals": {"sts:ExternalId": "ext-db"}
    }
    assert sids(plan.db_service_policy)["TeleportDatabaseAssumeRoles"]["Resource"] == [CONNECT]


def test_without_any_role_the_database_service_connects_itself() -> None:
    plan = iam_plan(config(matcher(["us-east-1", "cn-north-1"])), db_service_principal=DB_SERVICE)

    assert plan.roles == ()
    assert plan.db_service_policy["Statement"] == [
        {
            "Sid": "TeleportDatabaseConnect",
            "Effect": "Allow",
            "Action": "rds-db:connect",
            "Resource": [
                "arn:aws-cn:rds-db:cn-north-1:*:dbuser:*/*",
                "arn:aws:rds-db:us-east-1:*:dbuser:*/*",
            ],
        }
    ]
    assert plan.notes == ()


def test_the_placeholder_database_service_principal_is_called_out() -> None:
    plan = iam_plan(config(matcher(["us-east-1"], assume_role_arn=ROLE_A)), principal=SERVICE)

    trust = sids(plan.roles[0].trust_policy)["TrustTeleportDatabaseService"]
    assert trust["Principal"] == {"AWS": DB_SERVICE_PLACEHOLDER}
    assert any("--db-service-principal" in note for note in plan.notes)


def test_from_the_registry_each_role_names_exactly_its_registered_proxies() -> None:
    resources = [
        registered(ROLE_A, "111111111111", "us-east-1", "prx-aaa"),
        registered(ROLE_A, "111111111111", "us-east-1", "prx-aaa", custom_endpoint_name="ro"),
        registered(ROLE_A, "111111111111", "eu-west-1", "prx-bbb"),
        registered(ROLE_B, "222222222222", "us-east-1", "prx-ccc"),
        registered("arn:aws:iam::999999999999:role/not-configured", "999999999999", "us-east-1",
                   "prx-zzz"),
    ]  # fmt: skip
    plan = iam_plan(
        config(
            matcher(["us-east-1", "eu-west-1"], assume_role_arn=ROLE_A),
            matcher(["us-east-1"], assume_role_arn=ROLE_B, external_id="ext-b"),
        ),
        principal=SERVICE,
        db_service_principal=DB_SERVICE,
        registered=resources,
    )

    role_a, role_b = plan.role(ROLE_A), plan.role(ROLE_B)
    assert role_a is not None and role_b is not None
    assert role_a.connect_resources == (
        "arn:aws:rds-db:eu-west-1:111111111111:dbuser:prx-bbb/*",
        "arn:aws:rds-db:us-east-1:111111111111:dbuser:prx-aaa/*",  # endpoint shares the proxy's
    )
    assert role_b.connect_resources == ("arn:aws:rds-db:us-east-1:222222222222:dbuser:prx-ccc/*",)
    assert plan.role("arn:aws:iam::999999999999:role/not-configured") is None


def test_a_registry_list_over_the_role_policy_limit_falls_back_with_a_note() -> None:
    resources = [
        registered(ROLE_A, "111111111111", "us-east-1", f"prx-{i:017d}") for i in range(200)
    ]
    plan = iam_plan(
        config(matcher(["us-east-1"], assume_role_arn=ROLE_A)),
        principal=SERVICE,
        db_service_principal=DB_SERVICE,
        registered=resources,
    )

    role = plan.role(ROLE_A)
    assert role is not None
    assert role.connect_resources == (dbuser_arn("us-east-1", "111111111111"),)
    assert policy_size(role.permissions_policy) < ROLE_POLICY_LIMIT
    (note,) = plan.notes
    assert "200 registered proxies do not fit IAM's 10,240-byte role policy limit" in note
    assert "2,048 for a user" in note


@pytest.mark.parametrize("template", ["member-account-role.yaml", "organization-member-role.yaml"])
def test_member_role_template_has_the_database_service_statements_of_print_iam(
    template: str,
) -> None:
    """deploy/iam/member-account-role.yaml, with DatabaseServicePrincipalArn set, trusts the
    Database Service and grants rds-db:connect under the Sids print-iam uses."""

    class _Loader(yaml.SafeLoader):
        pass

    _Loader.add_multi_constructor("!", lambda loader, tag, node: {tag: repr(node.value)})
    document = yaml.load((DEPLOY / "iam" / template).read_text(), _Loader)
    role = document["Resources"]["DiscoveryRole"]["Properties"]
    text = repr(role)
    assert "TrustTeleportDatabaseService" in text and "DatabaseServicePrincipalArn" in text
    assert "TeleportDatabaseConnect" in text and "rds-db:connect" in text
    assert "dbuser:*/*" in text
    plan = iam_plan(
        config(matcher(["us-east-1"], assume_role_arn=ROLE_A, external_id="x")),
        principal=SERVICE,
        db_service_principal=DB_SERVICE,
    )
    role_a = plan.role(ROLE_A)
    assert role_a is not None
    assert set(sids(role_a.trust_policy)) == {
        "TrustRDSProxyDiscovery",
        "TrustTeleportDatabaseService",
    }
    assert document["Conditions"]["HasDatabaseService"]


def test_bootstrap_puts_the_database_service_policy_on_its_role(
    moto_iam: Any,  # noqa: F811 (the fixture imported above)
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    member = f"arn:aws:iam::{MOTO_ACCOUNT}:role/discovery"
    path = tmp_path / "discovery.yaml"
    path.write_text(
        yaml.safe_dump(
            {"discovery_group": "g", "aws": [matcher(["us-east-1"], assume_role_arn=member)]}
        )
    )
    db_role = f"arn:aws:iam::{MOTO_ACCOUNT}:role/discovery-service"  # moto's pre-made role
    args = ["iam", "bootstrap", "--config", str(path), "--attach-to-role", db_role]

    assert main([*args, "--database-service", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(
        "would put inline policy 'teleport-rdsproxy-connect' (the Teleport Database Service's "
        f"policy) on {db_role}:"
    )
    assert moto_iam.list_role_policies(RoleName="discovery-service")["PolicyNames"] == []

    assert main([*args, "--database-service"]) == 0
    stored = moto_iam.get_role_policy(
        RoleName="discovery-service", PolicyName="teleport-rdsproxy-connect"
    )["PolicyDocument"]
    document = json.loads(stored) if isinstance(stored, str) else stored
    assert document["Statement"] == [
        {
            "Sid": "TeleportDatabaseAssumeRoles",
            "Effect": "Allow",
            "Action": "sts:AssumeRole",
            "Resource": [member],
        }
    ]


def test_a_db_role_with_own_credentials_names_its_account() -> None:
    plan = iam_plan(
        config(matcher(["us-east-1"], db_assume_role_arn=CONNECT)),
        db_service_principal=DB_SERVICE,
    )

    connect = plan.role(CONNECT)
    assert connect is not None
    # Teleport only registers a role of the proxies' own account: that account is known.
    assert connect.connect_resources == ("arn:aws:rds-db:us-east-1:222222222222:dbuser:*/*",)
    assert plan.db_service_policy["Statement"][0]["Resource"] == [CONNECT]


def test_the_text_notes_the_wildcard_only_when_one_is_printed() -> None:
    cfg = config(matcher(["us-east-1"], assume_role_arn=ROLE_A))
    wildcard = render_text(iam_plan(cfg, principal=SERVICE, db_service_principal=DB_SERVICE))
    exact = render_text(
        iam_plan(
            cfg,
            principal=SERVICE,
            db_service_principal=DB_SERVICE,
            registered=[registered(ROLE_A, "111111111111", "us-east-1", "prx-aaa")],
        )
    )

    assert "note: TeleportDatabaseConnect allows rds-db:connect to every proxy" in wildcard
    assert "dbuser:prx-aaa/*" in exact and "dbuser:*/*" not in exact
    assert "every proxy of a scanned region" not in exact


def test_an_organization_member_role_connects_in_every_account() -> None:
    plan = iam_plan(
        config(
            {
                "types": ["rdsproxy"],
                "regions": ["*"],
                "organization": {"id": "o-exampleorgid"},
                "assume_role_name": "discovery",
                "external_id": "ext-org",
            }
        ),
        principal=SERVICE,
        db_service_principal=DB_SERVICE,
        registered=[registered("arn:aws:iam::333333333333:role/discovery", "333333333333",
                               "eu-west-1", "prx-org")],
    )  # fmt: skip

    member = plan.role("arn:aws:iam::*:role/discovery")
    assert member is not None
    assert member.connect_resources == ("arn:aws:rds-db:eu-west-1:333333333333:dbuser:prx-org/*",)
    trust = sids(member.trust_policy)["TrustTeleportDatabaseService"]
    assert trust["Condition"] == {"StringEquals": {"sts:ExternalId": "ext-org"}}
    assert sids(plan.db_service_policy)["TeleportDatabaseAssumeRoles"]["Resource"] == [
        "arn:aws:iam::*:role/discovery"
    ]


def test_db_assume_role_arn_cannot_be_used_with_an_organization() -> None:
    with pytest.raises(ConfigError, match="db_assume_role_arn cannot be used with organization"):
        config(
            {
                "types": ["rdsproxy"],
                "regions": ["*"],
                "organization": {"id": "o-exampleorgid"},
                "assume_role_name": "discovery",
                "db_assume_role_arn": CONNECT,
            }
        )
