"""`mirror_changes` and `copy_registry` over in-memory registries (the CLI tests use real ones)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from discovery.core.model import Resource, StoredResource
from discovery.registry.copy import TargetNotEmpty, copy_registry, mirror_changes
from discovery.registry.memory import MemoryRegistry
from tests.registry.registry_support import make_resource, minimal_resource


def _stored(*resources: Resource) -> list[StoredResource]:
    return [StoredResource(resource=r, revision=i + 1) for i, r in enumerate(resources)]


A, B, C = make_resource("a"), make_resource("b", full=True), minimal_resource("c")


@pytest.mark.parametrize(
    ("source", "target", "expected"),
    [
        pytest.param([A, B], [], ({"a", "b"}, set(), set()), id="into-empty"),
        pytest.param([], [A], (set(), set(), {"a"}), id="from-empty-deletes"),
        pytest.param([A, B], [A, B], (set(), set(), set()), id="identical-writes-nothing"),
        pytest.param([replace(A, uri="other:1"), C], [A, B], ({"c"}, {"a"}, {"b"}), id="mixed"),
    ],
)
def test_mirror_changes(
    source: list[Resource],
    target: list[Resource],
    expected: tuple[set[str], set[str], set[str]],
) -> None:
    changes = mirror_changes(source, _stored(*target))

    assert (
        {r.name for r in changes.create},
        {u.after.name for u in changes.update},
        {s.resource.name for s in changes.delete},
    ) == expected
    for update in changes.update:
        assert update.before.resource.name == update.after.name
        assert update.after in source


def test_mirror_changes_refuses_a_source_with_a_name_twice() -> None:
    with pytest.raises(ValueError, match="twice"):
        mirror_changes([A, A], [])


async def test_copy_into_an_empty_registry_keeps_every_document() -> None:
    source, target = MemoryRegistry(initial=[A, B, C]), MemoryRegistry()

    result = await copy_registry(source, target)

    assert [s.resource for s in await target.list_resources()] == [A, B, C]
    assert (result.created, result.updated, result.deleted, result.copied) == (3, 0, 0, 3)
    assert len(target.applied) == 1  # one transaction


async def test_copy_refuses_a_non_empty_target_unless_replace() -> None:
    source = MemoryRegistry(initial=[replace(A, uri="new:1"), C])
    target = MemoryRegistry(initial=[A, B])
    before = await target.list_resources()

    with pytest.raises(TargetNotEmpty, match="--replace"):
        await copy_registry(source, target, target_name="the target")
    assert await target.list_resources() == before

    result = await copy_registry(source, target, replace=True)
    assert [s.resource for s in await target.list_resources()] == [replace(A, uri="new:1"), C]
    assert (result.created, result.updated, result.deleted, result.unchanged) == (1, 1, 1, 0)
    assert len(target.applied) == 1
