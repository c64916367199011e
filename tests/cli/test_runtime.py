"""The `discovery` command's process settings (discovery/cli/runtime.py): the garbage
collector's thresholds that took a quarter of a large cycle's CPU at CPython's defaults."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest

from discovery.cli.runtime import GC_THRESHOLDS, tune_gc
from tests.harness.cli import run_in_process
from tests.harness.env import CLOSED_ENDPOINT, process_env

CONFIG = """\
discovery_group: runtime
aws:
  - {types: ["rdsproxy"], regions: ["us-east-1"]}
registry: {backend: sqlite, path: registry.db}
"""


@pytest.fixture
def default_thresholds() -> Iterator[None]:
    before = gc.get_threshold()
    gc.set_threshold(700, 10, 10)  # CPython's defaults
    try:
        yield
    finally:
        gc.set_threshold(*before)


@pytest.mark.usefixtures("default_thresholds")
def test_every_command_runs_with_the_tuned_collector(tmp_path: Path) -> None:
    path = tmp_path / "discovery.yaml"
    path.write_text(CONFIG)
    result = run_in_process(
        ["validate", "--config", str(path)], env=process_env(CLOSED_ENDPOINT), cwd=tmp_path
    )
    assert result.code == 0, result.stderr
    assert gc.get_threshold() == GC_THRESHOLDS


@pytest.mark.usefixtures("default_thresholds")
def test_the_young_generation_is_collected_in_large_batches_only() -> None:
    tune_gc()
    young, middle, old = gc.get_threshold()
    assert young >= 50_000 and (middle, old) == (10, 10)
