"""A Teleport teleport.yaml passed as --config: its discovery_service section is used."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from discovery.core.config import ConfigError, loaded_from_mapping
from discovery.core.teleport_config import is_teleport_config, translate
from discovery.wiring import read_config

ROLE = "arn:aws:iam::123456789012:role/discovery"

TELEPORT_YAML = f"""\
version: v3
teleport:
  nodename: discovery-1
  data_dir: /var/lib/teleport
  proxy_server: teleport.example.com:443
  join_params:
    token_name: /tmp/token
    method: token
auth_service:
  enabled: "no"
ssh_service:
  enabled: "no"
proxy_service:
  enabled: "no"
discovery_service:
  enabled: "yes"
  discovery_group: aws-prod
  poll_interval: 10m
  aws:
    - types: ["ec2"]
      regions: ["us-east-1"]
      install:
        join_params:
          token_name: aws-discovery-iam-token
          method: iam
      ssm:
        document_name: TeleportDiscoveryInstaller
    - types: ["rds", "rdsproxy"]
      regions: ["us-east-1", "eu-west-1"]
      assume_role_arn: "{ROLE}"
      external_id: example-external-id
      tags:
        "env": ["prod", "staging"]
        "team": "db-*"
    - types: ["rdsproxy"]
      regions: ["ap-southeast-2"]
  azure:
    - types: ["mysql"]
      subscriptions: ["*"]
      regions: ["*"]
