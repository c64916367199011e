"""What `tctl get db --format=json` prints → our resources: the normalization rules."""

from __future__ import annotations

import json
from typing import Any

import pytest

from discovery.core.model import is_owned
from discovery.registry.teleport_codec import TctlOutputError, decode_list, revision_of

OURS = {
    "teleport.dev/origin": "dynamic",
    "teleport.dev/cloud": "AWS",
    "teleport.dev/discovery-type": "rdsproxy",
    "teleport.internal/discovery-group-name": "prod",
}


def doc(name: str, labels: dict[str, str], **spec: Any) -> dict[str, Any]:
    return {
        "kind": "db",
        "version": "v3",
        "metadata": {"name": name, "labels": labels, "revision": f"rev-{name}"},
        "spec": {"protocol": "postgres", "uri": f"{name}.example:5432", **spec},
        "status": {"aws": {"region": "us-east-1"}},
    }


@pytest.mark.parametrize(
    ("labels", "origin", "owned"),
    [
        (OURS, "cloud", True),
        ({**OURS, "teleport.internal/discovery-group-name": "other"}, "cloud", False),
        ({k: v for k, v in OURS.items() if k != "teleport.dev/discovery-type"}, "dynamic", False),
        (
            {k: v for k, v in OURS.items() if k != "teleport.internal/discovery-group-name"},
            "dynamic",
            False,
        ),
        ({**OURS, "teleport.dev/origin": "terraform"}, "terraform", False),
        ({"teleport.dev/origin": "dynamic"}, "dynamic", False),
    ],
    ids=["ours", "other-group", "no-type", "no-group", "terraform", "hand-made"],
)
def test_origin_is_ours_only_with_our_type_and_a_group(
    labels: dict[str, str], origin: str, owned: bool
) -> None:
    (stored,) = decode_list(json.dumps([doc("a", labels)]))
    assert stored.resource.labels["teleport.dev/origin"] == origin
    assert is_owned(stored.resource, "prod") is owned


def test_server_set_fields_are_ignored_and_the_revision_is_stable() -> None:
    first = doc("a", OURS, tls={"mode": "verify-full"}, dynamic_labels={})
    (a,) = decode_list(json.dumps([first]))
    (b,) = decode_list(json.dumps([doc("a", OURS)]))
    assert a.resource == b.resource
    assert a.revision == b.revision == revision_of("rev-a")
    assert revision_of("rev-a") != revision_of("rev-b")


def test_sorted_by_name_and_odd_foreign_resources_still_read() -> None:
    odd = {"kind": "db", "version": "v3", "metadata": {"name": "dynamo"}, "spec": {}}
    listed = decode_list(json.dumps([doc("z", OURS), odd]))
    assert [s.resource.name for s in listed] == ["dynamo", "z"]


@pytest.mark.parametrize(
    "text", ["{", '"db"', '[{"kind": "app", "metadata": {}, "spec": {}}]', '[{"kind": "db"}]']
)
def test_what_is_not_a_db_listing_is_an_error(text: str) -> None:
    with pytest.raises(TctlOutputError):
        decode_list(text)
