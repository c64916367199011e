"""The `Registry` contract, run against every backend in registry_support.BACKENDS."""

from __future__ import annotations

from dataclasses import replace

import pytest

from discovery.core.model import Resource, StoredResource
from discovery.registry.base import Changes, Registry, RegistryConflict, RegistryError, Update
from tests.registry.registry_support import Backend, make_resource, minimal_resource


async def _create(registry: Registry, *resources: Resource) -> dict[str, StoredResource]:
    await registry.apply(Changes(create=resources))
    return {stored.resource.name: stored for stored in await registry.list_resources()}


async def test_a_new_registry_is_empty(backend: Backend) -> None:
    assert await backend.registry.list_resources() == []
    assert await backend.revision_counter() == 0


async def test_create_then_list_preserves_every_field(backend: Backend) -> None:
    full = make_resource("proxy-full", variant=7, full=True)
    minimal = minimal_resource("proxy-minimal")
    plain = make_resource("proxy-plain")

    await backend.registry.apply(Changes(create=(plain, full, minimal)))
    listed = await backend.registry.list_resources()

    assert [stored.resource for stored in listed] == [full, minimal, plain]
    assert [dict(stored.resource.labels) for stored in listed] == [
        dict(full.labels),
        {},
        dict(plain.labels),
    ]
    revisions = [stored.revision for stored in listed]
    assert all(revision > 0 for revision in revisions)
    assert len(set(revisions)) == 3


async def test_list_is_sorted_by_name_whatever_the_write_order(backend: Backend) -> None:
    names = ["b", "a-2", "C", "a", "a-10", "zeta"]
    for name in names:  # one apply each, so insertion order differs from name order
        await backend.registry.apply(Changes(create=(make_resource(name),)))

    assert [s.resource.name for s in await backend.registry.list_resources()] == sorted(names)


async def test_update_replaces_the_document_and_bumps_the_revision(backend: Backend) -> None:
    rows = await _create(backend.registry, make_resource("a"), make_resource("b"))
    after = make_resource("a", variant=1, full=True)

    await backend.registry.apply(Changes(update=(Update(before=rows["a"], after=after),)))
    listed = {s.resource.name: s for s in await backend.registry.list_resources()}

    assert listed["a"].resource == after
    assert listed["a"].revision > max(row.revision for row in rows.values())
    assert listed["b"] == rows["b"]


async def test_every_write_gets_a_revision_larger_than_all_before(backend: Backend) -> None:
    first = await _create(backend.registry, make_resource("a"))
    rows = await _create(backend.registry, make_resource("b"), make_resource("c"))
    assert min(rows["b"].revision, rows["c"].revision) > first["a"].revision
    assert rows["b"].revision != rows["c"].revision


async def test_stale_update_conflicts_and_the_whole_apply_is_rolled_back(
    backend: Backend,
) -> None:
    rows = await _create(backend.registry, make_resource("a"))
    await backend.registry.apply(
        Changes(update=(Update(before=rows["a"], after=make_resource("a", variant=1)),))
    )
    before = await backend.registry.list_resources()
    counter = await backend.revision_counter()

    stale = Changes(
        create=(make_resource("new-1"), make_resource("new-2")),
        update=(Update(before=rows["a"], after=make_resource("a", variant=2)),),
    )
    with pytest.raises(RegistryConflict, match="'a'"):
        await backend.registry.apply(stale)

    assert await backend.registry.list_resources() == before
    assert await backend.revision_counter() == counter


async def test_update_of_a_deleted_resource_conflicts(backend: Backend) -> None:
    rows = await _create(backend.registry, make_resource("a"))
    await backend.registry.apply(Changes(delete=(rows["a"],)))

    with pytest.raises(RegistryConflict):
        await backend.registry.apply(
            Changes(update=(Update(before=rows["a"], after=make_resource("a", variant=1)),))
        )
    assert await backend.registry.list_resources() == []


async def test_delete_with_the_current_revision_removes_only_that_resource(
    backend: Backend,
) -> None:
    rows = await _create(backend.registry, make_resource("a"), make_resource("b"))

    await backend.registry.apply(Changes(delete=(rows["a"],)))

    assert await backend.registry.list_resources() == [rows["b"]]


