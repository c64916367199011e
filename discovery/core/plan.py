"""The plan: a pure diff of desired vs registry, with the safety rules applied (DESIGN §6).

The plan is a value. Dry-run prints it; apply writes `plan.changes`. Every change the rules
hold back is in `withheld` with its reason, so nothing is dropped without a trace.

A resource's identity is its source (account, region, `rdsproxy.resource_id`,
`custom_endpoint_name`), not its name: a name belongs to the identity already registered under
it, and an update never changes the identity a registry entry points at.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal

# Where this cycle's answers are missing or empty (re-exported: the plan's own vocabulary).
from discovery.core.areas import EMPTY_SCOPE_MIN_REGISTERED as EMPTY_SCOPE_MIN_REGISTERED
from discovery.core.areas import Frozen as Frozen
from discovery.core.areas import empty_areas as empty_areas
from discovery.core.areas import frozen_areas as frozen_areas
from discovery.core.coverage import config_change_reason, coverage_of
from discovery.core.guard import GUARD_MIN_DELETES as GUARD_MIN_DELETES  # re-exported
from discovery.core.guard import guard_reason, guard_trips
from discovery.core.model import (
    Changes,
    Resource,
    ScopeResult,
    StoredResource,
    Update,
    is_owned,
)
from discovery.core.organization import ListingFreezes

Policy = Literal["sync", "upsert-only", "create-only"]
Action = Literal["create", "update", "delete"]

# Low-cardinality reason codes (metrics) for withheld changes.
REASON_SCOPE_FAILED = "scope-failed"
REASON_CONFLICT = "conflict"
REASON_DUPLICATE = "duplicate"
REASON_POLICY = "policy"
REASON_GUARD = "delete-guard"
REASON_NAME_COLLISION = "name-collision"
REASON_EMPTY_SCOPE = "empty-scope"
REASON_CONFIG_CHANGE = "config-change"
# A delete or label removal that a targeted read did not confirm (core.confirm). Not a
# review code: like a failed scope it is AWS's view that is incomplete, and the next cycle asks
# again; `scan` exits 3 when a confirmation failed (see `CycleReport.unconfirmed`).
REASON_UNCONFIRMED = "unconfirmed"
# Codes that make `scan` exit 4 (changes withheld for review; `--force` or a rename clears them).
REVIEW_CODES = frozenset(
    {REASON_GUARD, REASON_NAME_COLLISION, REASON_EMPTY_SCOPE, REASON_CONFIG_CHANGE}
)

# (account, region, rdsproxy.resource_id, rdsproxy.custom_endpoint_name)
Identity = tuple[str, str, str, str]


def identity(resource: Resource) -> Identity:
    """Where a resource comes from; two resources with one identity are one resource."""
    aws = resource.aws
    return (
        aws.account_id,
        aws.region,
        aws.rdsproxy_resource_id,
        aws.rdsproxy_custom_endpoint_name,
    )


def describe_source(resource: Resource) -> str:
    """The identity in words, for reasons an operator reads."""
    aws = resource.aws
    proxy = f"proxy {aws.rdsproxy_name} ({aws.rdsproxy_resource_id or 'no resource_id'})"
    if aws.rdsproxy_custom_endpoint_name:
        proxy = f"endpoint {aws.rdsproxy_custom_endpoint_name} of {proxy}"
    return f"{proxy} in {aws.account_id or '?'}/{aws.region}"


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

    @property
    def needs_review(self) -> bool:
        """Some change is held back until an operator looks (guard, collision, empty scope)."""
        return self.guard_tripped or any(w.code in REVIEW_CODES for w in self.withheld)


def claim_names(
    scopes: Sequence[ScopeResult],
    *,
    owned: Mapping[str, StoredResource],
    held: Collection[str],
) -> tuple[dict[str, Resource], list[Withheld], dict[str, str]]:
    """Which discovered resource gets each name: (desired, withheld, claimed).

    A name belongs to the identity registered under it (`owned`); a newcomer that wants it is
    withheld. A name `held` by a resource we do not own stays a conflict (reported by the plan).
    Two newcomers that want one free name are both withheld: neither order wins. `claimed`
    maps a registered name whose own source is gone, but which a newcomer wants, to the reason
    its delete is held back (deleting it would hand the name over unreviewed next cycle).
    """
    wanted: dict[str, dict[Identity, Resource]] = {}
    withheld: list[Withheld] = []
    for result in scopes:
        if not result.ok:
            continue
        for resource in result.resources:
            versions = wanted.setdefault(resource.name, {})
            seen = versions.get(identity(resource))
            if seen is None:
                versions[identity(resource)] = resource
            elif seen != resource:
                withheld.append(
                    Withheld(
                        name=resource.name,
                        action="create",
                        reason=(
                            f"{describe_source(resource)} was found twice with different "
                            "contents (two matchers on one account and region?); the first "
                            "one found is kept"
                        ),
                        code=REASON_DUPLICATE,
                    )
                )

    desired: dict[str, Resource] = {}
    claimed: dict[str, str] = {}
    fix = "give one of them another name with the TeleportDatabaseName tag"
    for name, versions in wanted.items():
        stored = owned.get(name)
        if stored is None and len(versions) > 1 and name not in held:
            sources = " and ".join(describe_source(r) for r in versions.values())
            withheld.extend(
                Withheld(
                    name=name,
                    action="create",
                    reason=f"name collision: {sources} all want this name; none of them is "
                    f"created ({fix})",
                    code=REASON_NAME_COLLISION,
                )
                for _ in versions
            )
            continue
        if stored is None:  # a free name, or a foreign one (the plan reports the conflict)
            desired[name] = next(iter(versions.values()))
            continue
        incumbent = versions.pop(identity(stored.resource), None)
        if incumbent is not None:
            desired[name] = incumbent
        holder = describe_source(stored.resource)
        withheld.extend(
            Withheld(
                name=name,
                action="create",
                reason=(
                    f"name collision: the name is registered for {holder}; "
                    f"{describe_source(newcomer)} is not given it ({fix})"
                ),
                code=REASON_NAME_COLLISION,
            )
            for newcomer in versions.values()
        )
        if incumbent is None:
            newcomers = " and ".join(describe_source(r) for r in versions.values())
            claimed[name] = (
                f"name collision: {holder} is gone, but {newcomers} wants its name; the entry "
                f"is kept so that the name does not pass to another source unreviewed ({fix})"
            )
    return desired, withheld, claimed


def make_plan(
    *,
    scopes: Sequence[ScopeResult],
    current: Sequence[StoredResource],
    discovery_group: str,
    policy: Policy = "sync",
    max_delete_fraction: float = 0.3,
    force: bool = False,
    window_deletes: int = 0,
    delete_window: float = 0.0,
    listed: ListingFreezes | None = None,
    accept_config_change: bool = False,
) -> Plan:
    """The plan. `window_deletes`: the deletes the journal holds for this group within the
    last `delete_window` seconds (the rule: `core.guard`); the cycle reads them. `listed` adds
    what the account/region listings freeze (`organization`). `force` applies once what the
    guard and the empty-scope rule hold back, and the config-change deletes;
    `accept_config_change` applies only those (see `core.coverage`)."""
    frozen = frozen_areas(scopes)
    if listed is not None:
        frozen = replace(frozen, accounts=listed.accounts, roles=listed.roles)
    coverage = coverage_of(scopes)
    if listed is not None:
        coverage = replace(coverage, accounts=listed.expired)
    by_name = {stored.resource.name: stored for stored in current}
    owned = {name: s for name, s in by_name.items() if is_owned(s.resource, discovery_group)}
    desired, withheld, claimed = claim_names(scopes, owned=owned, held=by_name.keys())

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
    retired: list[StoredResource] = []  # no scope covers their account-region any more
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
        elif name in claimed:
            withheld.append(
                Withheld(
                    name=name, action="delete", reason=claimed[name], code=REASON_NAME_COLLISION
                )
            )
        elif not coverage.covers(stored.resource):
            retired.append(stored)
        else:
            deletes.append(stored)

    # The fraction is of what this cycle could have touched: a frozen scope's resources can
    # neither be deleted nor dilute the guard for the scopes that did answer; nor can those of
    # an account-region the config no longer covers (config-change deletes have their own rule).
    touchable = sum(
        1
        for s in owned.values()
        if frozen.reason_for(s.resource) is None and coverage.covers(s.resource)
    )
    guard_tripped = not force and guard_trips(
        deletes=len(deletes),
        touchable=touchable,
        window_deletes=window_deletes,
        max_delete_fraction=max_delete_fraction,
    )
    if guard_tripped:
        reason = guard_reason(
            deletes=len(deletes),
            touchable=touchable,
            window_deletes=window_deletes,
            delete_window=delete_window,
            max_delete_fraction=max_delete_fraction,
        )
        withheld.extend(
            Withheld(name=s.resource.name, action="delete", reason=reason, code=REASON_GUARD)
            for s in deletes
        )
        deletes = []
    elif not force:
        deletes = _hold_empty_areas(deletes, empty_areas(scopes, owned.values()), withheld)
    if force or accept_config_change:
        deletes = sorted([*deletes, *retired], key=lambda s: s.resource.name)
    else:
        withheld.extend(
            Withheld(
                name=s.resource.name,
                action="delete",
                reason=config_change_reason(s.resource),
                code=REASON_CONFIG_CHANGE,
            )
            for s in retired
        )

    return Plan(
        create=tuple(create),
        update=tuple(update),
        delete=tuple(deletes),
        unchanged=unchanged,
        withheld=tuple(withheld),
        owned=len(owned),
        guard_tripped=guard_tripped,
    )


def _hold_empty_areas(
    deletes: list[StoredResource],
    empty: Mapping[tuple[str, str], int],
    withheld: list[Withheld],
) -> list[StoredResource]:
    """Withhold (into `withheld`) the deletes in empty account-regions; return the rest."""
    kept: list[StoredResource] = []
    for stored in deletes:
        area = (stored.resource.aws.account_id, stored.resource.aws.region)
        if area not in empty:
            kept.append(stored)
            continue
        account, region = area
        withheld.append(
            Withheld(
                name=stored.resource.name,
                action="delete",
                reason=(
                    f"empty scope: {account}/{region} answered with no resources while the "
                    f"registry holds {empty[area]} of its resources; check that account and "
                    "region, then run `discovery scan --force` to apply the deletes once"
                ),
                code=REASON_EMPTY_SCOPE,
            )
        )
    return kept
