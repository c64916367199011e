"""Tags → labels, and Teleport's label selector over them (DESIGN §4).

A matcher picks resources by their labels, which are the generated ones with the proxy's
tags on top. Which tags may become labels, and how a selector value matches (`*`, anchored
glob, `^...$` regular expression), follow Teleport so the same config selects the same fleet.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from discovery.core.model import Skipped

WILDCARD = "*"
# Used with fullmatch: Python's `$` also matches before a final newline, Go's (Teleport's) not.
LABEL_KEY_RE = re.compile(r"[a-zA-Z/.0-9_:*-]+")
# What no registry can hold: PostgreSQL's jsonb refuses NUL, UTF-8 refuses unpaired surrogates
# (which only a JSON escape in an AWS answer could produce). One such value in the plan would
# fail every apply of the discovery group, so it never gets there.
_UNSTORABLE_RE = re.compile("[\x00\ud800-\udfff]")


def storable(text: str) -> bool:
    """Whether every registry backend can store `text` (no NUL, no unpaired surrogate)."""
    return _UNSTORABLE_RE.search(text) is None


def tags_to_labels(tags: Mapping[str, str], owner: str) -> tuple[dict[str, str], list[Skipped]]:
    """Valid tag keys become labels; others are dropped and reported (never fatal)."""
    labels: dict[str, str] = {}
    dropped: list[Skipped] = []
    for key, value in tags.items():
        if not LABEL_KEY_RE.fullmatch(key):
            dropped.append(
                Skipped(
                    name=owner,
                    reason=f"tag key {key!r} is not a valid label key; tag dropped",
                    code="invalid-tag-key",
                )
            )
        elif not storable(value):
            dropped.append(
                Skipped(
                    name=owner,
                    reason=(
                        f"the value of tag {key!r} holds a character no registry can store "
                        "(NUL or an unpaired surrogate); tag dropped"
                    ),
                    code="invalid-tag-value",
                )
            )
        else:
            labels[key] = value
    return labels, dropped


def _glob_to_regex(pattern: str) -> re.Pattern[str]:
    return re.compile("^" + ".*".join(re.escape(p) for p in pattern.split("*")) + "$", re.S)


def value_matches(value: str, patterns: str | Sequence[str]) -> bool:
    """OR over entries: `*` any, `^...$` a regular expression, anything else an anchored glob."""
    if isinstance(patterns, str):
        patterns = (patterns,)  # a single string is one entry, not a sequence of characters
    for pattern in patterns:
        if pattern == WILDCARD:
            return True
        if pattern.startswith("^") and pattern.endswith("$"):
            if re.match(pattern, value, re.S):
                return True
        elif _glob_to_regex(pattern).match(value):
            return True
    return False


def selector_matches(
    selector: Mapping[str, str | Sequence[str]], labels: Mapping[str, str]
) -> bool:
    """Teleport's MatchLabels: `{"*": "*"}` matches all; otherwise every key present (AND)."""
    if not selector:
        return False
    wildcard = selector.get(WILDCARD, ())
    if wildcard == WILDCARD or list(wildcard) == [WILDCARD]:
        return True
    for key, patterns in selector.items():
        if key not in labels:
            return False
        if not value_matches(labels[key], patterns):
            return False
    return True
