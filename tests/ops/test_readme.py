"""The README's operator sections stay true: the configuration reference lists exactly the
settings the pydantic models accept (with their defaults), the troubleshooting table every
`doctor` code, the alerting table every alert, and the systemd steps the unit's paths."""

from __future__ import annotations

import re
import typing
from collections.abc import Iterator
from typing import Any

import yaml
from pydantic import BaseModel

from discovery.core.config import Config, parse_duration
from discovery.ops.diagnosis import FIXES

from .conftest import DEPLOY, ROOT

README = (ROOT / "README.md").read_text()


def section(heading: str) -> str:
    """The text under `heading` up to the next heading of the same or a higher level (lines
    in fenced code blocks are never headings)."""
    level = len(heading.split(" ", 1)[0])
    lines = README.splitlines()
    start = lines.index(heading) + 1
    fenced = False
    for index in range(start, len(lines)):
        line = lines[index]
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and re.match(rf"^#{{1,{level}}} ", line):
            return "\n".join(lines[start:index])
    return "\n".join(lines[start:])


def table_rows(text: str) -> dict[str, list[str]]:
    """First-column code span → the row's cells, for every table row in `text`."""
    rows = {}
    for line in text.splitlines():
        match = re.match(r"^\| `([^`]+)`", line)
        if match:
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]
            rows[match.group(1)] = cells
    return rows


def submodel(annotation: Any) -> type[BaseModel] | None:
    for candidate in (annotation, *typing.get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def settings(model: type[BaseModel], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Every setting as its YAML path (`aws[].regions`) with its field info."""
    for name, field in model.model_fields.items():
        path = prefix + name
        yield path, field
        sub = submodel(field.annotation)
        if sub is not None:
            is_list = typing.get_origin(field.annotation) in (tuple, list)
            yield from settings(sub, path + ("[]." if is_list else "."))


def test_the_configuration_reference_lists_every_setting_and_nothing_else() -> None:
    rows = table_rows(section("### Configuration reference"))
    paths = {path for path, _ in settings(Config)}
    assert paths - set(rows) == set(), "settings missing from the README's reference"
    assert set(rows) - paths == set(), "README documents settings that do not exist"


def test_the_configuration_reference_states_the_defaults() -> None:
    rows = table_rows(section("### Configuration reference"))
    for path, field in settings(Config):
        default_cell = rows[path][2]
        if field.is_required():
            assert default_cell == "required", path
            continue
        default = field.default
        written = re.findall(r"`([^`]*)`", default_cell)
        if isinstance(default, str):
            assert written and written[0].strip('"') == default, (path, default_cell)
        elif isinstance(default, float) and not isinstance(default, bool):
            assert written, (path, default_cell)
            value = written[0]
            number = float(value) if re.fullmatch(r"[\d.]+", value) else parse_duration(value)
            assert number == default, (path, default_cell)


def test_the_example_configs_use_only_documented_settings() -> None:
    rows = set(table_rows(section("### Configuration reference")))
    for path in (ROOT / "config.example.yaml", DEPLOY / "kubernetes" / "discovery.yaml"):
        doc = yaml.safe_load(path.read_text())
        for key, value in doc.items():
            assert key in rows, (path, key)
            if isinstance(value, dict):
                assert {f"{key}.{k}" for k in value} <= rows, (path, key)


def test_troubleshooting_documents_every_doctor_code() -> None:
    rows = table_rows(section("## Troubleshooting"))
    documented = {code.split(" ")[0] for code in rows}
    assert documented == set(FIXES)
    for code, cells in rows.items():
        assert len(cells) == 4 and all(cells), code  # code, check, meaning, fix


def test_alerting_documents_every_alert() -> None:
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yaml").read_text())
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"]}
    assert set(table_rows(section("## Alerting and dashboards"))) == alerts


def test_systemd_install_steps_match_the_unit() -> None:
    steps = section("### systemd")
    unit = (DEPLOY / "systemd" / "discovery.service").read_text()
    exec_start = re.search(r"^ExecStart=(\S+) run --config (\S+)$", unit, re.M)
    assert exec_start
    binary, config = exec_start.groups()
    venv = binary.removesuffix("/bin/discovery")
    assert f"python3 -m venv {venv}" in steps
    assert f"{venv}/bin/pip install ." in steps
    assert f"install -m 0644 discovery.yaml {config}" in steps
    state = re.search(r"^StateDirectory=(\S+)$", unit, re.M)
    assert state and f"/var/lib/{state.group(1)}/discovery.db" in steps
    environment = re.search(r"^EnvironmentFile=-(\S+)$", unit, re.M)
    assert environment and environment.group(1) in steps
    assert "install -m 0644 deploy/systemd/discovery.service" in steps