"""


def teleport(section: dict[str, Any]) -> dict[str, Any]:
    return {"version": "v3", "teleport": {"nodename": "x"}, "discovery_service": section}


def test_a_teleport_yaml_is_used_as_the_config(tmp_path: Path) -> None:
    path = tmp_path / "teleport.yaml"
    path.write_text(TELEPORT_YAML)
    loaded = read_config(path)
    config = loaded.config
    assert loaded.teleport
    assert config.discovery_group == "aws-prod"
    assert config.poll_interval == 600.0
    assert len(config.aws) == 2
    first, second = config.aws
    assert first.types == ("rdsproxy",)
    assert first.regions == ("us-east-1", "eu-west-1")
    assert first.assume_role_arn == ROLE
    assert first.external_id == "example-external-id"
    assert dict(first.tags) == {"env": ("prod", "staging"), "team": ("db-*",)}
    assert second.regions == ("ap-southeast-2",)
    assert dict(second.tags) == {"*": ("*",)}
    assert second.assume_role_arn == ""
    # the defaults of everything teleport.yaml does not have
    assert config.registry.backend == "sqlite"
    assert config.safety.policy == "sync"


def test_everything_left_out_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "teleport.yaml"
    path.write_text(TELEPORT_YAML)
    warnings = read_config(path).warnings
    text = "\n".join(warnings)
    assert (
        "discovery_service.aws[0].types: ec2 not handled by this service (matcher ignored)" in text
    )
    assert "aws[1].types: rds not handled by this service (kept for rdsproxy)" in text
    assert "discovery_service.aws[0].install" not in text  # the whole matcher was ignored
    assert "discovery_service.azure: 1 matcher(s) ignored" in text
    assert len(warnings) == 3


@pytest.mark.parametrize(
    ("name", "section", "path", "fix"),
    [
        (
            "no rdsproxy matcher",
            {"discovery_group": "g", "aws": [{"types": ["ec2"], "regions": ["us-east-1"]}]},
            "discovery_service.aws",
            'no matcher has type "rdsproxy"',
        ),
        (
            "no discovery group",
            {"aws": [{"types": ["rdsproxy"], "regions": ["us-east-1"]}]},
            "discovery_service.discovery_group",
            "is required",
        ),
        (
            # the error names the index in teleport.yaml, not among the kept matchers
            "bad region in the second matcher",
            {
                "discovery_group": "g",
                "aws": [
                    {"types": ["ec2"], "regions": ["us-east-1"]},
                    {"types": ["rdsproxy"], "regions": ["mars-1"]},
                ],
            },
            "discovery_service.aws[1].regions",
            "not a valid AWS region",
        ),
        (
            "external id without role",
            {
                "discovery_group": "g",
                "aws": [{"types": ["rdsproxy"], "regions": ["us-east-1"], "external_id": "x"}],
            },
            "discovery_service.aws[0]",
            "external_id requires assume_role_arn",
        ),
        (
            "a typo in a matcher key",
            {
                "discovery_group": "g",
                "aws": [{"types": ["rdsproxy"], "regions": ["us-east-1"], "assume_role_arm": ROLE}],
            },
            "discovery_service.aws[0].assume_role_arm",
            "not a known AWS matcher setting",
        ),
        (
            "an OIDC integration cannot be honoured",
            {
                "discovery_group": "g",
                "aws": [{"types": ["rdsproxy"], "regions": ["us-east-1"], "integration": "aws"}],
            },
            "discovery_service.aws[0].integration",
            "use assume_role_arn instead",
        ),
        (
            "no regions",
            {"discovery_group": "g", "aws": [{"types": ["rdsproxy"]}]},
            "discovery_service.aws[0].regions",
            "is required",
        ),
        (
            "bad poll interval",
            {
                "discovery_group": "g",
                "poll_interval": "often",
                "aws": [{"types": ["rdsproxy"], "regions": ["us-east-1"]}],
            },
            "discovery_service.poll_interval",
            "not a duration",
        ),
        (
            "unknown section key",
            {"discovery_group": "g", "aws": [], "pol_interval": "5m"},
            "discovery_service.pol_interval",
            "not a known discovery_service setting",
        ),
    ],
)
def test_bad_teleport_yaml_names_the_teleport_yaml_path(
    name: str, section: dict[str, Any], path: str, fix: str
) -> None:
    with pytest.raises(ConfigError) as err:
        loaded_from_mapping(teleport(section), source="teleport.yaml")
    message = str(err.value)
    assert f"teleport.yaml (teleport.yaml): {path}" in message, name
    assert fix in message, name


def test_a_teleport_yaml_without_discovery_service_says_so() -> None:
    with pytest.raises(ConfigError, match="has no discovery_service section"):
        loaded_from_mapping({"version": "v3", "teleport": {}, "ssh_service": {"enabled": "yes"}})


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"discovery_group": "g", "aws": []}, False),
        ({"version": "v3"}, True),
        ({"teleport": {}}, True),
        ({"discovery_service": {}}, True),
        ({"discovery_group": "g", "teleport": {}}, True),
    ],
)
def test_detection(data: dict[str, Any], expected: bool) -> None:
    assert is_teleport_config(data) is expected


def test_disabled_discovery_service_is_used_with_a_warning() -> None:
    translated = translate(
        teleport(
            {
                "enabled": "no",
                "discovery_group": "g",
                "aws": [{"types": ["rdsproxy"], "regions": ["us-east-1"]}],
            }
        )
    )
    assert translated.mapping["aws"] == [{"types": ["rdsproxy"], "regions": ["us-east-1"]}]
    assert any("enabled is off" in w for w in translated.warnings)


def test_our_own_config_is_not_mistaken_for_teleport(tmp_path: Path) -> None:
    path = tmp_path / "discovery.yaml"
    path.write_text(
        yaml.safe_dump(
            {"discovery_group": "g", "aws": [{"types": ["rdsproxy"], "regions": ["us-east-1"]}]}
        )
    )
    loaded = read_config(path)
    assert not loaded.teleport
    assert loaded.warnings == ()


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "discovery", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=60,
    )


def test_validate_accepts_a_teleport_yaml_and_prints_what_it_ignored(tmp_path: Path) -> None:
    path = tmp_path / "teleport.yaml"
    path.write_text(TELEPORT_YAML)
    result = run_cli("validate", "--config", str(path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "ok (teleport.yaml: discovery_service used)" in result.stdout
    assert "discovery group 'aws-prod', 2 matcher(s), 3 scope(s)" in result.stdout
    assert "warning:" in result.stderr and "ec2 not handled" in result.stderr


def test_validate_rejects_a_bad_teleport_yaml_with_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "teleport.yaml"
    # ["*"] alone means every enabled region; mixed with named regions it is an error.
    bad = 'regions: ["ap-southeast-2", "*"]'
    path.write_text(TELEPORT_YAML.replace('regions: ["ap-southeast-2"]', bad))
    result = run_cli("validate", "--config", str(path), cwd=tmp_path)
    assert result.returncode == 2
    assert "discovery_service.aws[2].regions" in result.stderr
    assert "Traceback" not in result.stderr


def test_print_iam_reads_a_teleport_yaml(tmp_path: Path) -> None:
    """The other commands take it as well: print-iam needs no AWS."""
    path = tmp_path / "teleport.yaml"
    path.write_text(TELEPORT_YAML)
    result = run_cli("print-iam", "--config", str(path), "--output", "json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert ROLE in result.stdout


ORG_MATCHER = {
    "types": ["rdsproxy"],
    "regions": ["*"],
    "organization": {
        "organization_id": "o-exampleorg01",
        "organizational_units": {"include": ["ou-root-prod0001"], "exclude": ["ou-root-sand0001"]},
    },
}


@pytest.mark.parametrize(
    "role",
    [
        pytest.param({"assume_role_name": "discovery", "external_id": "x"}, id="flat"),
        pytest.param({"assume_role": {"role_name": "discovery", "external_id": "x"}}, id="nested"),
    ],
)
def test_teleport_organization_matchers_translate(role: dict[str, object]) -> None:
    doc = {"discovery_service": {"discovery_group": "g", "aws": [{**ORG_MATCHER, **role}]}}
    matcher = loaded_from_mapping(doc).config.aws[0]
    assert matcher.organization is not None
    assert matcher.organization.include_ous == ("ou-root-prod0001",)
    assert matcher.organization.exclude_ous == ("ou-root-sand0001",)
    assert (matcher.assume_role_name, matcher.external_id) == ("discovery", "x")


def test_teleport_organization_misspelt_key_names_its_path() -> None:
    bad = {**ORG_MATCHER, "organization": {"organisation_id": "o-exampleorg01"}}
    doc = {"discovery_service": {"discovery_group": "g", "aws": [{**bad, "assume_role_name": "d"}]}}
    with pytest.raises(ConfigError) as err:
        loaded_from_mapping(doc)
    assert "discovery_service.aws[0].organization.organisation_id" in str(err.value)
