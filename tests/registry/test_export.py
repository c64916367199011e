"""Exports must be what `tctl create -f` reads back as the very same documents."""

from __future__ import annotations

import json
import re
from dataclasses import replace

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from discovery.core.model import AWSInfo, Resource
from discovery.registry.export import export_json, export_yaml
from tests.registry.registry_support import make_resource, minimal_resource

RESOURCES = [make_resource("zeta"), make_resource("alpha", full=True), minimal_resource("mid")]
IN_NAME_ORDER = sorted(RESOURCES, key=lambda r: r.name)

# What go-yaml (v2 or v3, behind Teleport's decoder) reads as something other than a string
# when it appears as a plain scalar. Written from go-yaml's resolve.go, not from our dumper.
_GO_NON_STRING = re.compile(
    r"""^(?:
        y|Y|yes|Yes|YES|n|N|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF
      | ~|null|Null|NULL|<<
      | [-+]?(?:0b[01_]+|0o?[0-7_]+|0x[0-9a-fA-F_]+|[0-9][0-9_]*)
      | [-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?
      | [-+]?\.(?:inf|Inf|INF) | \.(?:nan|NaN|NAN)
    )$""",
    re.VERBOSE,
)


def _plain_scalars(text: str) -> list[str]:
    return [
        event.value
        for event in yaml.parse(text)
        if isinstance(event, yaml.ScalarEvent) and event.style is None
    ]


def test_yaml_round_trips_to_the_same_documents_in_name_order() -> None:
    text = export_yaml(RESOURCES)

    assert list(yaml.safe_load_all(text)) == [r.to_dict() for r in IN_NAME_ORDER]
    assert [Resource.from_dict(doc) for doc in yaml.safe_load_all(text)] == IN_NAME_ORDER


def test_yaml_has_one_document_per_resource_each_starting_with_kind_db() -> None:
    text = export_yaml(RESOURCES)

    documents = re.split(r"^---\n", text, flags=re.MULTILINE)
    assert len(documents) == len(RESOURCES)
    for document in documents:
        assert document.startswith("kind: db\nversion: v3\nmetadata:\n")


def test_yaml_keys_follow_the_design_order_in_block_style() -> None:
    text = export_yaml([make_resource("alpha", full=True)])

    [document] = yaml.safe_load_all(text)
    assert list(document) == ["kind", "version", "metadata", "spec"]
    assert list(document["metadata"]) == ["name", "description", "labels"]
    assert list(document["spec"]) == ["protocol", "uri", "aws", "tls"]
    assert "{" not in text and "[" not in text  # no flow collections
    assert "\n  name: alpha\n" in text


def test_yaml_of_nothing_is_empty() -> None:
    assert export_yaml([]) == ""
    assert list(yaml.safe_load_all(export_yaml([]))) == []


def test_yaml_never_wraps_long_values() -> None:
    long_value = "x" * 150 + " " + "y" * 150
    resource = replace(make_resource("a"), labels={"long": long_value})

    assert f"    long: {long_value}\n" in export_yaml([resource])


@pytest.mark.parametrize(
    "value",
    ["012345678901", "1e3", "0o17", "09", ".5", "y", "N", "yes", "off", "true", "null", "~",
     "0x1F", "1_000", "+1", "-0.5", ".inf", "2024-01-01"],
)  # fmt: skip
def test_yaml_quotes_strings_that_go_yaml_would_read_as_other_types(value: str) -> None:
    # The real case: AWS account ids with a leading zero must reach Teleport as strings.
    resource = replace(
        make_resource("a"),
        labels={"account-id": value},
        aws=AWSInfo(region="us-east-1", account_id=value, rdsproxy_name="a",
                    rdsproxy_resource_id="prx-1"),
    )  # fmt: skip
    text = export_yaml([resource])

    assert value not in _plain_scalars(text)
    [document] = yaml.safe_load_all(text)
    assert document["metadata"]["labels"]["account-id"] == value
    assert document["spec"]["aws"]["account_id"] == value


