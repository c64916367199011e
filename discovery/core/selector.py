"""Tags → labels, and Teleport's label selector over them (DESIGN §4).

A matcher picks resources by their labels, which are the generated ones with the proxy's
tags on top. Which tags may become labels, and how a selector value matches (`*`, anchored
glob, `^...$` regular expression), follow Teleport so the same config selects the same fleet.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from typing import Any

import re2

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


class SelectorPatternError(ValueError):
    """A selector's `^...$` entry that is not a valid RE2 expression."""


def _re2_options() -> re2.Options:
    options = re2.Options()
    options.dot_nl = True  # `.` matches a newline too, as before (Python's re.S)
    options.log_errors = False  # the config error says what is wrong; no absl line on stderr
    return options


_OPTIONS = _re2_options()


@functools.lru_cache(maxsize=4096)
def compile_pattern(pattern: str) -> Any:
    """A selector regex, compiled with RE2: matching takes time linear in the value.

    Tag values are written by whoever may tag a proxy; with a backtracking engine a pattern
    such as `^([a-z0-9]+-?)+$` and a value of thirty letters and a `!` block the event loop for
    minutes. RE2 is also what Teleport's Go regexps are: the same syntax (no backreferences or
    lookarounds) and the same `$` (end of text only, not before a final newline).
    """
    try:
        return re2.compile(pattern, _OPTIONS)
    except re2.error as exc:
        detail = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else exc
        raise SelectorPatternError(
            f"{detail} (selector patterns are RE2 syntax, as Teleport's Go regexps: no "
            "backreferences or lookarounds)"
        ) from None


def _glob_to_regex(pattern: str) -> Any:
    # RE2 too: with many `*`s a backtracking engine is polynomial in the value's length.
    return compile_pattern("^" + ".*".join(re.escape(p) for p in pattern.split("*")) + "$")


def value_matches(value: str, patterns: str | Sequence[str]) -> bool:
    """OR over entries: `*` any, `^...$` a regular expression, anything else an anchored glob."""
    if isinstance(patterns, str):
        patterns = (patterns,)  # a single string is one entry, not a sequence of characters
    for pattern in patterns:
        if pattern == WILDCARD:
            return True
        if pattern.startswith("^") and pattern.endswith("$"):
            if compile_pattern(pattern).search(value) is not None:
                return True
        elif _glob_to_regex(pattern).search(value) is not None:
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
