"""Process-wide settings of the `discovery` command (and of the bench, which measures it).

The cyclic garbage collector's thresholds: CPython's defaults (700, 10, 10) start a young
collection every 700 net allocations, and a cycle over an organization allocates in the tens
of millions (botocore's request, signing and parsing objects) while thousands of scope tasks
stay alive, so each older collection walks a large heap. Measured on the org shape (1,000
accounts x 17 regions, bench/RESULTS.md): 8.7 s of a scan's 36 s of CPU went to the collector
(3,220 young, 293 middle and 26 full collections). With a young threshold of 50,000, the same
scan spent 0.15 s there and no more memory (peak RSS 155 MB either way): almost everything
the cycle allocates is freed by reference counting, not by the collector. Cycles are still
collected, only in larger batches; the older generations keep their default ratios.
"""

from __future__ import annotations

import gc

GC_THRESHOLDS = (50_000, 10, 10)


def tune_gc() -> None:
    """Set the collector's thresholds to `GC_THRESHOLDS` (idempotent)."""
    gc.set_threshold(*GC_THRESHOLDS)
