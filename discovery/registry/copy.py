"""Copy one registry into another: `discovery registry copy --from sqlite:PATH --to postgres:DSN`.

Moving a deployment from SQLite to PostgreSQL (or back) must not depend on a discovery cycle
re-creating everything: resources of other discovery groups and foreign resources would be
lost, and a cycle with a failed scope would leave holes. So the copy moves every resource, as
the same document, through the `Registry` seam (any backend to any backend) in ONE apply: the
target ends up exactly like the source, or unchanged.

Revisions are the target's own: each copied resource gets a new revision from the target's
counter. Nothing depends on a revision surviving a move; the next cycle re-reads the registry.

An empty target is required unless `replace=True`; then the target is made an exact mirror in
that same transaction (creates, updates of what differs, deletes of what the source lacks),
and a writer racing the copy makes it fail with a conflict rather than interleave.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from discovery.core.model import Resource, StoredResource
from discovery.registry.base import Changes, Registry, RegistryError, Update

__all__ = ["CopyResult", "TargetNotEmpty", "copy_registry", "mirror_changes"]


class TargetNotEmpty(RegistryError):
    """The target holds resources and `replace` was not asked for; nothing was written."""


@dataclass(frozen=True, kw_only=True)
class CopyResult:
    created: int
    updated: int
    deleted: int
    unchanged: int

    @property
    def copied(self) -> int:
        """How many resources the target holds now (= the source's count)."""
        return self.created + self.updated + self.unchanged


def mirror_changes(source: Sequence[Resource], target: Sequence[StoredResource]) -> Changes:
    """The changes that make `target` hold exactly the `source` documents."""
    wanted = {resource.name: resource for resource in source}
    if len(wanted) != len(source):
        raise ValueError("the source lists a name twice")
    present = {stored.resource.name: stored for stored in target}
    return Changes(
        create=tuple(r for name, r in wanted.items() if name not in present),
        update=tuple(
            Update(before=present[name], after=r)
            for name, r in wanted.items()
            if name in present and present[name].resource != r
        ),
        delete=tuple(stored for name, stored in present.items() if name not in wanted),
    )


async def copy_registry(
    source: Registry, target: Registry, *, replace: bool = False, target_name: str = "target"
) -> CopyResult:
    """Copy every resource of `source` into `target` in one transaction."""
    resources = [stored.resource for stored in await source.list_resources()]
    current = await target.list_resources()
    if current and not replace:
        raise TargetNotEmpty(
            f"{target_name} already holds {len(current)} resource(s); nothing was copied. "
            "Copy into an empty registry, or pass --replace to make it an exact copy of the "
            "source (resources only in the target are deleted)"
        )
    changes = mirror_changes(resources, current)
    await target.apply(changes)
    return CopyResult(
        created=len(changes.create),
        updated=len(changes.update),
        deleted=len(changes.delete),
        unchanged=len(resources) - len(changes.create) - len(changes.update),
    )
