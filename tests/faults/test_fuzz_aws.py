"""Fuzzing what AWS returns: arbitrary field values never crash a cycle, and whatever does not
become a resource is reported with its reason.

In-process, many examples: raw DescribeDBProxies / DescribeDBProxyEndpoints items and tags
(missing fields, unicode, very long tag keys and values, 50 tags, odd statuses and engine
families) go through the pure core (`assemble_proxies`, `convert_proxies`, `make_plan`), are
applied to a real SQLite file and re-planned. End to end, fewer examples: the same kind of
values put into the emulator's fleet (`extra` overrides remove or change fields), then
`discovery scan` twice.
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from discovery.aws.assemble import assemble_proxies
from discovery.core.convert import convert_proxies
from discovery.core.model import Matching, Resource, Scope, ScopeResult, is_owned
from discovery.core.plan import make_plan
from discovery.registry.base import Changes
from discovery.registry.sqlite import SQLiteRegistry
from tests.faults.invariants import GROUP, check_recovered
from tests.faults.support import (
    ACCOUNT_A,
    EAST,
    EXIT_OK,
    ROLE_A,
    World,
    make_config,
)

STATUSES = (
    "available",
    "modifying",
    "reactivating",
    "creating",
    "deleting",
    "incompatible-network",
    "insufficient-resource-limits",
    "suspended",
    "suspending",
)
FAMILIES = ("POSTGRESQL", "MYSQL", "SQLSERVER")

# Any unicode, including NUL, what XML cannot carry, and lone surrogates (JSON can escape them).
any_text = st.text(alphabet=st.characters(exclude_categories=()), max_size=40)
long_text = st.text(alphabet=st.characters(exclude_categories=()), min_size=200, max_size=600)
names = st.one_of(st.from_regex(r"[a-z][a-z0-9-]{0,30}[a-z0-9]", fullmatch=True), any_text)
arns = st.one_of(
    st.builds(
        lambda n, r: f"arn:aws:rds:{r}:{ACCOUNT_A}:db-proxy:prx-{n}",
        st.from_regex(r"[a-z0-9]{1,20}", fullmatch=True),
        st.sampled_from([EAST, "eu-west-1"]),
    ),
    any_text,
)
SPECIAL_KEYS = ("TeleportDatabaseName", "teleport.dev/database_name", "env", "team", "region")
tag_keys = st.one_of(
    st.sampled_from(SPECIAL_KEYS),
    st.from_regex(r"[a-zA-Z/.0-9_:*-]{1,20}", fullmatch=True),
    any_text,
    long_text,
)
tag_values = st.one_of(
    st.from_regex(r"[a-z][a-z0-9-]{0,20}", fullmatch=True), any_text, long_text, st.just("")
)
tags = st.dictionaries(tag_keys, tag_values, max_size=50)


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """The field is there (with a drawn value) or, now and then, missing altogether."""
    return st.one_of(strategy, strategy, strategy, st.just(MISSING))


MISSING = object()
# Teleport's patterns (Go: `$` is the end of the text, never "before a final newline").
VALID_NAME = re.compile(r"[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?")
VALID_LABEL_KEY = re.compile(r"[a-zA-Z/.0-9_:*-]+")


@st.composite
def raw_proxy(draw: st.DrawFn) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, str]]:
    name = draw(names)
    fields = {
        "DBProxyName": draw(maybe(st.just(name))),
        "DBProxyArn": draw(maybe(arns)),
        "Status": draw(maybe(st.one_of(st.sampled_from(STATUSES), any_text))),
        "EngineFamily": draw(maybe(st.one_of(st.sampled_from(FAMILIES), any_text))),
        "RequireTLS": draw(maybe(st.one_of(st.just(True), st.booleans(), any_text))),
        "Endpoint": draw(maybe(st.one_of(st.just(f"{name}.proxy-x.rds.amazonaws.com"), any_text))),
        "VpcId": draw(maybe(any_text)),
    }
    proxy = {k: v for k, v in fields.items() if v is not MISSING}
    endpoints = []
    for _ in range(draw(st.integers(0, 3))):
        ep = {
            "DBProxyEndpointName": draw(maybe(names)),
            "DBProxyName": draw(maybe(st.one_of(st.just(name), any_text))),
            "Endpoint": draw(maybe(any_text)),
            "Status": draw(maybe(st.one_of(st.sampled_from(STATUSES), any_text))),
            "TargetRole": draw(
                maybe(st.one_of(st.sampled_from(["READ_ONLY", "READ_WRITE"]), any_text))
            ),
            "IsDefault": draw(maybe(st.booleans())),
        }
        endpoints.append({k: v for k, v in ep.items() if v is not MISSING})
    return proxy, endpoints, draw(tags)


def matching(selector: dict[str, tuple[str, ...]]) -> Matching:
    return Matching(tags=selector, assume_role_arn=ROLE_A, discovery_group=GROUP)


SELECTORS = st.sampled_from([{"*": ("*",)}, {"env": ("prod", "^p.*$")}, {"team": ("db-*",)}])


def storable(resource: Resource) -> bool:
    """Every string of the document can be written as UTF-8 and into PostgreSQL's jsonb."""
    text = json.dumps(resource.to_dict(), ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\\u0000" not in json.dumps(resource.to_dict())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(items=st.lists(raw_proxy(), max_size=6), selector=SELECTORS)
def test_arbitrary_aws_values_never_crash_a_cycle_and_skips_are_reported(
    items: list[tuple[dict[str, Any], list[dict[str, Any]], dict[str, str]]],
    selector: dict[str, tuple[str, ...]],
) -> None:
    raw_proxies = [p for p, _, _ in items]
    raw_endpoints = [e for _, eps, _ in items for e in eps]
    tags_by_arn = {str(p.get("DBProxyArn", "")): t for p, _, t in items}
    proxies = assemble_proxies(raw_proxies, raw_endpoints, tags_by_arn)
    converted = convert_proxies(proxies, matching(selector))

    # Every proxy became its own resource or was reported, and so did each custom endpoint.
    own = {
        r.aws.rdsproxy_name for r in converted.resources if not r.aws.rdsproxy_custom_endpoint_name
    }
    reported = {s.name for s in converted.skipped}
    for proxy in proxies:
        assert proxy.name in own or proxy.name in reported, proxy
        for endpoint in proxy.endpoints:
            if endpoint.is_default:
                continue
            emitted = any(
                r.aws.rdsproxy_name == proxy.name
                and r.aws.rdsproxy_custom_endpoint_name == endpoint.name
                for r in converted.resources
            )
            assert emitted or f"{proxy.name}/{endpoint.name}" in reported, endpoint
    assert all(s.reason and s.code for s in converted.skipped)
    # What is kept is a valid, owned, storable resource that survives its own document.
    for resource in converted.resources:
        assert is_owned(resource, GROUP)
        assert VALID_NAME.fullmatch(resource.name), resource.name
        assert all(VALID_LABEL_KEY.fullmatch(key) for key in resource.labels), resource.labels
        assert storable(resource), resource
        assert Resource.from_dict(json.loads(json.dumps(resource.to_dict()))) == resource

    # The cycle: plan against an empty registry, apply to a real SQLite file, re-plan: empty.
    result = ScopeResult(
        scope=Scope(matcher_index=0, region=EAST, assume_role_arn=ROLE_A),
        ok=True,
        account_id=ACCOUNT_A,
        resources=converted.resources,
        skipped=converted.skipped,
    )
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(_apply_and_replan(Path(tmp) / "registry.db", result))


async def _apply_and_replan(path: Path, result: ScopeResult) -> None:
    registry = SQLiteRegistry(path)
    plan = make_plan(scopes=[result], current=[], discovery_group=GROUP)
    assert len({r.name for r in plan.create}) == len(plan.create)
    await registry.apply(plan.changes)
    again = make_plan(
        scopes=[result], current=await registry.list_resources(), discovery_group=GROUP
    )
    assert not again.changes, "apply then re-plan is not empty"
    assert again.unchanged == len(plan.create)
    await registry.apply(Changes())


def test_a_final_newline_makes_no_valid_name_or_label_key() -> None:
    """Python's `$` matches before a final newline; Teleport's (Go's) does not."""
    proxy = assemble_proxies(
        [
            {
                "DBProxyName": "nl",
                "DBProxyArn": f"arn:aws:rds:{EAST}:{ACCOUNT_A}:db-proxy:prx-nl",
                "Status": "available",
                "EngineFamily": "MYSQL",
                "RequireTLS": True,
                "Endpoint": "nl.proxy-x.rds.amazonaws.com",
            }
        ],
        [],
        {
            f"arn:aws:rds:{EAST}:{ACCOUNT_A}:db-proxy:prx-nl": {
                "TeleportDatabaseName": "mydb\n",
                "env\n": "prod",
            }
        },
    )
    converted = convert_proxies(proxy, matching({"*": ("*",)}))
    assert converted.resources == ()
    assert {s.code for s in converted.skipped} == {"invalid-tag-key", "invalid-name"}


# --- end to end: values AWS could send, through the emulator and the CLI -------------------------

# Text that XML carries unchanged (RDS answers are XML); tags travel as JSON (tag:GetResources).
xml_text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cc", "Cs")), max_size=30
)
fleet_tags = st.dictionaries(
    st.one_of(st.sampled_from(SPECIAL_KEYS), st.text(min_size=1, max_size=128)),
    st.one_of(st.text(max_size=256), st.just("")),
    max_size=50,
)


