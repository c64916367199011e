"""A short soak in the default test run: the soak harness works and its invariants hold.

The real soak (1,000 cycles, memory and file descriptors) is `python -m tests.faults.soak`;
its figures are in docs/RELIABILITY.md.
"""

from __future__ import annotations

from tests.faults.soak import run_soak


def test_a_short_soak_keeps_every_invariant() -> None:
    figures = run_soak(cycles=40, seed=8)
    assert figures["cycles"] >= 40
    assert figures["exact_state_checks"] > 0
    assert figures["cycles_with_failed_scopes_checked"] > 0, figures["faults"]
    assert figures["open_fds"]["growth_after_warmup"] <= 4, figures
