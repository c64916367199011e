"""doctor's `iam-auth` check: a proxy the Teleport Database Service cannot connect to (IAM
authentication not REQUIRED) is reported with the `modify-db-proxy` that fixes it; against the
emulator, in process and through the CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from discovery.core.model import Scope
from discovery.emulator import EmulatorThread
from discovery.ops.checks_iam_auth import check_iam_auth, iam_auth_required, modify_command
from discovery.ops.checks_identity import Identity
from discovery.ops.checks_rds import ScopeFindings
from discovery.ops.diagnosis import FIXES, Status
from tests.harness.env import process_env

ACCOUNT = "111111111111"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/discovery"
SECRET = f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:"


def raw(name: str, *auth: str, scheme: str = "NONE") -> dict[str, Any]:
    return {
        "DBProxyName": name,
        "DefaultAuthScheme": scheme,
        "Auth": [
            {"AuthScheme": "SECRETS", "SecretArn": f"{SECRET}{name}-{i}", "IAMAuth": value}
            for i, value in enumerate(auth)
        ],
    }


@pytest.mark.parametrize(
    ("proxy", "required"),
    [
        pytest.param(raw("p", "REQUIRED"), True, id="required"),
        pytest.param(raw("p", "DISABLED"), False, id="disabled"),
        pytest.param(raw("p", "ENABLED"), False, id="enabled-is-not-required"),
        pytest.param(raw("p", "DISABLED", "REQUIRED"), True, id="per-user-as-the-guide-allows"),
        pytest.param(raw("p"), False, id="no-auth-entry"),
        pytest.param(raw("p", scheme="IAM_AUTH"), True, id="end-to-end-iam-auth"),
        pytest.param({"DBProxyName": "p", "Auth": None}, False, id="auth-null"),
    ],
)
def test_iam_auth_required(proxy: dict[str, Any], required: bool) -> None:
    assert iam_auth_required(proxy) is required


def test_the_fix_keeps_every_secret_because_auth_replaces_the_list() -> None:
    assert modify_command(raw("orders", "DISABLED", "DISABLED"), "eu-west-1") == (
        "aws rds modify-db-proxy --db-proxy-name orders --region eu-west-1 --auth "
        f"AuthScheme=SECRETS,SecretArn={SECRET}orders-0,IAMAuth=REQUIRED "
        f"AuthScheme=SECRETS,SecretArn={SECRET}orders-1,IAMAuth=REQUIRED"
    )
    assert modify_command(raw("bare"), "us-east-1").endswith(
        "--auth AuthScheme=SECRETS,SecretArn=SECRET_ARN,IAMAuth=REQUIRED"
    )


def findings(*proxies: dict[str, Any], ok: bool = True) -> ScopeFindings:
    return ScopeFindings(
        scope=Scope(matcher_index=0, region="us-east-1", assume_role_arn=ROLE),
        identity=Identity(role_arn=ROLE, external_id=""),
        proxies=proxies,
        ok=ok,
    )


def test_one_warning_per_proxy_and_one_ok_line_for_a_clean_scope() -> None:
    checks = check_iam_auth(
        [
            findings(raw("good", "REQUIRED"), raw("bad", "DISABLED")),
            findings(raw("fine", "REQUIRED")),
            findings(raw("unknown", "DISABLED"), ok=False),  # its listing failed: nothing to say
        ]
    )

    assert [(c.status, c.subject) for c in checks] == [
        (Status.WARN, "bad in us-east-1"),
        (Status.OK, f"us-east-1 as {ROLE}"),
    ]
    bad = checks[0]
    assert bad.code == "iam-auth-not-required" and bad.code in FIXES
    assert "Auth[].IAMAuth: DISABLED" in bad.detail
    assert "--db-proxy-name bad --region us-east-1 --auth" in bad.fix
    assert checks[1].detail == "all 1 proxies require IAM authentication"


FLEET: dict[str, Any] = {
    "caller_account": "000000000000",
    "accounts": [
        {
            "id": ACCOUNT,
            "roles": [{"name": "discovery"}],
            "regions": {
                "us-east-1": {
                    "proxies": [
                        {"name": "iam-pg", "endpoint": "iam-pg.test"},
                        {"name": "noiam-pg", "iam_auth": "DISABLED", "endpoint": "noiam.test"},
                        {"name": "notls-pg", "require_tls": False, "endpoint": "notls.test"},
                    ]
                }
            },
        }
    ],
}


def test_doctor_cli_reports_a_proxy_without_iam_auth_and_one_without_tls(
    tmp_path: Path,
) -> None:
    path = tmp_path / "discovery.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "discovery_group": "doctor",
                "aws": [{"types": ["rdsproxy"], "regions": ["us-east-1"], "assume_role_arn": ROLE}],
            }
        )
    )
    with EmulatorThread(FLEET) as emulator:
        result = subprocess.run(
            [sys.executable, "-m", "discovery", "doctor", "--config", str(path), "--no-tcp"],
            capture_output=True,
            text=True,
            env=process_env(emulator.url),
            timeout=120,
        )

    assert result.returncode == 0, result.stdout + result.stderr  # warnings only
    lines = result.stdout.splitlines()
    (iam,) = [i for i, line in enumerate(lines) if line.startswith("warn  iam-auth ")]
    assert lines[iam] == (
        "warn  iam-auth    noiam-pg in us-east-1: IAM authentication is not required "
        "(Auth[].IAMAuth: DISABLED): the Teleport Database Service cannot connect to it"
    )
    assert lines[iam + 1] == (
        "      fix: set IAMAuth=REQUIRED on the secrets Teleport users connect as: "
        "aws rds modify-db-proxy --db-proxy-name noiam-pg --region us-east-1 --auth "
        f"AuthScheme=SECRETS,SecretArn={SECRET}noiam-pg,IAMAuth=REQUIRED"
    )
    assert any(line.startswith("warn  require-tls notls-pg in us-east-1: ") for line in lines)
    assert not any(" iam-pg in" in line for line in lines)  # the compliant proxy is quiet
    assert lines[-1].endswith("2 warning(s), 0 failed, 1 skipped")
    assert "Traceback" not in result.stderr
