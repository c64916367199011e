"""The invariants of the fault matrix (docs/RELIABILITY.md, "Invariants"), on snapshots.

Pure functions over registry snapshots and the independently computed desired state, so that
the rows, the daemon rows and the soak all judge a cycle the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from discovery.core.model import Resource, StoredResource, is_owned

GROUP = "faults"  # the discovery group of every world's config

Area = tuple[str, str]  # (account, region); account "" = the whole region
Snapshot = dict[str, StoredResource]


def expected_registry(
    desired: Mapping[str, Resource], foreign: Iterable[Resource]
) -> dict[str, Resource]:
    """Foreign resources as they are, plus every desired resource whose name is free."""
    expected = {r.name: r for r in foreign}
    for name, resource in desired.items():
        expected.setdefault(name, resource)
    return expected


def frozen_areas(scopes: Iterable[Mapping[str, Any]]) -> set[Area]:
    """(account, region) of each failed scope; ("", region) when its account is unknown."""
    return {
        (str(s.get("account_id") or ""), str(s["region"]))
        for s in scopes
        if s.get("status") == "failed"
    }


def in_area(resource: Resource, areas: Iterable[Area]) -> bool:
    return any(
        resource.aws.region == region and account in ("", resource.aws.account_id)
        for account, region in areas
    )


def _area_of(
    resources: Mapping[str, Resource] | Mapping[str, StoredResource], area: Area
) -> dict[str, Any]:
    out = {}
    for name, value in resources.items():
        resource = value.resource if isinstance(value, StoredResource) else value
        if in_area(resource, [area]) and is_owned(resource, GROUP):
            out[name] = resource
    return out


def assert_no_duplicates(after: Snapshot) -> None:
    """One resource per proxy or endpoint: no name twice, no AWS object under two names."""
    keys: dict[tuple[str, str, str, str], str] = {}
    for name, stored in after.items():
        assert stored.resource.name == name
        if not is_owned(stored.resource, GROUP):
            continue
        aws = stored.resource.aws
        key = (aws.account_id, aws.region, aws.rdsproxy_name, aws.rdsproxy_custom_endpoint_name)
        assert key not in keys, f"{name} and {keys[key]} are the same AWS object"
        keys[key] = name
    revisions = [s.revision for s in after.values()]
    assert len(revisions) == len(set(revisions)), "two rows share a revision"


def check_cycle(
    *,
    before: Snapshot,
    after: Snapshot,
    desired: Mapping[str, Resource],
    foreign: Iterable[Resource],
    frozen: set[Area],
    registry_failed: bool = False,
    require_pending: bool = True,
) -> None:
    """The invariants of one cycle (docs/RELIABILITY.md, "Invariants").

    - a cycle whose registry write failed changed nothing at all;
    - nothing a failed scope could have produced (its account and region, or its whole region
      when the account is unknown) was created, updated or deleted: same document, same
      revision, or absent both times;
    - no foreign resource changed;
    - everywhere else, the owned resources are exactly the desired ones;
    - no duplicates.
    With `require_pending`, each frozen area must have had changes to withhold, so that the
    row proves something.
    """
    foreign = list(foreign)
    assert_no_duplicates(after)
    if registry_failed:
        assert after == before, "a cycle whose registry write failed changed the registry"
        return
    for name in sorted(set(before) | set(after)):
        was, now = before.get(name), after.get(name)
        touched = [s.resource for s in (was, now) if s is not None]
        if any(in_area(r, frozen) for r in touched):
            assert was == now, f"{name} is in a frozen area {sorted(frozen)} but changed"
    for resource in foreign:
        assert resource.name in after, f"foreign {resource.name} was deleted"
        assert after[resource.name] == before[resource.name], f"foreign {resource.name} changed"
    foreign_names = {r.name for r in foreign}
    want = {
        name: r
        for name, r in desired.items()
        if name not in foreign_names and not in_area(r, frozen)
    }
    have = {
        name: s.resource
        for name, s in after.items()
        if is_owned(s.resource, GROUP) and not in_area(s.resource, frozen)
    }
    assert sorted(have) == sorted(want), "outside the frozen areas, owned != desired"
    assert have == want, "outside the frozen areas, a resource differs from the desired one"
    if require_pending:
        for area in frozen:
            assert _area_of(desired, area) != _area_of(before, area), (
                f"nothing was pending in the frozen area {area}: the row proves nothing"
            )


def check_recovered(
    after: Snapshot, desired: Mapping[str, Resource], foreign: Iterable[Resource]
) -> None:
    """After a good cycle the registry is exactly foreign + desired, nothing more or less."""
    assert_no_duplicates(after)
    expected = expected_registry(desired, foreign)
    have = {name: s.resource for name, s in after.items()}
    assert sorted(have) == sorted(expected), "after recovery the names differ from the desired"
    assert have == expected, "after recovery a resource differs from the desired one"
