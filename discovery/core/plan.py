"""The plan: a pure diff of desired vs registry, with the safety rules applied (DESIGN §6).

The plan is a value. Dry-run prints it; apply writes `plan.changes`. Every change the rules
hold back is in `withheld` with its reason, so nothing is dropped without a trace.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from discovery.core.model import (
    Changes,
    Resource,
    ScopeResult,
    StoredResource,
    Update,
    is_owned,
)

Policy = Literal["sync", "upsert-only", "create-only"]
Action = Literal["create", "update", "delete"]
GUARD_MIN_DELETES = 3

# Low-cardinality reason codes (metrics) for withheld changes.
REASON_SCOPE_FAILED = "scope-failed"
REASON_CONFLICT = "conflict"
REASON_DUPLICATE = "duplicate"
REASON_POLICY = "policy"
REASON_GUARD = "delete-guard"


@dataclass(frozen=True, kw_only=True)
class Withheld:
    name: str
    action: Action
    reason: str
    code: str


@dataclass(frozen=True, kw_only=True)
class Plan:
    create: tuple[Resource, ...]
    update: tuple[Update, ...]
    delete: tuple[StoredResource, ...]
    unchanged: int
    withheld: tuple[Withheld, ...]
    owned: int
    guard_tripped: bool

    @property
    def changes(self) -> Changes:
        return Changes(create=self.create, update=self.update, delete=self.delete)

    @property
    def conflicts(self) -> int:
        return sum(1 for w in self.withheld if w.code == REASON_CONFLICT)


@dataclass(frozen=True, kw_only=True)
class Frozen:
    """Where failed scopes could have produced resources: (account, region) or whole regions."""

    account_regions: frozenset[tuple[str, str]]
    regions: frozenset[str]
    reasons: dict[tuple[str, str], str]

    def reason_for(self, resource: Resource) -> str | None:
        region, account = resource.aws.region, resource.aws.account_id
        if region in self.regions:
            return self.reasons.get(("", region), "scope failed")
        if (account, region) in self.account_regions:
            return self.reasons.get((account, region), "scope failed")
        return None


def frozen_areas(scopes: Iterable[ScopeResult]) -> Frozen:
    account_regions: set[tuple[str, str]] = set()
    regions: set[str] = set()
    reasons: dict[tuple[str, str], str] = {}
    for result in scopes:
        if result.ok:
            continue
        region = result.scope.region
        account = result.account_id or result.scope.role_account_id
        if account:
            account_regions.add((account, region))
            reasons.setdefault(
                (account, region), f"scope {account}/{region} failed: {result.error}"
            )
        else:
            regions.add(region)
            reasons.setdefault(("", region), f"scope in {region} failed: {result.error}")
    return Frozen(
        account_regions=frozenset(account_regions), regions=frozenset(regions), reasons=reasons
    )


def make_plan(
    *,
    scopes: Sequence[ScopeResult],
    current: Sequence[StoredResource],
    discovery_group: str,
    policy: Policy = "sync",
    max_delete_fraction: float = 0.3,
    force: bool = False,
) -> Plan:
    frozen = frozen_areas(scopes)
    withheld: list[Withheld] = []

    desired: dict[str, Resource] = {}
    for result in scopes:
        if not result.ok:
            continue
        for resource in result.resources:
            seen = desired.get(resource.name)
            if seen is None:
                desired[resource.name] = resource
            elif seen != resource:
                withheld.append(
                    Withheld(
                        name=resource.name,
                        action="create",
                        reason=(
                            "another discovered resource has the same name; the first one "
                            "found is kept (rename one with the TeleportDatabaseName tag)"
                        ),
                        code=REASON_DUPLICATE,
                    )
                )

    by_name = {stored.resource.name: stored for stored in current}
    owned = {name: s for name, s in by_name.items() if is_owned(s.resource, discovery_group)}

    create: list[Resource] = []
    update: list[Update] = []
    unchanged = 0
    for name in sorted(desired):
        resource = desired[name]
        stored = by_name.get(name)
        if stored is not None and name not in owned:
            withheld.append(
                Withheld(
                    name=name,
                    action="create",
                    reason=(
                        "the name is held by a resource not owned by discovery group "
                        f"{discovery_group!r}; it is left as it is"
                    ),
                    code=REASON_CONFLICT,
                )
            )
            continue
        action: Action = "create" if stored is None else "update"
        if stored is not None and stored.resource == resource:
            unchanged += 1
            continue
        frozen_reason = frozen.reason_for(resource) or (
            frozen.reason_for(stored.resource) if stored is not None else None
        )
        if frozen_reason is not None:
            withheld.append(
                Withheld(name=name, action=action, reason=frozen_reason, code=REASON_SCOPE_FAILED)
            )
        elif action == "update" and policy == "create-only":
            withheld.append(
                Withheld(
                    name=name,
                    action=action,
                    reason="safety.policy is create-only",
                    code=REASON_POLICY,
                )
            )
        elif stored is None:
            create.append(resource)
        else:
            update.append(Update(before=stored, after=resource))

    deletes: list[StoredResource] = []
    for name in sorted(owned):
        if name in desired:
            continue
        stored = owned[name]
        frozen_reason = frozen.reason_for(stored.resource)
        if frozen_reason is not None:
            withheld.append(
                Withheld(name=name, action="delete", reason=frozen_reason, code=REASON_SCOPE_FAILED)
            )
        elif policy != "sync":
            withheld.append(
                Withheld(
                    name=name,
                    action="delete",
                    reason=f"safety.policy is {policy}",
                    code=REASON_POLICY,
                )
            )
        else:
            deletes.append(stored)

    guard_tripped = (
        not force
        and len(deletes) > GUARD_MIN_DELETES
        and len(deletes) > max_delete_fraction * len(owned)
    )
    if guard_tripped:
        reason = (
            f"delete guard: {len(deletes)} of {len(owned)} owned resources would be deleted, "
            f"more than safety.max_delete_fraction={max_delete_fraction:g}; "
            "check the fleet, then run `discovery scan --force` to apply them once"
        )
        withheld.extend(
            Withheld(name=s.resource.name, action="delete", reason=reason, code=REASON_GUARD)
            for s in deletes
        )
        deletes = []

    return Plan(
        create=tuple(create),
        update=tuple(update),
        delete=tuple(deletes),
        unchanged=unchanged,
        withheld=tuple(withheld),
        owned=len(owned),
        guard_tripped=guard_tripped,
    )
