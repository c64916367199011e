"""Tags → labels and the tag selector (DESIGN §4), as pure functions on plain values.

How the selector applies to a converted proxy (which labels it sees, and when) is in
test_convert.py; here are its matching rules on their own.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping, Sequence

import pytest

from discovery.core.selector import (
    SelectorPatternError,
    compile_pattern,
    selector_matches,
    tags_to_labels,
    value_matches,
)


@pytest.mark.parametrize(
    "key",
    [
        pytest.param("aws:cloudformation:stack-name", id="colons"),
        pytest.param("team/sub-team", id="slash"),
        pytest.param("a.b_c", id="dot-underscore"),
        pytest.param("wild*card", id="asterisk"),
        pytest.param("Key-1", id="upper-and-digit"),
    ],
)
def test_valid_tag_keys_become_labels(key: str) -> None:
    labels, dropped = tags_to_labels({key: "value"}, "rds-proxy-1")

    assert labels == {key: "value"}
    assert dropped == []


LABELS = {
    "env": "prod",
    "team": "db-core",
    "region": "us-east-1",
    "engine": "POSTGRESQL",
    "host": "a.c",
    "empty": "",
}


@pytest.mark.parametrize(
    ("selector", "matches"),
    [
        pytest.param({"*": ["*"]}, True, id="match-all"),
        pytest.param({"*": "*"}, True, id="match-all-string-value"),
        pytest.param({"env": ["prod"]}, True, id="exact"),
        pytest.param({"env": ["staging"]}, False, id="exact-mismatch"),
        pytest.param({"env": "prod"}, True, id="string-value"),
        pytest.param({"env": "staging"}, False, id="string-value-mismatch"),
        pytest.param({"team": "xdb-*"}, False, id="string-glob-value-mismatch"),
        pytest.param({"env": ["staging", "prod"]}, True, id="or-within-list"),
        pytest.param({"env": ["staging", "dev"]}, False, id="or-within-list-none"),
        pytest.param({"env": ["prod"], "team": ["db-core"]}, True, id="and-across-keys"),
        pytest.param({"env": ["prod"], "team": ["web"]}, False, id="and-one-key-fails"),
        pytest.param({"missing": ["*"]}, False, id="missing-key-even-with-star"),
        pytest.param({"env": ["prod"], "missing": ["x"]}, False, id="one-key-missing"),
        pytest.param({"env": ["*"]}, True, id="star-entry"),
        pytest.param({"env": ["nope", "*"]}, True, id="star-entry-in-list"),
        pytest.param({"empty": ["*"]}, True, id="star-matches-empty-value"),
        pytest.param({"team": ["db-*"]}, True, id="glob-prefix"),
        pytest.param({"team": ["*-core"]}, True, id="glob-suffix"),
        pytest.param({"team": ["d*e"]}, True, id="glob-middle"),
        pytest.param({"team": ["db-"]}, False, id="no-wildcard-is-exact"),
        pytest.param({"team": ["db"]}, False, id="glob-anchored-at-end"),
        pytest.param({"team": ["b-*"]}, False, id="glob-anchored-at-start"),
        pytest.param({"team": ["core"]}, False, id="no-substring-match"),
        pytest.param({"host": ["a.c"]}, True, id="literal-dot-matches-itself"),
        pytest.param({"team": ["db.core"]}, False, id="dot-is-literal-not-any"),
        pytest.param({"env": ["pro?"]}, False, id="question-mark-is-literal"),
        pytest.param({"env": ["[p]rod"]}, False, id="brackets-are-literal"),
        pytest.param({"env": ["p+"]}, False, id="plus-is-literal"),
        pytest.param({"region": ["^us-.*$"]}, True, id="regex"),
        pytest.param({"region": ["^eu-.*$"]}, False, id="regex-mismatch"),
        pytest.param({"engine": ["^(MYSQL|POSTGRESQL)$"]}, True, id="regex-alternation"),
        pytest.param({"region": ["^us-east$"]}, False, id="regex-anchored"),
        pytest.param({"env": ["^prod"]}, False, id="caret-without-dollar-is-a-glob"),
        pytest.param({"env": ["prod$"]}, False, id="dollar-without-caret-is-a-glob"),
        pytest.param({"env": ["PROD"]}, False, id="case-sensitive"),
    ],
)
def test_selector(selector: Mapping[str, Sequence[str]], matches: bool) -> None:
    assert selector_matches(selector, LABELS) is matches


@pytest.mark.parametrize(
    ("value", "patterns", "matches"),
    [
        pytest.param("db-1", ["db-*"], True, id="glob-db-star"),
        pytest.param("xdb-1", ["db-*"], False, id="glob-anchored-start"),
        pytest.param("db-", ["db-*"], True, id="star-matches-empty"),
        pytest.param("abc", ["a.c"], False, id="dot-literal"),
        pytest.param("a.c", ["a.c"], True, id="dot-itself"),
        pytest.param("a\\c", ["a\\c"], True, id="backslash-literal"),
        pytest.param("anything", ["*"], True, id="star"),
        pytest.param("x", [], False, id="no-entries"),
        pytest.param("abc", ["^a.c$"], True, id="regex-dot"),
        pytest.param("abcd", ["^a.c$"], False, id="regex-anchored"),
    ],
)
def test_value_matches(value: str, patterns: list[str], matches: bool) -> None:
    assert value_matches(value, patterns) is matches


# --- issue 12, hole 9: a selector cannot take super-linear time --------------------------------

EVIL_PATTERN = "^([a-z0-9]+-?)+$"  # nested quantifiers: exponential for a backtracking engine
EVIL_VALUE = "a" * 30 + "!"
# A backtracking engine needs minutes for this match; RE2 needs microseconds. The bound (a
# child's start included) is generous so a loaded machine never fails the test, and far below
# what backtracking takes.
MATCH_BOUND_S = 20.0


def _matches_in_a_child(value: str, pattern: str) -> bool:
    """value_matches in a child process, which must answer within the bound.

    A child, not a thread: a backtracking match holds the interpreter lock, so a thread's
    timeout could not even fire, while a child can be killed.
    """
    code = (
        "import sys; from discovery.core.selector import value_matches; "
        "print(value_matches(sys.argv[1], [sys.argv[2]]))"
    )
    try:
        done = subprocess.run(
            [sys.executable, "-c", code, value, pattern],
            capture_output=True,
            text=True,
            timeout=MATCH_BOUND_S,
            check=True,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"matching {pattern!r} against {value[:40]!r}... took over {MATCH_BOUND_S}s")
    return done.stdout.strip() == "True"


def test_a_nested_quantifier_pattern_against_a_hostile_value_answers_at_once() -> None:
    assert _matches_in_a_child(EVIL_VALUE, EVIL_PATTERN) is False
    assert value_matches("db-team-1", [EVIL_PATTERN]) is True


def test_many_globs_against_a_long_value_answer_at_once() -> None:
    glob = "*a" * 12 + "*b"
    assert _matches_in_a_child("a" * 5000, glob) is False
    assert value_matches("a" * 20 + "b", [glob]) is True


@pytest.mark.parametrize(
    ("value", "pattern", "matches"),
    [
        ("prod\n", "^prod$", False),  # Go's (RE2's) `$` is the end of the text only
        ("a\nb", "^a.b$", True),  # `.` matches a newline, as before
        ("prod", "^pro(d|duction)$", True),
    ],
    ids=["no-match-before-final-newline", "dot-matches-newline", "alternation"],
)
def test_regex_entries_follow_go_semantics(value: str, pattern: str, matches: bool) -> None:
    assert value_matches(value, [pattern]) is matches


@pytest.mark.parametrize("pattern", ["^(a)\\1$", "^(?=a)a$", "^(?<!b)a$"])
def test_patterns_re2_cannot_run_are_refused(pattern: str) -> None:
    with pytest.raises(SelectorPatternError, match="RE2 syntax"):
        compile_pattern(pattern)
