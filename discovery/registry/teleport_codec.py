"""Our `Resource` ⇄ what `tctl` reads and prints, so that equality survives a round trip.

What Teleport does to a `db` resource, and how this module undoes it (read from Teleport's
source, v17/v18: tool/tctl/common/resource_command.go, api/types/database.go,
lib/services/local/databases.go):

- `tctl create` forces `teleport.dev/origin` to `dynamic` (createDatabase calls
  `SetOrigin(types.OriginDynamic)`). A resource that carries our discovery type and a discovery
  group label is read back with origin `cloud`, what we wrote, so ownership (`is_owned`) and the
  plan's `stored.resource == resource` hold unchanged. Any other resource keeps its origin.
- The backend sets `metadata.revision` (a new UUID on every write) and may fill in defaults
  (`spec.aws.region`, `rdsproxy.*` parsed from an RDS URI when empty, `status`, namespace).
  Only the fields of DESIGN §5 become our `Resource`; everything else is ignored, so a server
  default never looks like a change. The revision becomes a stable integer (see `revision_of`).
- `tctl get db --format=json` prints a JSON array (`utils.WriteJSONArray`; older versions
  `json.MarshalIndent` of the slice, which is `null` when empty): both are accepted.
- `tctl create FILE` decodes YAML or JSON documents one after another (kyaml's
  YAMLOrJSONDecoder) and rejects unknown fields (`UnmarshalDatabase(..., DisallowUnknown())`),
  so we write YAML documents holding exactly the DESIGN §5 fields, separated by `---`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from discovery.core.model import (
    LABEL_DISCOVERY_GROUP,
    LABEL_DISCOVERY_TYPE,
    LABEL_ORIGIN,
    ORIGIN_CLOUD,
    Resource,
    StoredResource,
)

__all__ = [
    "ORIGIN_DYNAMIC",
    "TctlOutputError",
    "decode_list",
    "encode_documents",
    "revision_of",
]

ORIGIN_DYNAMIC = "dynamic"
DISCOVERY_TYPE = "rdsproxy"


class TctlOutputError(ValueError):
    """`tctl get` printed something that is not a list of `db` resources."""


def encode_documents(resources: Sequence[Resource]) -> str:
    """The file `tctl create [-f]` reads: one YAML document per resource."""
    return "".join(
        "---\n" + yaml.safe_dump(r.to_dict(), sort_keys=False, default_flow_style=False)
        for r in resources
    )


def revision_of(revision: str) -> int:
    """Teleport's revision (a UUID string) as the positive integer `StoredResource` carries.

    Stable (the same revision gives the same number in every process) and changes whenever
    the revision does; the order of the numbers means nothing, only equality is used.
    """
    digest = hashlib.sha256(revision.encode("utf-8")).digest()
    return int.from_bytes(digest[:7], "big") + 1


def decode_list(text: str) -> list[StoredResource]:
    """`tctl get db --format=json` → the registry's resources, sorted by name."""
    try:
        docs = json.loads(text) if text.strip() else []
    except json.JSONDecodeError as exc:
        raise TctlOutputError(f"tctl get db printed invalid JSON: {exc}") from None
    if docs is None:
        docs = []
    if isinstance(docs, Mapping):  # one resource printed as an object
        docs = [docs]
    if not isinstance(docs, list):
        raise TctlOutputError(f"tctl get db printed {type(docs).__name__}, not a list")
    stored = [_stored(doc) for doc in docs]
    return sorted(stored, key=lambda s: s.resource.name)


def _stored(doc: object) -> StoredResource:
    if not isinstance(doc, Mapping) or doc.get("kind") != "db":
        kind = doc.get("kind") if isinstance(doc, Mapping) else type(doc).__name__
        raise TctlOutputError(f"tctl get db printed a resource of kind {kind!r}")
    metadata = doc.get("metadata")
    if not isinstance(metadata, Mapping) or not isinstance(doc.get("spec"), Mapping):
        raise TctlOutputError("tctl get db printed a db resource without metadata or spec")
    labels = {str(k): str(v) for k, v in (metadata.get("labels") or {}).items()}
    normalized: dict[str, Any] = {
        "kind": "db",
        "version": "v3",  # db has only ever been v3; a future version is read as the same fields
        "metadata": {
            "name": metadata.get("name", ""),
            "description": metadata.get("description", ""),
            "labels": _our_origin(labels),
        },
        # A foreign resource of another kind of database may lack what ours always carry;
        # read it anyway (it is never written), so one odd resource cannot block every cycle.
        "spec": {"protocol": "", "uri": "", **doc["spec"]},
    }
    try:
        resource = Resource.from_dict(normalized)
    except (KeyError, TypeError, ValueError) as exc:
        name = metadata.get("name", "?")
        raise TctlOutputError(f"tctl get db: resource {name!r} is malformed ({exc})") from None
    return StoredResource(
        resource=resource, revision=revision_of(str(metadata.get("revision", "")))
    )


def _our_origin(labels: dict[str, str]) -> dict[str, str]:
    """Origin as we wrote it: tctl turned our `cloud` into `dynamic` (see the module doc)."""
    if (
        labels.get(LABEL_ORIGIN) == ORIGIN_DYNAMIC
        and labels.get(LABEL_DISCOVERY_TYPE) == DISCOVERY_TYPE
        and labels.get(LABEL_DISCOVERY_GROUP)
    ):
        return {**labels, LABEL_ORIGIN: ORIGIN_CLOUD}
    return labels
