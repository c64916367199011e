"""`discovery registry export` end to end: what `tctl create -f` is handed after a real scan."""

from __future__ import annotations

from tests.cli.conftest import ACCOUNT_A, ACCOUNT_B, ROLE_A, ROLE_B, Harness, base_config
from tests.registry.test_export import tctl_decode

EXIT_OK, EXIT_RUNTIME = 0, 1


def test_json_export_is_a_stream_tctl_reads_with_the_role_of_each_resource(
    harness: Harness,
) -> None:
    config = harness.write_config(base_config())
    assert harness.scan(config).code == EXIT_OK

    result = harness.run("registry", "export", "--format", "json", config=config)
    assert result.code == EXIT_OK, result.stderr
    assert result.stdout.startswith("{")
    docs = tctl_decode(result.stdout)
    assert len(docs) == 16
    as_yaml = harness.run("registry", "export", config=config)
    assert tctl_decode(as_yaml.stdout) == docs  # both formats carry the same documents

    roles = {
        d["spec"]["aws"]["account_id"]: (
            d["spec"]["aws"].get("assume_role_arn"),
            d["spec"]["aws"].get("external_id"),
        )
        for d in docs
    }
    # The Database Service connects with the matcher's role, as Teleport's Discovery Service
    # registers it (assume_role_arn and external_id of the fetcher).
    assert roles == {ACCOUNT_A: (ROLE_A, None), ACCOUNT_B: (ROLE_B, "ext-b")}


def test_an_empty_export_is_refused_with_a_clear_line(harness: Harness) -> None:
    config = harness.write_config(base_config())
    assert harness.run("registry", "migrate", config=config).code == EXIT_OK  # exists, empty
    for fmt in ("yaml", "json"):
        result = harness.run("registry", "export", "--format", fmt, config=config)
        assert result.code == EXIT_RUNTIME
        assert result.stdout == ""
        assert "nothing to export: the registry is empty" in result.stderr
        assert "no resources found, empty input?" in result.stderr
        assert "Traceback" not in result.stderr


def test_an_export_of_another_groups_registry_says_how_to_get_them(harness: Harness) -> None:
    config = harness.write_config(base_config())
    assert harness.scan(config).code == EXIT_OK
    other = harness.write_config(base_config(group="other"), name="other.yaml")

    result = harness.run("registry", "export", config=other)
    assert result.code == EXIT_RUNTIME
    assert "no resource in the registry belongs to discovery group 'other'" in result.stderr
    assert "16 other(s); --all exports them" in result.stderr
    assert tctl_decode(harness.run("registry", "export", "--all", config=other).stdout)


def test_db_assume_role_arn_is_registered_while_discovery_keeps_its_role(
    harness: Harness,
) -> None:
    connect = f"arn:aws:iam::{ACCOUNT_B}:role/teleport-db-access"
    config = base_config()
    config["aws"][1] |= {"db_assume_role_arn": connect, "db_external_id": "ext-db"}
    path = harness.write_config(config)

    scan = harness.scan(path)
    assert scan.code == EXIT_OK, scan.stderr
    # Discovery still assumed ROLE_B with its external id (the scope says so, and succeeded).
    assert {(s["assume_role_arn"], s["status"]) for s in scan.json()["scopes"]} == {
        (ROLE_A, "ok"),
        (ROLE_B, "ok"),
    }
    docs = tctl_decode(harness.run("registry", "export", "--format", "json", config=path).stdout)
    roles = {
        (d["spec"]["aws"]["account_id"], d["spec"]["aws"].get("assume_role_arn"),
         d["spec"]["aws"].get("external_id"))
        for d in docs
    }  # fmt: skip
    assert roles == {(ACCOUNT_A, ROLE_A, None), (ACCOUNT_B, connect, "ext-db")}


def test_a_db_role_in_another_account_exits_2_naming_the_key(harness: Harness) -> None:
    config = base_config()
    config["aws"][0]["db_assume_role_arn"] = f"arn:aws:iam::{ACCOUNT_B}:role/teleport-db-access"
    path = harness.write_config(config)

    result = harness.scan(path)

    assert result.code == 2
    assert "aws[0]" in result.stderr and "db_assume_role_arn is in account" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0