@st.composite
def fleet_proxy(draw: st.DrawFn, index: int) -> dict[str, Any]:
    name = f"fz{index}-" + draw(st.from_regex(r"[a-z0-9]{1,12}", fullmatch=True))
    extra = draw(
        st.dictionaries(
            st.sampled_from(["RequireTLS", "Endpoint", "VpcId", "Status", "EngineFamily"]),
            st.none(),  # null removes the field from the answer
            max_size=2,
        )
    )
    return {
        "name": name,
        "engine_family": draw(st.one_of(st.sampled_from(FAMILIES), xml_text)),
        "status": draw(st.one_of(st.sampled_from(STATUSES), xml_text)),
        "require_tls": draw(st.booleans()),
        "vpc_id": draw(st.one_of(st.none(), xml_text.filter(bool))),
        "tags": draw(fleet_tags),
        "extra": extra,
        "endpoints": [
            {
                "name": f"{name}-e{e}",
                "status": draw(st.one_of(st.sampled_from(STATUSES), xml_text)),
                "target_role": draw(
                    st.one_of(st.sampled_from(["READ_ONLY", "READ_WRITE"]), xml_text)
                ),
                "extra": draw(
                    st.dictionaries(
                        st.sampled_from(["Endpoint", "TargetRole"]), st.none(), max_size=1
                    )
                ),
            }
            for e in range(draw(st.integers(0, 2)))
        ],
    }


