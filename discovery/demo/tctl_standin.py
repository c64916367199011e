#!/usr/bin/env python3
"""A stand-in for Teleport's `tctl`: `get db`, `create [-f] FILE`, `rm db/NAME`.

No Teleport binary can be installed where the tests run (nor in `discovery demo --teleport`),
so this script plays the part of tctl and its cluster, with the cluster's `db` resources in a
JSON state file ($TCTL_STANDIN_STATE). It follows what Teleport v17/v18 does, as read from its
source:

- tool/tctl/common/resource_command.go: global flags (`--auth-server`, `-i`) come before the
  subcommand; `create` decodes the file's YAML/JSON documents one after another and stops at
  the first error (the documents before it stay written); createDatabase forces
  `teleport.dev/origin: dynamic`, fails with `database "X" already exists` (wrapped with
  "use -f or --force flag to overwrite") unless `-f`, then updates; it prints
  `database "X" has been created|updated`; `rm db/X` prints `database "X" has been deleted`;
  `get db --format=json` prints a JSON array (utils.WriteJSONArray, 4-space indent).
- lib/services (UnmarshalDatabase with DisallowUnknown): unknown fields are rejected.
- api/types/database.go CheckAndSetDefaults: the name must match
  ^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$, label keys ^[a-zA-Z/.0-9_:*-]+$, protocol and uri
  are required, an account id is 12 digits, external_id needs assume_role_arn, and an RDS
  URI fills in an empty spec.aws.region.
- lib/services/local/databases.go: every write sets a new revision; a missing name is
  `database "X" doesn't exist`; RBAC denials read `access denied to perform action "V" on "db"`.
- Errors are printed as `ERROR: <message>` on stderr with exit code 1.

Fault injection, from the state file's "faults" (set by tests through tests/harness/tctl.py):
`fail_all` (a message for every call), `expired` (the identity's certificate has expired),
`deny` (a list of verbs: list/read/create/update/delete), `unreachable`, `hang` (seconds to
sleep before answering, for the caller's timeout), `fail_document` ({"name": X, "message": M,
"times": N}: the document named X fails N times, default always). Every invocation's argv is
appended to the state's "calls" before it runs.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import yaml

NAME_RE = re.compile(r"^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$")
LABEL_KEY_RE = re.compile(r"^[a-zA-Z/.0-9_:*-]+$")
ACCOUNT_RE = re.compile(r"^\d{12}$")
RDS_HOST_RE = re.compile(r"\.(?P<region>[a-z]{2}(-gov)?-[a-z]+-\d)\.rds\.amazonaws\.com(:\d+)?$")

# The db v3 fields this stand-in knows (a subset of types.proto's DatabaseV3), as nested keys.
_ANY = None
SCHEMA: dict[str, Any] = {
    "kind": _ANY,
    "version": _ANY,
    "sub_kind": _ANY,
    "metadata": {
        "name": _ANY,
        "description": _ANY,
        "labels": _ANY,
        "expires": _ANY,
        "revision": _ANY,
        "namespace": _ANY,
    },
    "spec": {
        "protocol": _ANY,
        "uri": _ANY,
        "ca_cert": _ANY,
        "dynamic_labels": _ANY,
        "aws": {
            "region": _ANY,
            "account_id": _ANY,
            "assume_role_arn": _ANY,
            "external_id": _ANY,
            "rds": _ANY,
            "redshift": _ANY,
            "elasticache": _ANY,
            "memorydb": _ANY,
            "secret_store": _ANY,
            "redshift_serverless": _ANY,
            "opensearch": _ANY,
            "iam_policy_status": _ANY,
            "session_tags": _ANY,
            "rdsproxy": {"name": _ANY, "custom_endpoint_name": _ANY, "resource_id": _ANY},
        },
        "gcp": _ANY,
        "azure": _ANY,
        "tls": {"mode": _ANY, "ca_cert": _ANY, "server_name": _ANY, "trust_system_cert_pool": _ANY},
        "ad": _ANY,
        "mysql": _ANY,
        "admin_user": _ANY,
        "mongo_atlas": _ANY,
        "oracle": _ANY,
    },
    "status": _ANY,
}


class Fail(Exception):
    """An `ERROR:` line and exit code 1."""


def main(argv: list[str]) -> int:
    state_path = Path(os.environ["TCTL_STANDIN_STATE"])
    with _locked(state_path) as state:
        state.setdefault("calls", []).append(argv)
        faults = dict(state.get("faults") or {})
    hang = float(faults.get("hang") or 0)
    if hang:
        time.sleep(hang)
    try:
        with _locked(state_path) as state:
            return _run(argv, state, faults)
    except Fail as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 1


def _run(argv: list[str], state: dict[str, Any], faults: dict[str, Any]) -> int:
    args = list(argv)
    auth_server = identity = ""
    while args and args[0].startswith("-"):
        flag = args.pop(0)
        if flag in ("--auth-server", "-i", "--identity") and args:
            value = args.pop(0)
            if flag == "--auth-server":
                auth_server = value
            else:
                identity = value
        else:
            raise Fail(f"unknown flag {flag!r}")
    if identity and not auth_server:
        raise Fail("tctl --identity also requires --auth-server")
    if identity and not Path(identity).is_file():
        raise Fail(f"open {identity}: no such file or directory")
    if faults.get("fail_all"):
        raise Fail(str(faults["fail_all"]))
    if faults.get("unreachable"):
        raise Fail(
            f"failed to connect to cluster at {auth_server or '127.0.0.1:3025'}: dial tcp: "
            "connect: connection refused"
        )
    if faults.get("expired"):
        raise Fail(
            "failed to connect to cluster: tls: failed to verify certificate: x509: "
            "certificate has expired or is not yet valid"
        )
    if not args:
        raise Fail("expected command")
    command, rest = args[0], args[1:]
    resources: dict[str, Any] = state.setdefault("resources", {})
    deny = set(faults.get("deny") or [])
    if command == "get":
        _allow(deny, "list", "read")
        if rest[:1] != ["db"] or "--format=json" not in rest:
            raise Fail(f"the stand-in only answers `get db --format=json`, not {rest}")
        docs = [resources[n] for n in sorted(resources)]
        print(json.dumps(docs, indent=4))
        return 0
    if command == "create":
        force = "-f" in rest or "--force" in rest
        files = [a for a in rest if not a.startswith("-")]
        if len(files) != 1:
            raise Fail("create needs one FILE (stdin is not supported by the stand-in)")
        return _create(Path(files[0]), force=force, state=state, deny=deny, faults=faults)
    if command in ("rm", "del"):
        _allow(deny, "delete")
        if len(rest) != 1 or not rest[0].startswith("db/"):
            raise Fail(f"the stand-in only removes db/NAME, not {rest}")
        name = rest[0].removeprefix("db/")
        if name not in resources:
            raise Fail(f'database "{name}" doesn\'t exist')
        del resources[name]
        print(f'database "{name}" has been deleted')
        return 0
    raise Fail(f"unknown command {command!r}")


def _create(
    path: Path, *, force: bool, state: dict[str, Any], deny: set[str], faults: dict[str, Any]
) -> int:
    try:
        docs = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]
    except (OSError, yaml.YAMLError) as exc:
        raise Fail(str(exc)) from None
    if not docs:
        raise Fail("no resources found, empty input?")
    resources = state["resources"]
    for doc in docs:  # one after another; an error stops the rest (earlier ones stay written)
        if not isinstance(doc, dict) or doc.get("kind") != "db":
            kind = doc.get("kind") if isinstance(doc, dict) else doc
            raise Fail(f'creating resources of type "{kind}" is not supported')
        doc = _checked(doc)
        name = doc["metadata"]["name"]
        _injected(name, state, faults)
        exists = name in resources
        _allow(deny, "create")
        if exists and not force:
            raise Fail(f'use -f or --force flag to overwrite\n\tdatabase "{name}" already exists')
        if exists:
            _allow(deny, "update")
        doc["metadata"].setdefault("labels", {})["teleport.dev/origin"] = "dynamic"
        doc["metadata"]["revision"] = str(uuid.uuid4())
        resources[name] = doc
        print(f'database "{name}" has been {"updated" if exists else "created"}')
    return 0


def _injected(name: str, state: dict[str, Any], faults: dict[str, Any]) -> None:
    fault = faults.get("fail_document")
    if not fault or fault.get("name") != name:
        return
    times = fault.get("times")
    if times is not None:
        if times <= 0:
            return
        state["faults"]["fail_document"]["times"] = times - 1
    raise Fail(str(fault.get("message") or f'database "{name}": injected failure'))


def _checked(doc: dict[str, Any]) -> dict[str, Any]:
    _known(doc, SCHEMA, "")
    if doc.get("version") != "v3":
        raise Fail(f'unsupported database resource version "{doc.get("version")}"')
    metadata = doc.get("metadata") or {}
    spec = doc.get("spec") or {}
    name = str(metadata.get("name") or "")
    if not NAME_RE.match(name):
        raise Fail(f'invalid database name\n\t"{name}" does not match regex "{NAME_RE.pattern}"')
    for key in metadata.get("labels") or {}:
        if not LABEL_KEY_RE.match(str(key)):
            raise Fail(f'invalid label key: "{key}"')
    if not spec.get("protocol"):
        raise Fail(f'database "{name}" protocol is empty')
    if not spec.get("uri"):
        raise Fail(f'database "{name}" URI is empty')
    aws = spec.get("aws") or {}
    if aws.get("account_id") and not ACCOUNT_RE.match(str(aws["account_id"])):
        raise Fail(f'database "{name}" has invalid AWS account ID: must be 12 digits')
    if aws.get("external_id") and not aws.get("assume_role_arn"):
        raise Fail(
            f'AWS database "{name}" has external_id "{aws["external_id"]}", '
            "but assume_role_arn is empty"
        )
    found = RDS_HOST_RE.search(str(spec["uri"]))
    if found and not aws.get("region"):  # CheckAndSetDefaults: region parsed from an RDS URI
        spec.setdefault("aws", {})["region"] = found["region"]
    return doc


def _known(value: Any, schema: Any, where: str) -> None:
    if schema is None or not isinstance(value, dict):
        return
    for key, sub in value.items():
        if key not in schema:
            raise Fail(f'unknown field "{where}{key}"')
        _known(sub, schema[key], f"{where}{key}.")


def _allow(deny: set[str], *verbs: str) -> None:
    for verb in verbs:
        if verb in deny:
            raise Fail(f'access denied to perform action "{verb}" on "db"')


class _locked:
    """The state file, read under an exclusive lock and written back on a clean exit."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> dict[str, Any]:
        self.lock = open(f"{self.path}.lock", "w")
        fcntl.flock(self.lock, fcntl.LOCK_EX)
        self.state: dict[str, Any] = json.loads(self.path.read_text()) if self.path.exists() else {}
        return self.state

    def __exit__(self, kind: object, exc: object, tb: object) -> None:
        try:
            if kind is None or kind is Fail:
                tmp = self.path.with_suffix(".tmp")
                tmp.write_text(json.dumps(self.state, indent=1, sort_keys=True))
                tmp.replace(self.path)
        finally:
            self.lock.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
