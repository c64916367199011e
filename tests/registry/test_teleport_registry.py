"""`TeleportRegistry` against the stand-in tctl: round trips, revisions, batches, outcomes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from discovery.core.model import Changes, JournalStamp, Update
from discovery.registry.base import PartialApply, RegistryConflict
from discovery.registry.teleport import BATCH, TeleportRegistry
from discovery.registry.teleport_codec import decode_list
from discovery.registry.teleport_tctl import TctlError, TctlSettings
from tests.harness.tctl import StandinTctl
from tests.registry.registry_support import make_resource


@pytest.fixture
def tctl(tmp_path: Path) -> StandinTctl:
    return StandinTctl(tmp_path)


@pytest.fixture
def registry(tctl: StandinTctl) -> TeleportRegistry:
    return TeleportRegistry(TctlSettings(tctl=str(tctl.path), timeout=20))


async def test_what_tctl_stores_reads_back_equal(
    tctl: StandinTctl, registry: TeleportRegistry
) -> None:
    resources = [make_resource("a", full=True), make_resource("b")]
    await registry.apply(Changes(create=tuple(resources)))
    stored = tctl.resources()
    assert stored["a"]["metadata"]["labels"]["teleport.dev/origin"] == "dynamic"
    assert stored["a"]["metadata"]["revision"]
    listed = await registry.list_resources()
    assert [s.resource for s in listed] == resources  # origin, revision: normalized away


async def test_a_write_moves_the_revision_and_a_stale_one_is_a_conflict(
    tctl: StandinTctl, registry: TeleportRegistry
) -> None:
    await registry.apply(Changes(create=(make_resource("a"),)))
    (first,) = await registry.list_resources()
    await registry.apply(
        Changes(update=(Update(before=first, after=make_resource("a", variant=1)),))
    )
    (second,) = await registry.list_resources()
    assert second.revision != first.revision
    tctl.clear_calls()
    with pytest.raises(RegistryConflict):
        await registry.apply(Changes(delete=(first,)))
    assert tctl.writes() == []
    with pytest.raises(RegistryConflict):
        await registry.apply(Changes(create=(make_resource("a"),)))


async def test_creates_are_batched(tctl: StandinTctl, registry: TeleportRegistry) -> None:
    count = BATCH + 3
    await registry.apply(Changes(create=tuple(make_resource(f"r{i}") for i in range(count))))
    assert len(tctl.resources()) == count
    assert [c[0] for c in tctl.writes()] == ["create", "create"]


async def test_a_transient_batch_failure_is_retried_one_by_one(
    tctl: StandinTctl, registry: TeleportRegistry
) -> None:
    tctl.set_faults(fail_document={"name": "r2", "message": "etcd timeout", "times": 1})
    await registry.apply(Changes(create=tuple(make_resource(f"r{i}") for i in range(5))))
    assert sorted(tctl.resources()) == [f"r{i}" for i in range(5)]
    # The batch wrote r0, r1 and stopped; r2, r3, r4 went one by one.
    assert len(tctl.writes()) == 4


async def test_partial_apply_says_what_was_written_and_what_not(
    tctl: StandinTctl, registry: TeleportRegistry
) -> None:
    await registry.apply(Changes(create=(make_resource("old"),)))
    (old,) = await registry.list_resources()
    tctl.set_faults(fail_document={"name": "r1", "message": "quota exceeded"})
    with pytest.raises(PartialApply) as caught:
        await registry.apply(
            Changes(create=(make_resource("r0"), make_resource("r1")), delete=(old,))
        )
    assert caught.value.written == (("create", "r0"), ("delete", "old"))
    (failed,) = caught.value.failed
    assert (failed.action, failed.name) == ("create", "r1")
    assert "quota exceeded" in failed.reason
    assert sorted(tctl.resources()) == ["r0"]


async def test_a_global_failure_stops_the_apply(
    tctl: StandinTctl, registry: TeleportRegistry
) -> None:
    await registry.apply(Changes(create=(make_resource("old"),)))
    (old,) = await registry.list_resources()
    tctl.set_faults(deny=["create"])
    tctl.clear_calls()
    changes = Changes(create=(make_resource("a"), make_resource("b")), delete=(old,))
    with pytest.raises(TctlError, match=r"verbs \[list, read, create, update, delete\]"):
        await registry.apply(changes)
    # One create call told it all: no one-by-one retries, no rm after it; nothing was written.
    assert [c[0] for c in tctl.writes()] == ["create"]
    assert sorted(tctl.resources()) == ["old"]


def test_empty_listings_in_both_forms() -> None:
    assert decode_list("[]") == []
    assert decode_list("null") == []  # tctl before WriteJSONArray printed a nil slice as null


async def test_a_missing_identity_file_names_the_renewal(tctl: StandinTctl, tmp_path: Path) -> None:
    registry = TeleportRegistry(
        TctlSettings(
            tctl=str(tctl.path),
            auth_server="teleport.example.com:443",
            identity=str(tmp_path / "gone"),
            timeout=20,
        )
    )
    with pytest.raises(TctlError, match="renew the bot identity") as caught:
        await registry.list_resources()
    assert caught.value.kind == "identity"


async def test_the_journal_keeps_only_what_was_written(tctl: StandinTctl, tmp_path: Path) -> None:
    journal = tmp_path / "journal.jsonl"
    registry = TeleportRegistry(TctlSettings(tctl=str(tctl.path), timeout=20), journal=journal)
    at = datetime(2026, 12, 2, 6, 0, tzinfo=UTC)
    stamp = JournalStamp(cycle_id="c1", discovery_group="prod", at=at)
    tctl.set_faults(fail_document={"name": "b", "message": "quota exceeded"})
    with pytest.raises(PartialApply):
        await registry.apply(
            Changes(create=(make_resource("a"), make_resource("b")), journal=stamp)
        )
    (entry,) = await registry.history(discovery_group="prod")
    assert (entry.cycle_id, entry.created, entry.deleted) == ("c1", ("a",), ())
    assert await registry.history(discovery_group="other") == []
    assert await registry.history(since=at + timedelta(seconds=1)) == []
    # Another process (the next scan) reads the same file.
    again = TeleportRegistry(TctlSettings(tctl=str(tctl.path)), journal=journal)
    assert await again.history() == [entry]


async def test_no_journal_file_no_history(registry: TeleportRegistry, tmp_path: Path) -> None:
    stamp = JournalStamp(cycle_id="c1", discovery_group="prod", at=datetime.now(UTC))
    await registry.apply(Changes(create=(make_resource("a"),), journal=stamp))
    assert await registry.history() == []
    assert list(tmp_path.glob("*.jsonl")) == []
