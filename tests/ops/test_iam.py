"""print-iam: least-privilege policies from the config; iam bootstrap against moto's IAM;
the CloudFormation templates in deploy/iam/ checked by cfn-lint."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from moto import mock_aws

from discovery.cli.main import main
from discovery.core.config import config_from_mapping
from discovery.ops.iam import (
    LIST_REGIONS_ACTION,
    ORGANIZATION_ACTIONS,
    PRINCIPAL_PLACEHOLDER,
    READ_ACTIONS,
    IAMError,
    iam_plan,
)
from discovery.ops.iam_bootstrap import attach_policy, attachment_for

from .conftest import DEPLOY

ROLE_A = "arn:aws:iam::111111111111:role/discovery"
ROLE_B = "arn:aws:iam::222222222222:role/team/discovery-b"
SERVICE = "arn:aws:iam::000000000000:role/discovery-service"
DB_SERVICE = "arn:aws:iam::000000000000:role/teleport-db-service"
MOTO_ACCOUNT = "123456789012"  # moto's default account


def config(*matchers: dict[str, Any]) -> Any:
    return config_from_mapping({"discovery_group": "g", "aws": list(matchers)})


def statements(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    assert doc["Version"] == "2012-10-17"
    return {s["Sid"]: s for s in doc["Statement"]}


def test_identity_policy_assumes_exactly_the_configured_roles() -> None:
    plan = iam_plan(
        config(
            {"types": ["rdsproxy"], "regions": ["us-east-1"], "assume_role_arn": ROLE_A},
            {
                "types": ["rdsproxy"],
                "regions": ["eu-west-1", "us-east-1"],
                "assume_role_arn": ROLE_B,
                "external_id": "ext-b",
            },
            {"types": ["rdsproxy"], "regions": ["eu-west-1"], "assume_role_arn": ROLE_A},
        ),
        principal=SERVICE,
        db_service_principal=DB_SERVICE,
    )
    identity = statements(plan.identity_policy)
    # no matcher uses the service's own credentials: no read permissions for it
    assert set(identity) == {"RDSProxyDiscoveryAssumeRoles"}
    assume = identity["RDSProxyDiscoveryAssumeRoles"]
    assert assume["Action"] == "sts:AssumeRole"
    assert assume["Resource"] == [ROLE_A, ROLE_B]
    assert "*" not in json.dumps(assume)

    role_a = plan.role(ROLE_A)
    assert role_a is not None
    read = statements(role_a.permissions_policy)["RDSProxyDiscoveryRead"]
    assert read["Action"] == list(READ_ACTIONS)
    assert read["Condition"] == {
        "StringEquals": {"aws:RequestedRegion": ["eu-west-1", "us-east-1"]}
    }
    trust_a = statements(role_a.trust_policy)["TrustRDSProxyDiscovery"]
    assert trust_a["Principal"] == {"AWS": SERVICE}
    assert trust_a["Action"] == "sts:AssumeRole"
    assert "Condition" not in trust_a  # no external id configured for role A

    role_b = plan.role(ROLE_B)
    assert role_b is not None
    trust_b = statements(role_b.trust_policy)["TrustRDSProxyDiscovery"]
    assert trust_b["Condition"] == {"StringEquals": {"sts:ExternalId": "ext-b"}}
    assert plan.notes == ()


def test_own_credentials_get_read_permissions_for_their_regions_only() -> None:
    plan = iam_plan(
        config(
            {"types": ["rdsproxy"], "regions": ["us-east-1", "eu-west-1"]},
            {"types": ["rdsproxy"], "regions": ["ap-southeast-2"], "assume_role_arn": ROLE_A},
        )
    )
    identity = statements(plan.identity_policy)
    assert identity["RDSProxyDiscoveryRead"]["Condition"] == {
        "StringEquals": {"aws:RequestedRegion": ["eu-west-1", "us-east-1"]}
    }
    assert identity["RDSProxyDiscoveryAssumeRoles"]["Resource"] == [ROLE_A]
    # without --principal the trust policy names a placeholder, and says so
    assert plan.principal == PRINCIPAL_PLACEHOLDER
    assert any("--principal" in note for note in plan.notes)


def test_no_roles_means_no_sts_permission() -> None:
    plan = iam_plan(config({"types": ["rdsproxy"], "regions": ["us-east-1"]}))
    assert set(statements(plan.identity_policy)) == {"RDSProxyDiscoveryRead"}
    assert plan.roles == ()
    assert plan.notes == ()


def test_a_role_used_with_and_without_external_id_is_flagged() -> None:
    plan = iam_plan(
        config(
            {"types": ["rdsproxy"], "regions": ["us-east-1"], "assume_role_arn": ROLE_A},
            {
                "types": ["rdsproxy"],
                "regions": ["us-east-1"],
                "assume_role_arn": ROLE_A,
                "external_id": "e",
            },
        ),
        principal=SERVICE,
    )
    assert any("both with and without external_id" in note for note in plan.notes)


def write_config(tmp_path: Path, *matchers: dict[str, Any]) -> Path:
    path = tmp_path / "discovery.yaml"
    path.write_text(yaml.safe_dump({"discovery_group": "g", "aws": list(matchers)}))
    return path


def test_print_iam_json_and_text(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_config(
        tmp_path,
        {
            "types": ["rdsproxy"],
            "regions": ["us-east-1"],
            "assume_role_arn": ROLE_B,
            "external_id": "ext-b",
        },
    )
    assert main(["print-iam", "--config", str(path), "--principal", SERVICE, "-o", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["principal"] == SERVICE
    assert doc["identity_policy"]["Statement"][0]["Resource"] == [ROLE_B]
    assert doc["roles"][0]["trust_policy"]["Statement"][0]["Condition"] == {
        "StringEquals": {"sts:ExternalId": "ext-b"}
    }

    assert main(["print-iam", "--config", str(path), "--principal", SERVICE]) == 0
    text = capsys.readouterr().out
    assert f"## Identity policy: attach to the identity the service runs as ({SERVICE})" in text
    assert f"## Trust policy of {ROLE_B}, external id ext-b" in text
    assert f"## Permissions policy of {ROLE_B}" in text


# --- bootstrap against moto ---------------------------------------------------------------


@pytest.fixture
def moto_iam(aws_env: pytest.MonkeyPatch) -> Iterator[Any]:
    aws_env.delenv("AWS_ENDPOINT_URL")  # moto intercepts the real AWS endpoints in-process
    with mock_aws():
        iam = boto3.client("iam", region_name="us-east-1")
        trust = {"Version": "2012-10-17", "Statement": []}
        for name in ("discovery-service", "discovery"):
            iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))
        yield iam


def test_bootstrap_puts_the_identity_policy_on_the_service_role(
    moto_iam: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    member = f"arn:aws:iam::{MOTO_ACCOUNT}:role/discovery"
    path = write_config(
        tmp_path,
        {"types": ["rdsproxy"], "regions": ["us-east-1"], "assume_role_arn": member},
        {"types": ["rdsproxy"], "regions": ["eu-west-1"]},
    )
    service = f"arn:aws:iam::{MOTO_ACCOUNT}:role/discovery-service"
    assert main(["iam", "bootstrap", "--config", str(path), "--attach-to-role", service]) == 0
    assert "put inline policy 'rdsproxy-discovery'" in capsys.readouterr().out
    stored = moto_iam.get_role_policy(RoleName="discovery-service", PolicyName="rdsproxy-discovery")
    document = stored["PolicyDocument"]
    if isinstance(document, str):
        document = json.loads(document)
    expected = iam_plan(config_from_mapping(yaml.safe_load(path.read_text())))
    assert document == expected.identity_policy

    # the same command for the assumed role puts that role's permissions policy on it
    assert main(["iam", "bootstrap", "--config", str(path), "--attach-to-role", member]) == 0
    stored = moto_iam.get_role_policy(RoleName="discovery", PolicyName="rdsproxy-discovery")
    document = stored["PolicyDocument"]
    if isinstance(document, str):
        document = json.loads(document)
    sids = {s["Sid"] for s in document["Statement"]}
    # read for discovery, and rds-db:connect: the role is registered as the connection role
    assert sids == {"RDSProxyDiscoveryRead", "TeleportDatabaseConnect"}


def test_bootstrap_refuses_a_role_in_another_account(
    moto_iam: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(tmp_path, {"types": ["rdsproxy"], "regions": ["us-east-1"]})
    code = main(
        [
            "iam",
            "bootstrap",
            "--config",
            str(path),
            "--attach-to-role",
            "arn:aws:iam::999999999999:role/discovery-service",
        ]
    )
    assert code == 1
    err = capsys.readouterr().err
    assert "credentials are for account 123456789012, the role is in 999999999999" in err
    with pytest.raises(moto_iam.exceptions.NoSuchEntityException):
        moto_iam.get_role_policy(RoleName="discovery-service", PolicyName="rdsproxy-discovery")


def test_bootstrap_names_a_missing_role(moto_iam: Any) -> None:
    plan = iam_plan(config({"types": ["rdsproxy"], "regions": ["us-east-1"]}))
    attachment = attachment_for(plan, f"arn:aws:iam::{MOTO_ACCOUNT}:role/nope")
    with pytest.raises(IAMError, match="role nope does not exist in account 123456789012"):
        attach_policy(
            attachment,
            iam=boto3.client("iam", region_name="us-east-1"),
            sts=boto3.client("sts", region_name="us-east-1"),
        )


def test_bootstrap_dry_run_changes_nothing(
    moto_iam: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(tmp_path, {"types": ["rdsproxy"], "regions": ["us-east-1"]})
    service = f"arn:aws:iam::{MOTO_ACCOUNT}:role/discovery-service"
    args = ["iam", "bootstrap", "--config", str(path), "--attach-to-role", service, "--dry-run"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert out.startswith("would put inline policy 'rdsproxy-discovery'")
    assert json.loads(out.split("\n", 1)[1])["Statement"][0]["Sid"] == "RDSProxyDiscoveryRead"
    assert moto_iam.list_role_policies(RoleName="discovery-service")["PolicyNames"] == []


def test_bootstrap_rejects_a_malformed_role_arn(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(tmp_path, {"types": ["rdsproxy"], "regions": ["us-east-1"]})
    code = main(["iam", "bootstrap", "--config", str(path), "--attach-to-role", "discovery"])
    assert code == 2
    assert "is not an IAM role ARN" in capsys.readouterr().err


# --- CloudFormation -----------------------------------------------------------------------

TEMPLATES = sorted((DEPLOY / "iam").glob("*.yaml"))


def cfn_lint(*paths: Path) -> subprocess.CompletedProcess[str]:
    # installed with the test extra (pyproject.toml); a missing tool fails, it is never skipped
    tool = Path(sys.executable).parent / "cfn-lint"
    assert tool.exists(), "cfn-lint not found: run `python3 tasks.py setup` (test extra)"
    return subprocess.run(
        [str(tool), *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_cloudformation_templates_pass_cfn_lint() -> None:
    assert {p.name for p in TEMPLATES} == {
        "member-account-role.yaml",
        "organization-member-role.yaml",
        "service-role.yaml",
    }
    result = cfn_lint(*TEMPLATES)
    assert result.returncode == 0, result.stdout + result.stderr


def test_cfn_lint_does_catch_a_broken_template(tmp_path: Path) -> None:
    """The check above can fail: a template with a bad reference does."""
    broken = tmp_path / "broken.yaml"
    text = (DEPLOY / "iam" / "member-account-role.yaml").read_text()
    broken.write_text(text.replace("!Ref DiscoveryPrincipalArn", "!Ref NoSuchParameter"))
    result = cfn_lint(broken)
    assert result.returncode != 0
    assert "NoSuchParameter" in result.stdout


def test_member_role_template_matches_print_iam() -> None:
    """The template grants the same read actions and trust shape as `discovery print-iam`."""
    text = (DEPLOY / "iam" / "member-account-role.yaml").read_text()
    for action in READ_ACTIONS:
        assert f"- {action}" in text
    assert "sts:ExternalId: !Ref ExternalId" in text
    assert "aws:RequestedRegion: !Ref Regions" in text


ORG_MATCHER: dict[str, Any] = {
    "types": ["rdsproxy"],
    "regions": ["*"],
    "organization": {"id": "o-exampleorg01"},
    "assume_role_name": "discovery",
    "external_id": "ext-org",
}
MEMBER = "arn:aws:iam::*:role/discovery"


def test_an_organization_matcher_lists_the_organization_and_assumes_every_member_role() -> None:
    plan = iam_plan(config(ORG_MATCHER), principal=SERVICE)
    identity = statements(plan.identity_policy)
    assert identity["RDSProxyDiscoveryListOrganization"]["Action"] == list(ORGANIZATION_ACTIONS)
    assert identity["RDSProxyDiscoveryAssumeRoles"]["Resource"] == [MEMBER]
    member = plan.role(MEMBER)
    assert member is not None and plan.role("arn:aws:iam::333333333333:role/discovery") == member
    grants = statements(member.permissions_policy)
    assert "Condition" not in grants["RDSProxyDiscoveryRead"]  # every enabled region
    assert grants["RDSProxyDiscoveryListRegions"]["Action"] == LIST_REGIONS_ACTION
    trust = member.trust_policy["Statement"][0]
    assert trust["Condition"] == {"StringEquals": {"sts:ExternalId": "ext-org"}}


def test_an_organization_role_gets_the_listing_instead_of_the_identity() -> None:
    reader = "arn:aws:iam::999999999999:role/org-reader"
    plan = iam_plan(
        config({**ORG_MATCHER, "organization_role_arn": reader}),
        principal=SERVICE,
        db_service_principal=DB_SERVICE,
    )
    identity = statements(plan.identity_policy)
    assert "RDSProxyDiscoveryListOrganization" not in identity
    assert identity["RDSProxyDiscoveryAssumeRoles"]["Resource"] == [MEMBER, reader]
    role = plan.role(reader)
    assert role is not None
    assert set(statements(role.permissions_policy)) == {"RDSProxyDiscoveryListOrganization"}
    assert plan.notes == ()


def test_organization_member_template_matches_print_iam() -> None:
    text = (DEPLOY / "iam" / "organization-member-role.yaml").read_text()
    for action in READ_ACTIONS:
        assert f"- {action}" in text
    assert f"Action: {LIST_REGIONS_ACTION}" in text
    assert "sts:ExternalId: !Ref ExternalId" in text
    assert "aws:RequestedRegion" not in text  # regions ["*"]: every enabled region
