"""Which resources `registry adopt` moves, and what it writes: a table of named cases."""

from __future__ import annotations

import pytest

from discovery.core.adopt import adopt
from discovery.core.model import (
    LABEL_DISCOVERY_GROUP,
    LABEL_DISCOVERY_TYPE,
    LABEL_ORIGIN,
    AWSInfo,
    Resource,
    StoredResource,
)


def stored(
    name: str, *, rdsproxy: str = "p", labels: dict[str, str | None] | None = None
) -> StoredResource:
    """An rdsproxy resource of group `old`; `labels` overrides (None removes a label)."""
    merged: dict[str, str | None] = {
        LABEL_ORIGIN: "cloud",
        LABEL_DISCOVERY_TYPE: "rdsproxy",
        LABEL_DISCOVERY_GROUP: "old",
        **(labels or {}),
    }
    base = {k: v for k, v in merged.items() if v is not None}
    return StoredResource(
        resource=Resource(
            name=name,
            description="",
            labels=base,
            protocol="postgres",
            uri=f"{name}:5432",
            aws=AWSInfo(
                region="us-east-1",
                account_id="111111111111",
                rdsproxy_name=rdsproxy,
                rdsproxy_resource_id=f"prx-{name}",
            ),
        ),
        revision=1,
    )


CASES = {
    "old-group": (stored("a"), "old"),
    "no-group": (stored("b", labels={LABEL_DISCOVERY_GROUP: None}), ""),
    "another-group": (stored("c", labels={LABEL_DISCOVERY_GROUP: "other"}), None),
    "dynamic-origin": (stored("d", labels={LABEL_ORIGIN: "dynamic"}), None),
    "no-origin": (stored("e", labels={LABEL_ORIGIN: None}), None),
    "not-an-rds-proxy": (stored("f", rdsproxy=""), None),
    "another-discovery-type": (stored("g", labels={LABEL_DISCOVERY_TYPE: "rds"}), None),
}


@pytest.mark.parametrize("case", list(CASES))
def test_what_is_adopted(case: str) -> None:
    entry, expected_from = CASES[case]
    adoption = adopt([entry], from_group="old", to_group="new")
    if expected_from is None:
        assert adoption.adopted == () and not adoption.changes
        return
    assert [(a.name, a.from_group) for a in adoption.adopted] == [
        (entry.resource.name, expected_from)
    ]
    (update,) = adoption.changes.update
    assert update.before is entry
    assert update.after.labels[LABEL_DISCOVERY_GROUP] == "new"
    # only the group label moves: the rest of the resource is as it was
    rest = {k: v for k, v in update.after.labels.items() if k != LABEL_DISCOVERY_GROUP}
    assert rest == {k: v for k, v in entry.resource.labels.items() if k != LABEL_DISCOVERY_GROUP}
    assert update.after.uri == entry.resource.uri and update.after.aws == entry.resource.aws


def test_adopting_into_the_same_group_is_refused() -> None:
    with pytest.raises(ValueError, match="already"):
        adopt([stored("a")], from_group="old", to_group="old")
