"""`print-iam --principal` must name an IAM principal (issue 15): a role/user ARN in any
partition, an account's root ARN or a bare account ID. Anything else is exit 2 with one line
naming the flag, before: printed into every trust policy and only refused by IAM later."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.harness.cli import run_in_process, run_subprocess
from tests.harness.env import CLOSED_ENDPOINT, process_env

CONFIG = """\
discovery_group: g
aws:
  - types: [rdsproxy]
    regions: [us-east-1]
    assume_role_arn: arn:aws:iam::111111111111:role/discovery
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "discovery.yaml"
    path.write_text(CONFIG)
    return path


@pytest.mark.parametrize(
    "principal",
    [
        "arn:aws:iam::123456789012:role/discovery",
        "arn:aws:iam::123456789012:role/path/to/discovery",
        "arn:aws-cn:iam::123456789012:user/ci",
        "arn:aws-us-gov:iam::123456789012:role/discovery",
        "arn:aws:iam::123456789012:root",
        "123456789012",
    ],
)
def test_a_principal_arn_is_named_in_the_trust_policy(
    tmp_path: Path, config: Path, principal: str
) -> None:
    result = run_in_process(
        ["print-iam", "--config", str(config), "--principal", principal, "-o", "json"],
        env=process_env(CLOSED_ENDPOINT),
        cwd=tmp_path,
    )
    assert result.code == 0, result.stderr
    assert principal in json.dumps(json.loads(result.stdout))


@pytest.mark.parametrize(
    "principal",
    [
        "discovery",
        "arn:aws:iam::12345:role/discovery",
        "arn:aws:sts::123456789012:assumed-role/discovery/session",
        "arn:aws:iam::123456789012:group/admins",
        "arn:aws:iam::123456789012:role/",
        "arn:azure:iam::123456789012:role/discovery",
    ],
)
def test_anything_else_is_exit_2_naming_the_flag(
    tmp_path: Path, config: Path, principal: str
) -> None:
    result = run_subprocess(
        ["print-iam", "--config", str(config), "--principal", principal],
        env=process_env(CLOSED_ENDPOINT),
        cwd=tmp_path,
    )
    assert result.code == 2
    assert result.stdout == ""
    assert result.stderr == (
        f"discovery: --principal: {principal!r} is not an IAM principal ARN; pass the role or "
        "user the service runs as, e.g. arn:aws:iam::123456789012:role/discovery "
        "(or arn:aws:iam::123456789012:root)\n"
    )
