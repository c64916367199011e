"""`discovery print-iam` end to end: the Database Service's `rds-db:connect`, from the config
and from what a real scan against the emulator registered."""

from __future__ import annotations

import json

from tests.cli.conftest import ACCOUNT_A, ACCOUNT_B, ROLE_A, ROLE_B, Harness, base_config

DB_SERVICE = "arn:aws:iam::000000000000:role/teleport-db-service"


def test_print_iam_text_includes_the_database_service_statement(harness: Harness) -> None:
    config = harness.write_config(base_config())

    result = harness.run("print-iam", "--db-service-principal", DB_SERVICE, config=config)

    assert result.code == 0, result.stderr
    text = result.stdout
    assert '"Action": "rds-db:connect"' in text
    assert f"arn:aws:rds-db:us-east-1:{ACCOUNT_B}:dbuser:*/*" in text
    heading = "## Teleport Database Service policy: attach to the identity the Database Service"
    assert f"{heading} runs as ({DB_SERVICE})" in text
    assert f'"AWS": "{DB_SERVICE}"' in text  # the member roles trust it
    assert "note: TeleportDatabaseConnect allows rds-db:connect to every proxy" in text
    assert "10,240 bytes per role, 2,048 per user" in text


def test_print_iam_from_the_registry_names_the_registered_proxies(harness: Harness) -> None:
    config = harness.write_config(base_config())
    assert harness.scan(config).code == 0
    registered = harness.registry(config).values()
    expected: dict[str, set[str]] = {ROLE_A: set(), ROLE_B: set()}
    for doc in registered:
        aws = doc["spec"]["aws"]
        expected[aws["assume_role_arn"]].add(
            f"arn:aws:rds-db:{aws['region']}:{aws['account_id']}:dbuser:"
            f"{aws['rdsproxy']['resource_id']}/*"
        )
    assert all(len(arns) == 4 for arns in expected.values())  # 4 proxies (+ endpoints) each

    result = harness.run(
        "print-iam", "--from-registry", "--db-service-principal", DB_SERVICE, "-o", "json",
        config=config,
    )  # fmt: skip

    assert result.code == 0, result.stderr
    plan = json.loads(result.stdout)
    roles = {r["role_arn"]: r for r in plan["roles"]}
    for role, arns in expected.items():
        assert set(roles[role]["connect_resources"]) == arns
        connect = [
            s for s in roles[role]["permissions_policy"]["Statement"]
            if s["Sid"] == "TeleportDatabaseConnect"
        ]  # fmt: skip
        assert connect[0]["Resource"] == sorted(arns)
    trust_b = {s["Sid"]: s for s in roles[ROLE_B]["trust_policy"]["Statement"]}
    assert trust_b["TrustTeleportDatabaseService"]["Condition"] == {
        "StringEquals": {"sts:ExternalId": "ext-b"}
    }
    assert plan["database_service"]["principal"] == DB_SERVICE
    assert plan["database_service"]["identity_policy"]["Statement"][0]["Resource"] == [
        ROLE_A,
        ROLE_B,
    ]
    assert ACCOUNT_A in json.dumps(roles[ROLE_A]["connect_resources"])
