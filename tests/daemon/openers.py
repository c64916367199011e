"""The daemon's `BackendOpener`, built for in-process tests from a registry opener and an
elector opener, so that a test can record (and refuse) each of the two on its own."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from discovery.core.config import Config
from discovery.daemon.backend import BackendOpener
from discovery.registry.base import Registry
from discovery.registry.leader import Leadership
from discovery.wiring import open_leadership


class RegistryOpener(Protocol):
    """Opens the registry of a config, fenced on `leadership`."""

    def __call__(
        self, config: Config, config_path: Path, /, *, leadership: Leadership
    ) -> Registry: ...


LeadershipOpener = Callable[[Config, Path], Leadership]


def default_leadership(config: Config, config_path: Path) -> Leadership:
    return open_leadership(config, config_path)


def backend_opener(
    open_registry: RegistryOpener, open_leadership: LeadershipOpener = default_leadership
) -> BackendOpener:
    """The elector first, then the registry fenced on it: as the daemon's wiring opens them."""

    def open_backend(config: Config, config_path: Path, /) -> tuple[Registry, Leadership]:
        leadership = open_leadership(config, config_path)
        return open_registry(config, config_path, leadership=leadership), leadership

    return open_backend