_label_text = st.text(min_size=0, max_size=20)


@st.composite
def _resources(draw: st.DrawFn) -> list[Resource]:
    names = draw(st.lists(st.from_regex(r"[a-zA-Z][a-zA-Z0-9-]{0,20}", fullmatch=True),
                          unique=True, max_size=4))  # fmt: skip
    return [
        replace(
            make_resource(name, full=draw(st.booleans())),
            description=draw(_label_text),
            labels=draw(st.dictionaries(_label_text, _label_text, max_size=5)),
        )
        for name in names
    ]


@given(resources=_resources())
def test_yaml_round_trips_any_labels_and_never_leaves_a_go_yaml_trap(
    resources: list[Resource],
) -> None:
    text = export_yaml(resources)

    ordered = sorted(resources, key=lambda r: r.name)
    assert list(yaml.safe_load_all(text)) == [r.to_dict() for r in ordered]
    assert [s for s in _plain_scalars(text) if _GO_NON_STRING.match(s)] == []


def tctl_decode(text: str) -> list[dict[str, object]]:
    """What tctl's `create` reads from `text`, as Teleport's source does it.

    tool/tctl/common/resource_command.go decodes with Kubernetes' NewYAMLOrJSONDecoder into one
    `services.UnknownResource` (a JSON object) per Decode call until EOF, and fails on zero
    objects. The decoder takes input whose first non-blank character is `{` as a JSON stream
    (Go's json.Decoder: values one after another), anything else as YAML documents.
    """
    if not text.lstrip().startswith("{"):
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    else:
        decoder, docs, at = json.JSONDecoder(), [], 0
        while text[at:].strip():
            at += len(text[at:]) - len(text[at:].lstrip())
            value, at = decoder.raw_decode(text, at)
            docs.append(value)
    if not docs:
        raise ValueError("no resources found, empty input?")
    for doc in docs:
        if not isinstance(doc, dict):
            raise ValueError(f"cannot unmarshal {type(doc).__name__} into UnknownResource")
    return docs


def test_json_is_a_stream_of_the_documents_in_name_order_that_tctl_reads() -> None:
    text = export_json(RESOURCES)

    assert tctl_decode(text) == [r.to_dict() for r in IN_NAME_ORDER]
    assert [list(doc) for doc in tctl_decode(text)] == [["kind", "version", "metadata", "spec"]] * 3
    assert text.startswith("{") and text.endswith("}\n")
    assert text.count('\n{\n  "kind": "db"') == 2  # one object per resource, not a list


def test_a_json_list_is_what_tctl_rejects() -> None:
    # The model above agrees with tctl on the old export (a list) and on an empty input.
    as_list = json.dumps([r.to_dict() for r in IN_NAME_ORDER])
    with pytest.raises(ValueError, match="UnknownResource"):
        tctl_decode(as_list)
    with pytest.raises(ValueError, match="empty input"):
        tctl_decode(export_json([]))
    with pytest.raises(ValueError, match="empty input"):
        tctl_decode(export_yaml([]))


def test_json_of_nothing_is_empty_text() -> None:
    assert export_json([]) == ""


def test_yaml_is_read_by_tctl_as_the_same_documents() -> None:
    assert tctl_decode(export_yaml(RESOURCES)) == [r.to_dict() for r in IN_NAME_ORDER]


def test_json_keeps_unicode_readable() -> None:
    resource = replace(make_resource("a"), labels={"team": "dbä ✓"})
    assert '"team": "dbä ✓"' in export_json([resource])


@pytest.mark.parametrize("value", ["a\x85b", "\x85", "a\u2028b", "a\u2029", "a\nb", " a\tb "])
def test_yaml_keeps_line_breaks_and_blanks_exactly(value: str) -> None:
    # PyYAML on its own reads a single-quoted NEL back as a space.
    resource = replace(make_resource("a"), description=value, labels={"k": value})

    [document] = yaml.safe_load_all(export_yaml([resource]))
    assert document["metadata"]["description"] == value
    assert document["metadata"]["labels"] == {"k": value}
