"""A reload is all or nothing (issue 12, hole 7, first half): a config that cannot be applied
after all is rejected through the normal path (one log line, the rejected-reload metric) and
leaves no trace: the running config stays, and the new registry it opened is never used."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry

from discovery.core.config import Config
from discovery.daemon.backend import Backend, BackendSlot
from discovery.daemon.reload import Reloader
from discovery.output.logs import Redactor
from discovery.output.metrics import Metrics
from discovery.registry.base import Registry
from discovery.registry.leader import Leadership
from discovery.registry.memory import MemoryRegistry
from tests.daemon.inprocess import ROLE, FakeLeadership, Lock, make_config


def write(path: Path, **overrides: object) -> None:
    doc: dict[str, object] = {
        "discovery_group": "unit",
        "poll_interval": "1h",
        "aws": [{"types": ["rdsproxy"], "regions": ["us-east-1"], "assume_role_arn": ROLE}],
    }
    doc.update(overrides)
    path.write_text(yaml.safe_dump(doc))


def rejected(metrics: Metrics) -> float:
    value = metrics.registry.get_sample_value(
        "rdsproxy_discovery_config_reloads_total", {"result": "rejected"}
    )
    return value or 0.0


class Opened:
    """The BackendOpener of the test: records each registry it opens."""

    def __init__(self) -> None:
        self.registries: list[MemoryRegistry] = []

    def __call__(self, config: Config, config_path: Path, /) -> tuple[Registry, Leadership]:
        registry = MemoryRegistry()
        self.registries.append(registry)
        return registry, FakeLeadership(Lock())


def reloader(
    tmp_path: Path, *, on_change: object, opened: Opened, metrics: Metrics
) -> tuple[Reloader, BackendSlot]:
    path = tmp_path / "discovery.yaml"
    write(path)
    slot = BackendSlot(Backend.of(MemoryRegistry(), FakeLeadership(Lock())))
    return (
        Reloader(
            config=make_config(),
            config_path=path,
            open_backend=opened,
            slot=slot,
            metrics=metrics,
            redactor=Redactor(),
            listen_fixed=False,
            on_change=on_change,  # type: ignore[arg-type]
        ),
        slot,
    )


async def test_a_reload_that_fails_to_apply_is_rejected_and_its_new_registry_never_used(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def refuse(old: Config, new: Config) -> None:
        raise ValueError("the scheduler refused the new trigger")

    metrics, opened = Metrics(registry=CollectorRegistry()), Opened()
    reload, slot = reloader(tmp_path, on_change=refuse, opened=opened, metrics=metrics)
    before = reload.config
    write(reload.config_path, registry={"backend": "sqlite", "path": "elsewhere.db"})
    caplog.set_level(logging.ERROR, logger="discovery.daemon.reload")

    assert reload.reload() is False
    assert reload.config is before
    assert rejected(metrics) == 1
    assert "config reload rejected" in caplog.text and "cannot apply it" in caplog.text
    assert len(opened.registries) == 1 and not slot.pending  # opened, but withdrawn
    await slot.swap()
    assert opened.registries[0].closed  # closed at the next swap, never used


async def test_an_unexpected_error_never_leaves_the_signal_callback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def ok(old: Config, new: Config) -> None:
        return None

    metrics, opened = Metrics(registry=CollectorRegistry()), Opened()
    reload, _ = reloader(tmp_path, on_change=ok, opened=opened, metrics=metrics)
    caplog.set_level(logging.ERROR, logger="discovery.daemon.reload")

    class BrokenSlot(BackendSlot):
        def offer(self, backend: Backend) -> None:
            raise AssertionError("a bug in the slot")

    reload._slot = BrokenSlot(reload._slot.current)  # a bug where nothing expects one
    write(reload.config_path, registry={"backend": "sqlite", "path": "elsewhere.db"})
    assert reload.reload() is False  # not an exception out of the SIGHUP callback
    assert rejected(metrics) == 1
    assert "unexpected error: AssertionError" in caplog.text


async def test_withdrawing_a_replacing_offer_restores_the_earlier_one() -> None:
    first = Backend.of(MemoryRegistry(), FakeLeadership(Lock()))
    earlier_registry, later_registry = MemoryRegistry(), MemoryRegistry()
    earlier = Backend.of(earlier_registry, FakeLeadership(Lock()))
    later = Backend.of(later_registry, FakeLeadership(Lock()))
    slot = BackendSlot(first)
    slot.offer(earlier)  # a reload that was taken
    slot.offer(later)  # a second one, rejected after all
    slot.withdraw(later)
    await slot.swap()
    assert slot.current is earlier
    assert later_registry.closed and not earlier_registry.closed


async def test_a_changed_aws_client_or_group_says_what_the_operator_must_do(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def ok(old: Config, new: Config) -> None:
        return None

    metrics, opened = Metrics(registry=CollectorRegistry()), Opened()
    reload, _ = reloader(tmp_path, on_change=ok, opened=opened, metrics=metrics)
    write(reload.config_path, aws_client={"read_timeout": "20s"}, discovery_group="renamed")
    caplog.set_level(logging.INFO, logger="discovery.daemon.reload")

    assert reload.reload() is True
    assert "aws_client changed; it applies only when the daemon restarts" in caplog.text
    assert "except aws_client (from the next restart)" in caplog.text
    assert "discovery registry adopt --from-group unit" in caplog.text
