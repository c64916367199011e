"""A failure that is not about one scope is one line and exit 1 (issue 15): no credentials at
all, an AWS_PROFILE that does not exist, AWS (here the emulator) unreachable for every scope.
Before: one FAILED row per scope with the same error, and exit 3 ("some scopes failed").

No test here leaves the machine: the endpoint is 127.0.0.1, the instance metadata service is
disabled and the AWS config files are /dev/null (tests.harness.env).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.conftest import Harness, base_config
from tests.harness.cli import run_subprocess
from tests.harness.env import CLOSED_ENDPOINT, process_env

CONFIG = """\
discovery_group: g
aws: [{types: [rdsproxy], regions: [us-east-1, eu-west-1, eu-central-1]}]
registry: {path: registry.db}
aws_client: {max_attempts: 1, connect_timeout: 1s}
"""
NO_CREDS = (
    "discovery: no AWS credentials found for any scope; provide them through the environment "
    "(AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY), AWS_PROFILE, the shared credentials files, "
    "or an instance/IRSA role (first error: rds:DescribeDBProxies: no AWS credentials found; "
    "provide them through the environment, shared credentials files, or an instance/IRSA role)\n"
)
NO_PROFILE = (
    "discovery: the AWS profile named by AWS_PROFILE does not exist; fix AWS_PROFILE or add the "
    "profile to ~/.aws/config (first error: cannot create AWS clients for us-east-1: The config "
    "profile (nope) could not be found)\n"
)
UNREACHABLE = (
    "discovery: AWS could not be reached for any scope; check this host's network and proxy "
    "settings (or AWS_ENDPOINT_URL, when it points at an emulator) (first error: "
    "rds:DescribeDBProxies failed: EndpointConnectionError: Could not connect to the endpoint "
    'URL: "http://127.0.0.1:9/")\n'
)


def _env(*, drop: tuple[str, ...] = (), **extra: str) -> dict[str, str]:
    env = process_env(CLOSED_ENDPOINT, extra)
    for name in drop:
        env.pop(name)
    return env


@pytest.mark.parametrize(
    ("env", "line"),
    [
        pytest.param(
            _env(drop=("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")), NO_CREDS, id="no-creds"
        ),
        pytest.param(_env(AWS_PROFILE="nope"), NO_PROFILE, id="unknown-profile"),
        pytest.param(_env(), UNREACHABLE, id="unreachable"),
    ],
)
@pytest.mark.parametrize("output", ["text", "json"])
def test_a_setup_failure_is_one_line_and_exit_1(
    tmp_path: Path, env: dict[str, str], line: str, output: str
) -> None:
    config = tmp_path / "discovery.yaml"
    config.write_text(CONFIG)
    result = run_subprocess(
        ["scan", "--config", str(config), "--output", output], env=env, cwd=tmp_path
    )
    assert (result.code, result.stderr, result.stdout) == (1, line, "")


def test_every_scope_denied_is_still_a_per_scope_report(harness: Harness) -> None:
    """Same failure everywhere, but about the roles (each account's trust), not this host."""
    config = base_config()
    config["aws"][1]["external_id"] = "wrong"
    del config["aws"][0]
    result = harness.scan(harness.write_config(config), "--dry-run")
    assert result.code == 3, result.stderr
    report = result.json()
    assert [s["status"] for s in report["scopes"]] == ["failed", "failed"]


def test_run_once_exits_1_on_the_same_rule(tmp_path: Path) -> None:
    config = tmp_path / "discovery.yaml"
    config.write_text(CONFIG)
    result = run_subprocess(["run", "--once", "--config", str(config)], env=_env(), cwd=tmp_path)
    assert result.code == 1, result.stderr
    assert "EndpointConnectionError" in result.stderr  # the daemon's own per-scope log lines