@pytest.mark.parametrize("revision_offset", [-1, 1], ids=["older", "newer"])
async def test_delete_with_another_revision_conflicts(
    backend: Backend, revision_offset: int
) -> None:
    rows = await _create(backend.registry, make_resource("a"), make_resource("b"))
    wrong = replace(rows["a"], revision=rows["a"].revision + revision_offset)

    with pytest.raises(RegistryConflict, match="'a'"):
        await backend.registry.apply(Changes(delete=(rows["b"], wrong)))

    assert await backend.registry.list_resources() == [rows["a"], rows["b"]]


async def test_delete_of_an_absent_resource_conflicts(backend: Backend) -> None:
    ghost = StoredResource(resource=make_resource("ghost"), revision=1)
    with pytest.raises(RegistryConflict):
        await backend.registry.apply(Changes(delete=(ghost,)))


async def test_create_of_an_existing_name_conflicts_and_writes_nothing(
    backend: Backend,
) -> None:
    rows = await _create(backend.registry, make_resource("a"))
    counter = await backend.revision_counter()

    with pytest.raises(RegistryConflict, match="'a'"):
        await backend.registry.apply(
            Changes(create=(make_resource("b"), make_resource("a", variant=1)))
        )

    assert await backend.registry.list_resources() == [rows["a"]]
    assert await backend.revision_counter() == counter


async def test_a_name_created_twice_in_one_apply_conflicts(backend: Backend) -> None:
    with pytest.raises(RegistryConflict):
        await backend.registry.apply(Changes(create=(make_resource("a"), make_resource("a"))))
    assert await backend.registry.list_resources() == []


async def test_a_late_delete_conflict_rolls_back_earlier_creates_and_updates(
    backend: Backend,
) -> None:
    rows = await _create(backend.registry, make_resource("a"), make_resource("b"))
    before = await backend.registry.list_resources()

    with pytest.raises(RegistryConflict):
        await backend.registry.apply(
            Changes(
                create=(make_resource("c"),),
                update=(Update(before=rows["a"], after=make_resource("a", variant=1)),),
                delete=(replace(rows["b"], revision=rows["b"].revision + 100),),
            )
        )

    assert await backend.registry.list_resources() == before


async def test_revisions_are_never_reused_after_delete_and_recreate(backend: Backend) -> None:
    seen: set[int] = set()
    for variant in range(4):
        rows = await _create(backend.registry, make_resource("a", variant=variant))
        assert rows["a"].revision not in seen
        seen.add(rows["a"].revision)
        await backend.registry.apply(Changes(delete=(rows["a"],)))

    # The stale revision of an earlier incarnation can never match the new one.
    rows = await _create(backend.registry, make_resource("a"))
    for old in seen:
        with pytest.raises(RegistryConflict):
            await backend.registry.apply(Changes(delete=(replace(rows["a"], revision=old),)))


async def test_an_empty_apply_writes_nothing(backend: Backend) -> None:
    await backend.registry.apply(Changes())  # on a brand-new registry too
    assert await backend.revision_counter() == 0

    await _create(backend.registry, make_resource("a"))
    before = await backend.registry.list_resources()
    counter = await backend.revision_counter()

    await backend.registry.apply(Changes())

    assert await backend.registry.list_resources() == before
    assert await backend.revision_counter() == counter


async def test_an_update_that_renames_is_refused_before_writing(backend: Backend) -> None:
    rows = await _create(backend.registry, make_resource("a"))

    with pytest.raises(ValueError, match="rename"):
        await backend.registry.apply(
            Changes(
                create=(make_resource("b"),),
                update=(Update(before=rows["a"], after=make_resource("other")),),
            )
        )

    assert await backend.registry.list_resources() == [rows["a"]]


async def test_a_conflict_is_a_registry_error(backend: Backend) -> None:
    # Callers that only handle RegistryError still see conflicts.
    await _create(backend.registry, make_resource("a"))
    with pytest.raises(RegistryError):
        await backend.registry.apply(Changes(create=(make_resource("a"),)))


async def test_a_closed_registry_refuses_calls(backend: Backend) -> None:
    await backend.registry.close()
    with pytest.raises(RegistryError, match="closed"):
        await backend.registry.list_resources()
