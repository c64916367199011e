"""Render registry resources as files Teleport accepts (`tctl create -f`), in YAML or JSON.

Pure functions over `Resource` values: the CLI (`discovery registry export`) reads the registry
and writes what these return. Output is deterministic (name order, DESIGN §5 key order), so two
exports of the same registry diff cleanly.

What tctl reads (tool/tctl/common/resource_command.go, `Create`): a Kubernetes
`NewYAMLOrJSONDecoder` decodes one `services.UnknownResource` object at a time until EOF. Input
starting with `{` is read as a stream of JSON objects; anything else as YAML documents. A JSON
array is neither (one value that is not an object) and is rejected, so the JSON export is the
objects one after another. An input with no object is rejected too (`no resources found, empty
input?`): an empty export is not tctl input, and the CLI says so instead of writing nothing.

YAML subtlety: PyYAML speaks YAML 1.1, Teleport's decoder (Go yaml) reads some plain scalars that
PyYAML leaves unquoted as numbers or booleans. The worst case is common: an AWS account id with
a leading zero, `012345678901`, would reach Teleport as the number 12345678901. The dumper below
quotes every string that a Go YAML 1.1/1.2 resolver would not read back as that same string,
and escapes the Unicode line breaks that PyYAML itself would not read back unchanged.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

import yaml

from discovery.core.model import Resource

__all__ = ["EXPORT_FORMATS", "export_json", "export_yaml", "list_json"]


class _TeleportYAMLDumper(yaml.SafeDumper):
    """SafeDumper that also quotes what go-yaml (v2 and v3) would resolve to a non-string.

    Registering these patterns as implicit resolvers makes the emitter see that the plain form
    would not round-trip as a string, so it quotes it. Only plain scalars are affected.
    """


# The Unicode line breaks NEL, LS and PS: in the single-quoted style PyYAML picks for them they
# are folded like newlines, and NEL comes back as a space. Escaped in double quotes (\N, \L, \P)
# every YAML reader gets the exact string.
_UNICODE_LINE_BREAK = re.compile("[\x85\u2028\u2029]")


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    if _UNICODE_LINE_BREAK.search(data):
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style='"')
    return dumper.represent_str(data)


_TeleportYAMLDumper.add_representer(str, _represent_str)

# go-yaml's float syntax: digits with an optional fraction and exponent, no dot required
# (PyYAML's 1.1 float needs a dot, so `012345678901` and `1e3` went out unquoted).
_TeleportYAMLDumper.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\.[0-9]+|[0-9][0-9_]*(?:\.[0-9_]*)?)(?:[eE][-+]?[0-9]+)?$"),
    list("-+.0123456789"),
)
# YAML 1.2 octal (`0o17`), unknown to YAML 1.1.
_TeleportYAMLDumper.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^[-+]?0o[0-7_]+$"), list("-+0")
)
# go-yaml v2 reads the single letters y/Y/n/N as booleans; PyYAML's 1.1 resolver does not.
_TeleportYAMLDumper.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:y|Y|n|N)$"), list("yYnN")
)


def _documents(resources: Iterable[Resource]) -> list[dict[str, Any]]:
    return [resource.to_dict() for resource in sorted(resources, key=lambda r: r.name)]


def export_yaml(resources: Iterable[Resource]) -> str:
    """One `db` v3 document per resource, `---` between documents, sorted by name.

    Block style with keys in DESIGN §5 order (kind, version, metadata, spec); lines are never
    wrapped. An empty input gives an empty string, which tctl rejects (see the module doc).
    """
    return yaml.dump_all(
        _documents(resources),
        Dumper=_TeleportYAMLDumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=2**31 - 1,
    )


def export_json(resources: Iterable[Resource]) -> str:
    """The `db` v3 documents as concatenated JSON objects sorted by name, each indented and
    ending with a newline: the JSON stream tctl decodes object by object (never an array)."""
    return "".join(
        json.dumps(document, indent=2, ensure_ascii=False) + "\n"
        for document in _documents(resources)
    )


def list_json(resources: Iterable[Resource]) -> str:
    """One JSON array of the documents sorted by name, as `tctl get db --format=json` prints
    them (`registry list --output json`); not `tctl create` input, see `export_json`."""
    return json.dumps(_documents(resources), indent=2, ensure_ascii=False) + "\n"


EXPORT_FORMATS = {"yaml": export_yaml, "json": export_json}
