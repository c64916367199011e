"""The role the Teleport Database Service connects with (`spec.aws.assume_role_arn`).

Teleport's Discovery Service sets each database's `assume_role_arn` and `external_id` to its
fetcher's (lib/srv/discovery/fetchers/db/aws.go, `applyAssumeRole`), so the Database Service
connects with the role discovery used. A matcher's `db_assume_role_arn` (and `db_external_id`)
registers another role for connections, as `db_service.resources[].aws.assume_role_arn` would.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from discovery.core.config import Config, ConfigError
from discovery.core.convert import convert_proxies
from discovery.core.model import Proxy
from discovery.core.scopes import expand_scopes
from discovery.wiring import load_config

DISCOVERY_ROLE = "arn:aws:iam::123456789012:role/discovery"
CONNECT_ROLE = "arn:aws:iam::123456789012:role/teleport-db-access"


def load(tmp_path: Path, **matcher: str) -> Config:
    lines = "".join(f"    {key}: {value}\n" for key, value in matcher.items())
    path = tmp_path / "discovery.yaml"
    path.write_text(
        'discovery_group: prod\naws:\n  - types: ["rdsproxy"]\n    regions: ["us-east-1"]\n' + lines
    )
    return load_config(path)


def config_error(tmp_path: Path, **matcher: str) -> str:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, **matcher)
    message = str(info.value)
    assert "\n" not in message.strip() and "Traceback" not in message
    return message


PROXY = Proxy(
    name="orders",
    arn="arn:aws:rds:us-east-1:123456789012:db-proxy:prx-0123456789abcdef0",
    endpoint="orders.proxy-abc.us-east-1.rds.amazonaws.com",
    engine_family="POSTGRESQL",
    status="available",
    require_tls=True,
)


def registered_role(config: Config) -> tuple[str, str]:
    (scope,) = expand_scopes(config)
    (resource,) = convert_proxies([PROXY], scope.matching).resources
    return resource.aws.assume_role_arn, resource.aws.external_id


@pytest.mark.parametrize(
    ("matcher", "fetch_with", "registered"),
    [
        pytest.param({}, ("", ""), ("", ""), id="own-credentials"),
        pytest.param(
            {"assume_role_arn": DISCOVERY_ROLE, "external_id": "ext-1"},
            (DISCOVERY_ROLE, "ext-1"),
            (DISCOVERY_ROLE, "ext-1"),
            id="discovery-role-by-default",
        ),
        pytest.param(
            {"assume_role_arn": DISCOVERY_ROLE, "db_assume_role_arn": CONNECT_ROLE},
            (DISCOVERY_ROLE, ""),
            (CONNECT_ROLE, ""),
            id="db-role-overrides",
        ),
        pytest.param(
            {
                "assume_role_arn": DISCOVERY_ROLE,
                "external_id": "ext-1",
                "db_assume_role_arn": CONNECT_ROLE,
                "db_external_id": "ext-db",
            },
            (DISCOVERY_ROLE, "ext-1"),
            (CONNECT_ROLE, "ext-db"),
            id="db-role-with-its-own-external-id",
        ),
        pytest.param(
            {
                "assume_role_arn": DISCOVERY_ROLE,
                "external_id": "ext-1",
                "db_assume_role_arn": CONNECT_ROLE,
            },
            (DISCOVERY_ROLE, "ext-1"),
            (CONNECT_ROLE, ""),
            id="discovery-external-id-is-not-sent-to-another-role",
        ),
        pytest.param(
            {"db_assume_role_arn": CONNECT_ROLE},
            ("", ""),
            (CONNECT_ROLE, ""),
            id="db-role-with-own-credentials-for-discovery",
        ),
    ],
)
def test_each_resource_carries_the_connection_role(
    tmp_path: Path,
    matcher: dict[str, str],
    fetch_with: tuple[str, str],
    registered: tuple[str, str],
) -> None:
    config = load(tmp_path, **matcher)
    (scope,) = expand_scopes(config)

    assert (scope.assume_role_arn, scope.external_id) == fetch_with  # discovery is unchanged
    assert registered_role(config) == registered


def test_a_bad_db_assume_role_arn_names_the_key(tmp_path: Path) -> None:
    message = config_error(tmp_path, db_assume_role_arn="teleport-db-access")

    assert "aws[0].db_assume_role_arn" in message
    assert "arn:aws:iam::123456789012:role/NAME" in message


def test_db_external_id_needs_db_assume_role_arn(tmp_path: Path) -> None:
    message = config_error(tmp_path, assume_role_arn=DISCOVERY_ROLE, db_external_id="x")

    assert "aws[0]" in message
    assert "db_external_id requires db_assume_role_arn" in message


# Teleport's database validation (lib/services/database.go) rejects a database whose
# assume_role_arn is not in its own account and partition: such a role is never registered.


def test_a_db_role_in_another_account_than_the_discovery_role_is_a_config_error(
    tmp_path: Path,
) -> None:
    message = config_error(
        tmp_path,
        assume_role_arn=DISCOVERY_ROLE,
        db_assume_role_arn="arn:aws:iam::999999999999:role/teleport-db-access",
    )

    assert "aws[0]" in message
    assert "db_assume_role_arn is in account 999999999999, the proxies in 123456789012" in message


@pytest.mark.parametrize(
    "role",
    [
        pytest.param("arn:aws:iam::999999999999:role/teleport-db-access", id="other-account"),
        pytest.param("arn:aws-cn:iam::123456789012:role/teleport-db-access", id="other-partition"),
    ],
)
def test_a_role_teleport_would_reject_is_skipped_with_the_reason(tmp_path: Path, role: str) -> None:
    # Discovery with the service's own credentials: the proxies' account is known only from
    # their ARNs, so the check happens at conversion.
    (scope,) = expand_scopes(load(tmp_path, db_assume_role_arn=role))

    converted = convert_proxies([PROXY], scope.matching)

    assert converted.resources == ()
    (skipped,) = converted.skipped
    assert skipped.code == "role-account-mismatch"
    assert f"assume_role_arn {role} is not in the proxy's account 123456789012 (aws)" in (
        skipped.reason
    )
    assert "db_assume_role_arn" in skipped.reason


def test_both_external_ids_are_the_matchers_secrets(tmp_path: Path) -> None:
    # What the daemon and `run` seed their log and /status redactor with.
    (matcher,) = load(
        tmp_path,
        assume_role_arn=DISCOVERY_ROLE,
        external_id="ext-discovery",
        db_assume_role_arn=CONNECT_ROLE,
        db_external_id="ext-connect",
    ).aws
    (plain,) = load(tmp_path, assume_role_arn=DISCOVERY_ROLE).aws

    assert matcher.external_ids == ("ext-discovery", "ext-connect")
    assert plain.external_ids == ()
