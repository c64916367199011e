"""The connection role in the cycle: registered with every resource, converged when it changes.

Resources stored before `spec.aws.assume_role_arn` was registered still parse; the next cycle
updates them (one update each) and the one after writes nothing.
"""

from __future__ import annotations

from dataclasses import replace

from discovery.core.config import config_from_mapping
from discovery.core.model import Resource
from discovery.registry.memory import MemoryRegistry
from tests.reconcile.test_cycle import (
    EAST,
    GROUP,
    ROLE_A,
    FakeSource,
    cycle,
    held,
    make_config,
    make_proxy,
    resource_name,
)

CONNECT_ROLE = "arn:aws:iam::111111111111:role/teleport-db-access"


async def test_a_resource_stored_without_the_role_is_updated_once() -> None:
    source, registry = FakeSource([make_proxy("orders")]), MemoryRegistry()
    await cycle(source, registry)
    (stored,) = await registry.list_resources()
    legacy = stored.resource.to_dict()
    del legacy["spec"]["aws"]["assume_role_arn"]  # what an older version wrote
    old = Resource.from_dict(legacy)
    assert old.aws.assume_role_arn == ""
    registry = MemoryRegistry(initial=[old])

    report = await cycle(source, registry)

    (update,) = report.plan.update
    assert update.before.resource.aws.assume_role_arn == ""
    assert update.after.aws.assume_role_arn == ROLE_A
    assert (await held(registry))[resource_name("orders")].aws.assume_role_arn == ROLE_A
    assert not (await cycle(source, registry)).plan.changes


async def test_setting_db_assume_role_arn_updates_and_fetches_with_the_discovery_role() -> None:
    source, registry = FakeSource([make_proxy("orders")]), MemoryRegistry()
    await cycle(source, registry, make_config())
    config = config_from_mapping(
        {
            "discovery_group": GROUP,
            "aws": [
                {
                    "types": ["rdsproxy"],
                    "regions": [EAST],
                    "assume_role_arn": ROLE_A,
                    "db_assume_role_arn": CONNECT_ROLE,
                }
            ],
        }
    )
    source.fetched.clear()

    report = await cycle(source, registry, config)

    (update,) = report.plan.update
    assert (update.before.resource.aws.assume_role_arn, update.after.aws.assume_role_arn) == (
        ROLE_A,
        CONNECT_ROLE,
    )
    assert update.after == replace(
        update.before.resource,
        aws=replace(update.before.resource.aws, assume_role_arn=CONNECT_ROLE),
    )
    assert [s.assume_role_arn for s in source.fetched] == [ROLE_A]
    assert not (await cycle(source, registry, config)).plan.changes
