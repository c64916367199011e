"""Durations and numbers as a config file writes them, each held to the range it is used in.

A value that YAML or pydantic would coerce is refused here instead: `true` is not a number
(pydantic reads it as 1), `.nan`, `.inf` and `1.0e+300` are not durations (the scheduler
either crashes on them or never fires), and `1ms` is not a poll interval (hundreds of AWS
cycles a second). Each refusal says what is allowed, so the config error names the fix.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_ZERO_DURATION = re.compile(r"0+(?:\.0+)?(?:ms|s|m|h)?")

# The daemon's product floor: AWS is called every cycle in every scope, and DESIGN §5 counts on
# minutes. Tests lower it through the CLI wiring's DISCOVERY_MIN_POLL_INTERVAL, never the file.
MIN_POLL_INTERVAL = 10.0
# Below this not even a test may go: the scheduler would spin.
FLOOR_POLL_INTERVAL = 0.1
MAX_POLL_INTERVAL = 24 * 3600.0
# One AWS call attempt, or opening its connection: at least a second, at most an hour.
MIN_TIMEOUT = 1.0
MAX_TIMEOUT = 3600.0
# The delete guard's sliding window (`safety.delete_window`): 0 counts this cycle only; a
# week at most, which is also how long the apply journal keeps its rows.
MAX_DELETE_WINDOW = 7 * 24 * 3600.0


def format_duration(seconds: float) -> str:
    """Seconds → how the config writes them: `10s`, `100ms`, `2m`, `1h` (`.nan`, `.inf`)."""
    if not math.isfinite(seconds):
        return ".nan" if math.isnan(seconds) else ("-" if seconds < 0 else "") + ".inf"
    if seconds <= 0:
        return f"{seconds:g}s"
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    for unit, size in (("h", 3600.0), ("m", 60.0)):
        if seconds >= size and (seconds / size).is_integer():
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def parse_seconds(value: object) -> float:
    """`30s`, `5m`, `1h`, `1m30s` → seconds; a bare number is seconds. Not yet range-checked:
    the result may be zero, negative or not finite (`.nan`, `.inf`, `1e400s`)."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30s, 5m or 1h")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        parts = _DURATION_PART.findall(text)
        if not parts or "".join(n + u for n, u in parts) != text:
            raise ValueError(f"{value!r} is not a duration; write it like 30s, 5m or 1h")
        seconds = sum(float(n) * _DURATION_UNITS[u] for n, u in parts)
    else:
        raise ValueError("expected a duration such as 30s, 5m or 1h")
    return seconds


def parse_duration(value: object) -> float:
    """A duration (see `parse_seconds`) that is finite and greater than zero."""
    seconds = parse_seconds(value)
    if not math.isfinite(seconds):
        raise ValueError("a duration must be a finite number of seconds, such as 30s, 5m or 1h")
    if seconds <= 0:
        raise ValueError("a duration must be greater than zero")
    return seconds


def check_range(seconds: float, *, low: float, high: float) -> float:
    """`seconds` if `low <= seconds <= high`, else a ValueError saying the allowed range."""
    if not (math.isfinite(seconds) and low <= seconds <= high):
        raise ValueError(
            f"must be between {format_duration(low)} and {format_duration(high)}, "
            f"got {format_duration(seconds)}"
        )
    return seconds


def bounded_duration(*, low: float, high: float) -> Callable[[object], float]:
    """A before-validator: a duration within [low, high]."""

    def parse(value: object) -> float:
        return check_range(parse_seconds(value), low=low, high=high)

    return parse


def parse_jitter(value: object) -> float | None:
    """A duration, or zero (`0`, `0s`) to turn the daemon's jitter off; None means the default."""
    if value is None:
        return None
    if not isinstance(value, bool) and isinstance(value, int | float | str):
        text = str(value).strip()
        if _ZERO_DURATION.fullmatch(text):
            return 0.0
    return parse_duration(value)


def strict_fraction(value: object) -> float:
    """A YAML number from 0 to 1 (`0`, `0.3`, `1`); not `true`, not `"0.3"`, not `.nan`."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"expected a number from 0 to 1, e.g. 0.3, got {_shown(value)}")
    if not (math.isfinite(value) and 0 <= value <= 1):
        raise ValueError(f"must be a number from 0 to 1, e.g. 0.3, got {_shown(value)}")
    return float(value)


def strict_int(value: object) -> object:
    """Only a YAML integer passes on to the field's range check: not `true`, `3.0` or `"3"`."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"expected a whole number, got {_shown(value)}")
    return value


def _shown(value: object) -> str:
    """A rejected value as YAML spells it: `true`, `.nan`, `'3'`."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return format_duration(value)
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
