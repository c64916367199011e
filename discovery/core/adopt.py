"""Moving ownership between discovery groups on purpose (`discovery registry adopt`).

Renaming `discovery_group` would otherwise orphan every registered resource: the daemon stops
owning them, and they stay as they are forever (a new group never deletes what it does not
own). Adoption relabels them, explicitly, in one transaction: the resources of the old group,
and (Teleport's own handover rule) cloud-origin resources that carry no group at all. Only RDS
Proxy resources are taken: the old group may also name what another discovery service (e.g.
Teleport's own, for RDS instances) owns, and that is never ours to move.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from discovery.core.model import (
    LABEL_DISCOVERY_GROUP,
    LABEL_DISCOVERY_TYPE,
    LABEL_ORIGIN,
    ORIGIN_CLOUD,
    Changes,
    StoredResource,
    Update,
)

RDSPROXY = "rdsproxy"


@dataclass(frozen=True, kw_only=True)
class Adopted:
    name: str
    from_group: str  # "" for a resource that carried no group


@dataclass(frozen=True, kw_only=True)
class Adoption:
    """What `adopt` moves into `to_group`: the changes to apply and one line per resource."""

    to_group: str
    adopted: tuple[Adopted, ...]
    changes: Changes


def adoptable_group(stored: StoredResource, from_group: str) -> str | None:
    """The group a resource is adopted from, or None when it is not adoptable."""
    resource = stored.resource
    labels = resource.labels
    if labels.get(LABEL_ORIGIN) != ORIGIN_CLOUD or not resource.aws.rdsproxy_name:
        return None
    if labels.get(LABEL_DISCOVERY_TYPE, RDSPROXY) != RDSPROXY:
        return None
    group = labels.get(LABEL_DISCOVERY_GROUP, "")
    return group if group in (from_group, "") else None


def adopt(stored: Sequence[StoredResource], *, from_group: str, to_group: str) -> Adoption:
    """The resources of `from_group` (and of no group) relabelled as `to_group`'s."""
    if from_group == to_group:
        raise ValueError(f"--from-group {from_group!r} is already this config's discovery_group")
    updates: list[Update] = []
    adopted: list[Adopted] = []
    for entry in sorted(stored, key=lambda s: s.resource.name):
        group = adoptable_group(entry, from_group)
        if group is None:
            continue
        labels = {**entry.resource.labels, LABEL_DISCOVERY_GROUP: to_group}
        updates.append(Update(before=entry, after=replace(entry.resource, labels=labels)))
        adopted.append(Adopted(name=entry.resource.name, from_group=group))
    return Adoption(
        to_group=to_group, adopted=tuple(adopted), changes=Changes(update=tuple(updates))
    )
