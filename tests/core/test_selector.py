"""Tags → labels and the tag selector (DESIGN §4), as pure functions on plain values.

How the selector applies to a converted proxy (which labels it sees, and when) is in
test_convert.py; here are its matching rules on their own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest

from discovery.core.selector import selector_matches, tags_to_labels, value_matches


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
