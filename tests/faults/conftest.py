"""Fixtures for the fault matrix: one emulator for the package, a fresh world per row."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from discovery.emulator import EmulatorThread
from tests.faults.support import World, make_config, make_fleet


@pytest.fixture(scope="session")
def emulator() -> Iterator[EmulatorThread]:
    with EmulatorThread(make_fleet()) as emu:
        yield emu


@pytest.fixture
def clean_emulator(emulator: EmulatorThread) -> Iterator[EmulatorThread]:
    """The emulator with no faults, no latency, no throttling, before and after the test."""

    def reset() -> None:
        emulator.set_faults([])
        emulator.set_settings(latency_ms=0, throttle=None)

    reset()
    yield emulator
    reset()


@pytest.fixture
def world(clean_emulator: EmulatorThread, tmp_path: Path) -> World:
    """An SQLite registry seeded from fleet v0; the emulator already serves fleet v1."""
    made = World(
        emulator=clean_emulator,
        workdir=tmp_path,
        registry_spec=f"sqlite:{tmp_path / 'registry.db'}",
        config=make_config(),
    )
    made.prepare()
    return made
