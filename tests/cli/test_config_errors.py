"""Config errors that say the fix (issue 15): `discovery validate` and `discovery scan` on a bad
file exit 2 with exactly one line on stderr, in our words, naming the YAML path and the fix.

Before: a misspelt `region:` was reported as "aws[0].regions: is required (and 1 more)";
`discovery_group: yes` as "Input should be a valid string"; a second `aws:` block silently
replaced the first; a Latin-1 file was a codec message; `us-east-7` was scanned every cycle.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from discovery.core.config import Config
from tests.harness.cli import run_in_process, run_subprocess
from tests.harness.env import CLOSED_ENDPOINT, process_env

# Every top-level setting, as the error lists them (other settings may be added).
TOP_LEVEL_KEYS = ", ".join(sorted(Config.model_fields))
MATCHER = "aws: [{types: [rdsproxy], regions: [us-east-1]}]\n"
GOOD = "discovery_group: g\n" + MATCHER

CASES = [
    pytest.param(
        "discovery_group: g\naws:\n  - types: [rdsproxy]\n    region: [us-east-1]\n",
        "aws[0].region: is not a known setting; did you mean 'regions'? (and 1 more)",
        id="unknown-key-first-with-did-you-mean",
    ),
    pytest.param(
        "discovery_grop: g\n" + MATCHER,
        "discovery_grop: is not a known setting; did you mean 'discovery_group'? (and 1 more)",
        id="top-level-typo",
    ),
    pytest.param(
        GOOD + "safety: {max_delete_fractoin: 0.5}\n",
        "safety.max_delete_fractoin: is not a known setting; did you mean 'max_delete_fraction'?",
        id="nested-typo",
    ),
    pytest.param(
        GOOD + "frobnicate: 1\n",
        f"frobnicate: is not a known setting here (known: {TOP_LEVEL_KEYS})",
        id="unknown-key-no-close-name",
    ),
    pytest.param(
        "discovery_group: yes\n" + MATCHER,
        "discovery_group: YAML read this value as the boolean true (yes/no/on/off/true/false "
        'are booleans in YAML); put it in quotes to mean the text, e.g. "yes"',
        id="yaml-boolean-yes",
    ),
    pytest.param(
        "discovery_group: g\naws: [{types: [rdsproxy], regions: [us-east-1, no]}]\n",
        "aws[0].regions[1]: YAML read this value as the boolean false (yes/no/on/off/true/false "
        'are booleans in YAML); put it in quotes to mean the text, e.g. "yes"',
        id="yaml-boolean-in-list",
    ),
    pytest.param(
        GOOD + "discovery_group: h\n",
        "duplicate key 'discovery_group' at line 3 (first at line 1); "
        "YAML would keep only the last one: merge them or remove one",
        id="duplicate-top-level-key",
    ),
    pytest.param(
        "discovery_group: g\naws:\n  - types: [rdsproxy]\n    regions: [us-east-1]\n"
        "    regions: [eu-west-1]\n",
        "duplicate key 'regions' at line 5 (first at line 4); "
        "YAML would keep only the last one: merge them or remove one",
        id="duplicate-matcher-key",
    ),
    pytest.param(
        "discovery_group: g\naws: [{types: [rdsproxy], regions: [us-east-1, eu-west-7]}]\n",
        "aws[0].regions[1]: 'eu-west-7' is not an AWS region this build knows; did you mean "
        "'eu-west-3' or 'eu-west-2' or 'eu-west-1'? if it is a region newer than this build, "
        "set allow_unknown_regions: true",
        id="unknown-region",
    ),
    pytest.param(
        "teleport: {nodename: x}\ndiscovery_service:\n  discovery_group: g\n"
        "  aws: [{types: [rdsproxy], regions: [us-est-1]}]\n",
        " (teleport.yaml): discovery_service.aws[0].regions[0]: 'us-est-1' is not an AWS region "
        "this build knows; did you mean 'us-west-1' or 'us-east-1' or 'us-west-2'? if it is a "
        "region newer than this build, write a discovery.yaml with allow_unknown_regions: true "
        "(teleport.yaml has no such setting)",
        id="unknown-region-teleport-yaml",
    ),
    pytest.param(
        "discovery_group: g\naws: [{types: rdsproxy, regions: [us-east-1]}]\n",
        "aws[0].types: must be a list; write types: [rdsproxy]",
        id="scalar-for-list",
    ),
    pytest.param(
        "discovery_group: g\naws: {types: [rdsproxy], regions: [us-east-1]}\n",
        "aws: must be a list, e.g. [a, b]",
        id="mapping-for-list",
    ),
    pytest.param(
        "discovery_group: g\naws: [5]\n",
        "aws[0]: must be a mapping of settings (key: value)",
        id="number-for-matcher",
    ),
    pytest.param("discovery_group: g\n", "aws: is required", id="missing-key"),
    pytest.param(
        GOOD + "safety: {policy: everything}\n",
        "safety.policy: must be one of 'sync', 'upsert-only' or 'create-only'",
        id="literal",
    ),
    pytest.param(
        GOOD + "server: {max_connections: 1}\n",
        "server.max_connections: must be at least 4",
        id="bound",
    ),
    pytest.param(
        GOOD + 'poll_interval: "300"\n',
        "poll_interval: '300' is not a duration; write it like 30s, 5m or 1h",
        id="quoted-bare-number-duration",
    ),
    pytest.param(
        "# only a comment\n",
        "the file is empty (or only comments); at least discovery_group and aws are needed, "
        "see config.example.yaml",
        id="empty-file",
    ),
    pytest.param(
        "- discovery_group: g\n",
        "the top level must be a mapping of settings (discovery_group: ..., aws: ...), not a list",
        id="top-level-list",
    ),
    pytest.param(
        "just some words\n",
        "the top level must be a mapping of settings (discovery_group: ..., aws: ...), "
        "not the text 'just some words'",
        id="top-level-text",
    ),
    pytest.param(
        b"discovery_group: caf\xe9\n" + MATCHER.encode(),
        "is not UTF-8 text (byte 0xe9 at line 1); save the file as UTF-8",
        id="latin-1-file",
    ),
    pytest.param(
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
        "is a binary file, not YAML text (it holds NUL bytes); pass the YAML config file",
        id="binary-file",
    ),
]


def _expected(path: Path, line: str) -> str:
    """The whole stderr: the file, then (teleport.yaml's lines say which format) the problem."""
    return f"discovery: config error: {path}{line if line.startswith(' (') else ': ' + line}\n"


def _write(tmp_path: Path, body: str | bytes) -> Path:
    path = tmp_path / "discovery.yaml"
    if isinstance(body, bytes):
        path.write_bytes(body)
    else:
        path.write_text(body, encoding="utf-8")
    return path


@pytest.mark.parametrize(("body", "line"), CASES)
def test_validate_prints_one_line_in_our_words(
    tmp_path: Path, body: str | bytes, line: str
) -> None:
    path = _write(tmp_path, body)
    result = run_subprocess(
        ["validate", "--config", str(path)], env=process_env(CLOSED_ENDPOINT), cwd=tmp_path
    )
    assert result.code == 2, result.stderr
    assert result.stderr == _expected(path, line)
    assert result.stdout == ""
    for pydantic_words in ("Input should", "Field required", "Extra inputs", "pydantic"):
        assert pydantic_words not in result.stderr


@pytest.mark.parametrize(("body", "line"), CASES[:6])
def test_scan_refuses_the_same_config_before_calling_aws(
    tmp_path: Path, body: str | bytes, line: str
) -> None:
    path = _write(tmp_path, body)
    env = process_env(CLOSED_ENDPOINT)
    result = run_in_process(["scan", "--config", str(path)], env=env, cwd=tmp_path)
    assert result.code == 2
    assert result.stderr == _expected(path, line)
    assert not (tmp_path / "discovery.db").exists()


def test_allow_unknown_regions_lets_a_new_region_through(tmp_path: Path) -> None:
    body = (
        "discovery_group: g\nallow_unknown_regions: true\n"
        "aws: [{types: [rdsproxy], regions: [us-east-1, eu-west-7]}]\n"
    )
    path = _write(tmp_path, body)
    result = run_subprocess(
        ["validate", "--config", str(path)], env=process_env(CLOSED_ENDPOINT), cwd=tmp_path
    )
    assert result.code == 0, result.stderr
    assert "2 scope(s)" in result.stdout


def test_a_bare_number_duration_is_seconds(tmp_path: Path) -> None:
    """Documented in the README: `poll_interval: 300` is 300s (YAML gives us a number)."""
    path = _write(tmp_path, GOOD + "poll_interval: 300\npoll_jitter: 301\n")
    result = run_in_process(
        ["validate", "--config", str(path)], env=process_env(CLOSED_ENDPOINT), cwd=tmp_path
    )
    assert result.code == 2
    assert "poll_jitter (301s) must not be longer than poll_interval (300s)" in result.stderr


def test_merge_keys_may_override_without_a_duplicate_error(tmp_path: Path) -> None:
    body = (
        "base: &m {types: [rdsproxy], regions: [us-east-1]}\n"
        "discovery_group: g\naws: [{<<: *m, regions: [eu-west-1]}]\n"
    )
    path = _write(tmp_path, body)
    result = run_in_process(
        ["validate", "--config", str(path)], env=process_env(CLOSED_ENDPOINT), cwd=tmp_path
    )
    # `base` is not a setting: the merge itself was read without a duplicate-key error.
    assert result.code == 2
    assert "base: is not a known setting" in result.stderr
