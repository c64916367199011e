"""Is every configured region one AWS has? A misspelt region (`us-east-7`, `eu-west`) is
otherwise scanned every cycle and fails as "could not connect" — or, worse, as an empty region.

The known names are the caller's (botocore's own endpoint data, see `discovery.aws.regions`):
this module only compares. A region newer than the installed botocore is let through with
`allow_unknown_regions: true` at the top level of the config.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Protocol

__all__ = ["OPT_OUT", "RegionProblem", "closest_regions", "unknown_region"]

ALL_REGIONS = "*"


class _HasRegions(Protocol):
    @property
    def regions(self) -> tuple[str, ...]: ...


@dataclass(frozen=True, kw_only=True)
class RegionProblem:
    loc: tuple[int | str, ...]
    message: str


def closest_regions(region: str, known: Collection[str], *, n: int = 3) -> list[str]:
    """The known region names nearest a misspelt one, best first."""
    return difflib.get_close_matches(region, sorted(known), n=n, cutoff=0.5)


OPT_OUT = "set allow_unknown_regions: true"


def unknown_region(
    matchers: Sequence[_HasRegions], known: Collection[str], *, opt_out: str = OPT_OUT
) -> RegionProblem | None:
    """The first configured region not in `known`, with the closest names; None if all are.
    `opt_out` is how this config format lets a newer region through."""
    for index, matcher in enumerate(matchers):
        for position, region in enumerate(matcher.regions):
            if region == ALL_REGIONS or region in known:
                continue
            close = closest_regions(region, known)
            hint = f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
            return RegionProblem(
                loc=("aws", index, "regions", position),
                message=(
                    f"{region!r} is not an AWS region this build knows; {hint}"
                    f"if it is a region newer than this build, {opt_out}"
                ),
            )
    return None
