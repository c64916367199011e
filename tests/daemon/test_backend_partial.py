"""A partial apply (a registry without transactions wrote part of the changes) is an answer:
the daemon's registry stays reachable, unlike a registry that did not answer at all."""

from __future__ import annotations

import pytest

from discovery.core.model import Changes
from discovery.daemon.backend import GuardedRegistry
from discovery.registry.base import PartialApply, RegistryError, WriteFailure
from discovery.registry.memory import MemoryRegistry
from tests.registry.registry_support import make_resource


async def test_a_partial_apply_keeps_the_registry_reachable() -> None:
    inner = MemoryRegistry()
    guarded = GuardedRegistry(inner)
    failure = WriteFailure(action="create", name="b", reason="quota")
    inner.fail_next_apply(PartialApply(written=[("create", "a")], failed=[failure]))
    with pytest.raises(
        PartialApply, match=r"wrote 1 of 2 changes \(create a\); not written: create b: quota"
    ):
        await guarded.apply(Changes(create=(make_resource("a"), make_resource("b"))))
    assert guarded.reachable is True


async def test_an_unanswered_apply_marks_it_unreachable() -> None:
    inner = MemoryRegistry()
    guarded = GuardedRegistry(inner)
    inner.fail_next_apply(RegistryError("tctl get db: connection refused"))
    with pytest.raises(RegistryError):
        await guarded.apply(Changes(create=(make_resource("a"),)))
    assert guarded.reachable is False