@st.composite
def fuzzed_fleets(draw: st.DrawFn) -> list[dict[str, Any]]:
    return [draw(fleet_proxy(i)) for i in range(draw(st.integers(1, 4)))]


@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(proxies=fuzzed_fleets())
def test_arbitrary_fleets_through_the_emulator(
    clean_emulator: Any, proxies: list[dict[str, Any]]
) -> None:
    """`discovery scan` against a fleet of odd proxies: no crash, every proxy and endpoint is a
    resource or reported as skipped, the registry is exactly the desired state, and a second
    scan writes nothing."""
    with tempfile.TemporaryDirectory() as tmp:
        world = World(
            emulator=clean_emulator,
            workdir=Path(tmp),
            registry_spec=f"sqlite:{Path(tmp) / 'registry.db'}",
            config=make_config(),
            foreign=[],
        )
        world.config["aws"] = [
            {"types": ["rdsproxy"], "regions": [EAST], "assume_role_arn": ROLE_A}
        ]
        fleet = {
            "caller_account": "000000000000",
            "accounts": [
                {
                    "id": ACCOUNT_A,
                    "roles": [{"name": "discovery"}],
                    "regions": {EAST: {"proxies": proxies}},
                }
            ],
        }
        world.set_fleet(fleet)
        world.write_config()
        first = world.scan()
        assert first.code == EXIT_OK, first.stderr
        doc = first.json()
        created = {r["metadata"]["name"]: r for r in doc["plan"]["create"]}
        skipped = {s["name"] for scope in doc["scopes"] for s in scope["skipped"]}
        for proxy in proxies:
            own = [
                r for r in created.values() if r["spec"]["aws"]["rdsproxy"]["name"] == proxy["name"]
            ]
            assert own or proxy["name"] in skipped, proxy["name"]
        check_recovered(world.snapshot(), world.desired(), [])
        second = world.scan()
        assert second.code == EXIT_OK, second.stderr
        plan = second.json()["plan"]
        assert plan["create"] == plan["update"] == plan["delete"] == []


@pytest.fixture(params=["sqlite", "postgres"])
def backend_world(request: pytest.FixtureRequest, clean_emulator: Any, tmp_path: Path) -> Any:
    if request.param == "sqlite":
        made = World(
            emulator=clean_emulator,
            workdir=tmp_path,
            registry_spec=f"sqlite:{tmp_path / 'registry.db'}",
            config=make_config(),
        )
        made.prepare()
        yield made
        return
    from tests.registry import postgres_support

    dsn, schema = postgres_support.new_schema()
    try:
        made = World(
            emulator=clean_emulator,
            workdir=tmp_path,
            registry_spec=f"postgres:{dsn}",
            config=make_config(registry={"backend": "postgres", "dsn": dsn}),
        )
        made.prepare()
        yield made
    finally:
        postgres_support.drop_schema(schema)


@pytest.mark.parametrize("value", ["\x00", "\ud800"], ids=["nul", "lone-surrogate"])
def test_a_tag_value_no_registry_can_store_is_dropped_and_reported(
    backend_world: World, value: str
) -> None:
    """tag:GetResources answers JSON, whose escapes can carry NUL or an unpaired surrogate.
    Before the fix, the NUL failed every PostgreSQL apply of the group and the surrogate crashed
    the SQLite apply (UnicodeEncodeError); now that one tag is dropped and reported."""
    world = backend_world
    fleet = copy.deepcopy(world.fleet)
    account = next(a for a in fleet["accounts"] if a["id"] == ACCOUNT_A)
    account["regions"][EAST]["proxies"][0]["tags"]["odd"] = f"x{value}y"
    world.set_fleet(fleet)
    result = world.scan()
    assert result.code == EXIT_OK, result.stderr
    skipped = [s for scope in result.scopes for s in scope["skipped"]]
    assert [s["name"] for s in skipped if "tag 'odd'" in s["reason"]] == ["ae-pg"]
    check_recovered(world.snapshot(), world.desired(), world.foreign)
