"""The delete guard's rule over a sliding window (DESIGN §6), pure.

One cycle under `safety.max_delete_fraction` is not enough: a slow drain (40 -> 29 -> 21 ->
... -> 0) passes it step by step. So the guard also counts the deletes the apply journal holds
for the discovery group within `safety.delete_window`; the cycle reads them (see
`discovery.core.journal.window_deletes`) and `make_plan` applies this rule.
"""

from __future__ import annotations

from discovery.core.durations import format_duration

__all__ = ["GUARD_MIN_DELETES", "guard_reason", "guard_trips"]

GUARD_MIN_DELETES = 3


def guard_trips(
    *, deletes: int, touchable: int, window_deletes: int, max_delete_fraction: float
) -> bool:
    """The delete guard over a sliding window.

    With D this cycle's deletes, W the deletes journaled for the group within the window and
    T the owned resources this cycle could touch: trip when D > 0, W + D > GUARD_MIN_DELETES and
    W + D > max_delete_fraction x (T + W). T + W approximates the fleet the window started from,
    so 40 -> 29 -> 21 trips on the second step although each step is under the fraction.
    With W = 0 this is the one-cycle rule.
    """
    total = deletes + window_deletes
    return (
        deletes > 0
        and total > GUARD_MIN_DELETES
        and total > max_delete_fraction * (touchable + window_deletes)
    )


def guard_reason(
    *,
    deletes: int,
    touchable: int,
    window_deletes: int,
    delete_window: float,
    max_delete_fraction: float,
) -> str:
    fix = "check the fleet, then run `discovery scan --force` to apply them once"
    if window_deletes == 0:
        return (
            f"delete guard: {deletes} of the {touchable} owned resources this cycle could "
            f"touch (frozen scopes excluded) would be deleted, more than "
            f"safety.max_delete_fraction={max_delete_fraction:g}; {fix}"
        )
    window = format_duration(delete_window)
    return (
        f"delete guard: {deletes} deletes now and {window_deletes} already applied within "
        f"safety.delete_window={window} make {deletes + window_deletes} of the "
        f"{touchable + window_deletes} owned resources (the {touchable} this cycle could touch, "
        f"frozen scopes excluded, and the {window_deletes} deleted in the window), more than "
        f"safety.max_delete_fraction={max_delete_fraction:g}; {fix}"
    )
