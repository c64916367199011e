"""`discovery registry adopt --from-group OLD` (issue 12, hole 13): renaming `discovery_group`
no longer orphans every registration; ownership moves explicitly, dry-run first, in one
transaction, and takes cloud-origin resources that carry no group (Teleport's handover rule)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import Any

from discovery.core.model import LABEL_DISCOVERY_GROUP, Changes, Resource
from discovery.registry.sqlite import SQLiteRegistry
from tests.cli.conftest import Harness, base_config

GROUP = "teleport.internal/discovery-group-name"


def relabel(path: Path, name: str, labels: dict[str, str | None], new_name: str = "") -> None:
    """Add a copy of NAME, relabelled (None removes a label), as another resource."""

    async def run() -> None:
        registry = SQLiteRegistry(path)
        try:
            stored = {s.resource.name: s for s in await registry.list_resources()}
            base = stored[name].resource
            merged = {**base.labels, **{k: v for k, v in labels.items() if v is not None}}
            for key in [k for k, v in labels.items() if v is None]:
                merged.pop(key, None)
            copy: Resource = replace(base, name=new_name or f"{name}-copy", labels=merged)
            await registry.apply(Changes(create=(copy,)))
        finally:
            await registry.close()

    asyncio.run(run())


def groups(registry: dict[str, dict[str, Any]]) -> dict[str, str | None]:
    return {name: doc["metadata"]["labels"].get(GROUP) for name, doc in registry.items()}


def test_renaming_the_group_then_adopting_keeps_every_registration(harness: Harness) -> None:
    old = harness.write_config(base_config("old"), name="old.yaml")
    assert harness.scan(old).code == 0
    registered = harness.registry(old)
    some = sorted(registered)[0]
    db = harness.tmp_path / "registry.db"
    # cloud origin, no group: Teleport's handover rule says any group may take it
    relabel(db, some, {LABEL_DISCOVERY_GROUP: None}, new_name="legacy-db")
    # another group's resource: never ours to move
    relabel(db, some, {LABEL_DISCOVERY_GROUP: "other"}, new_name="other-db")
    before = groups(harness.registry(old))

    new = harness.write_config(base_config("new"), name="new.yaml")
    # the orphaning this fixes: the new group finds every name held by a foreign resource
    orphaned = harness.scan(new, "--dry-run").json()
    assert not orphaned["plan"]["create"] and len(orphaned["withheld"]) == len(registered)

    dry = harness.run("registry", "adopt", "--from-group", "old", "--dry-run", config=new)
    assert dry.code == 0, dry.stderr
    assert f"would adopt {len(registered) + 1} resource(s)" in dry.stdout
    assert "would adopt legacy-db (from no group)" in dry.stdout
    assert "other-db" not in dry.stdout
    assert groups(harness.registry(new)) == before  # a dry run writes nothing

    done = harness.run("registry", "adopt", "--from-group", "old", config=new)
    assert done.code == 0, done.stderr
    assert "in one transaction" in done.stdout
    after = groups(harness.registry(new))
    assert after["other-db"] == "other"
    assert {n: g for n, g in after.items() if n != "other-db"} == dict.fromkeys(
        [*registered, "legacy-db"], "new"
    )

    steady = harness.scan(new)
    assert steady.code == 0, steady.stderr
    doc = steady.json()
    plan = doc["plan"]
    # every registration kept: nothing created or withheld; the legacy copy is ours now and
    # not desired, so it is the one delete
    assert not plan["create"] and not plan["update"] and not doc["withheld"]
    assert [d["metadata"]["name"] for d in plan["delete"]] == ["legacy-db"]
    assert plan["unchanged"] == len(registered)


def test_adopting_from_the_group_it_already_is_is_a_usage_error(harness: Harness) -> None:
    config = harness.write_config(base_config("same"))
    result = harness.run("registry", "adopt", "--from-group", "same", config=config)
    assert result.code == 2
    assert "--from-group 'same' is already discovery_group" in result.stderr
