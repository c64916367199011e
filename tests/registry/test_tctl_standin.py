"""The stand-in tctl keeps tctl's contract (as read from Teleport's source; see its docstring),
since every Teleport-backend test trusts it."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.harness.tctl import StandinTctl

GOOD: dict[str, Any] = {
    "kind": "db",
    "version": "v3",
    "metadata": {"name": "pg-1", "labels": {"teleport.dev/origin": "cloud", "env": "prod"}},
    "spec": {
        "protocol": "postgres",
        "uri": "pg-1.proxy-abc.us-east-1.rds.amazonaws.com:5432",
        "aws": {"account_id": "123456789012", "rdsproxy": {"name": "pg-1"}},
    },
}


def tctl_run(tctl: StandinTctl, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(tctl.path), *args], capture_output=True, text=True, timeout=60, check=False
    )


def create(tctl: StandinTctl, tmp_path: Path, *docs: Any, force: bool = False) -> Any:
    path = tmp_path / "in.yaml"
    path.write_text("".join("---\n" + yaml.safe_dump(d) for d in docs))
    return tctl_run(tctl, "create", *(["-f"] if force else []), str(path))


@pytest.fixture
def tctl(tmp_path: Path) -> StandinTctl:
    return StandinTctl(tmp_path / "t")


def test_create_forces_origin_sets_revision_and_defaults(tctl: StandinTctl, tmp_path: Path) -> None:
    done = create(tctl, tmp_path, GOOD)
    assert done.returncode == 0 and done.stdout == 'database "pg-1" has been created\n'
    stored = tctl.resources()["pg-1"]
    assert stored["metadata"]["labels"]["teleport.dev/origin"] == "dynamic"
    assert stored["spec"]["aws"]["region"] == "us-east-1"  # parsed from the RDS URI
    first = stored["metadata"]["revision"]
    again = create(tctl, tmp_path, GOOD)
    assert again.returncode == 1
    assert again.stderr.startswith("ERROR: use -f or --force flag to overwrite")
    assert 'database "pg-1" already exists' in again.stderr
    forced = create(tctl, tmp_path, GOOD, force=True)
    assert forced.stdout == 'database "pg-1" has been updated\n'
    assert tctl.resources()["pg-1"]["metadata"]["revision"] != first


def bad(**change: Any) -> dict[str, Any]:
    doc = json.loads(json.dumps(GOOD))
    for path, value in change.items():
        *parents, leaf = path.split("__")
        node = doc
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return doc


@pytest.mark.parametrize(
    ("doc", "error"),
    [
        (bad(spec__aws__rdsproxy__typo="x"), 'unknown field "spec.aws.rdsproxy.typo"'),
        (bad(spec__extra=1), 'unknown field "spec.extra"'),
        (bad(metadata__name="1-bad"), "invalid database name"),
        (bad(metadata__labels={"bad key": "x"}), 'invalid label key: "bad key"'),
        (bad(spec__uri=""), 'database "pg-1" URI is empty'),
        (bad(spec__aws__account_id="123"), "invalid AWS account ID"),
        (bad(spec__aws__external_id="x"), "but assume_role_arn is empty"),
        (bad(kind="app"), 'creating resources of type "app" is not supported'),
    ],
    ids=["unknown-nested", "unknown", "name", "label-key", "uri", "account", "external-id", "kind"],
)
def test_invalid_documents_are_rejected(
    tctl: StandinTctl, tmp_path: Path, doc: dict[str, Any], error: str
) -> None:
    done = create(tctl, tmp_path, doc)
    assert done.returncode == 1
    assert done.stderr.startswith("ERROR: ") and error in done.stderr
    assert tctl.resources() == {}


def test_a_batch_stops_at_the_first_error_keeping_what_came_before(
    tctl: StandinTctl, tmp_path: Path
) -> None:
    second = bad(metadata__name="pg-2", spec__nope=1)
    third = bad(metadata__name="pg-3")
    done = create(tctl, tmp_path, GOOD, second, third)
    assert done.returncode == 1
    assert done.stdout == 'database "pg-1" has been created\n'
    assert sorted(tctl.resources()) == ["pg-1"]


def test_get_rm_and_the_empty_file(tctl: StandinTctl, tmp_path: Path) -> None:
    listed = tctl_run(tctl, "get", "db", "--format=json")
    assert listed.returncode == 0 and json.loads(listed.stdout) == []
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    nothing = tctl_run(tctl, "create", str(empty))
    assert nothing.stderr == "ERROR: no resources found, empty input?\n"
    create(tctl, tmp_path, GOOD)
    assert [
        d["metadata"]["name"]
        for d in json.loads(tctl_run(tctl, "get", "db", "--format=json").stdout)
    ] == ["pg-1"]
    removed = tctl_run(tctl, "rm", "db/pg-1")
    assert removed.stdout == 'database "pg-1" has been deleted\n'
    missing = tctl_run(tctl, "rm", "db/pg-1")
    assert missing.returncode == 1
    assert missing.stderr == 'ERROR: database "pg-1" doesn\'t exist\n'
    assert tctl.subcommands() == ["get", "create", "create", "get", "rm", "rm"]


def test_identity_needs_the_auth_server(tctl: StandinTctl, tmp_path: Path) -> None:
    identity = tmp_path / "identity"
    identity.write_text("x")
    alone = tctl_run(tctl, "-i", str(identity), "get", "db", "--format=json")
    assert alone.returncode == 1 and "--identity also requires --auth-server" in alone.stderr
    both = tctl_run(
        tctl, "--auth-server", "t.example:443", "-i", str(identity), "get", "db", "--format=json"
    )
    assert both.returncode == 0, both.stderr
