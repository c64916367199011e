"""Confirmed deletes and label removals (core.confirm): which targeted reads a plan needs,
how their answers change it. Pure: proxies are converted for real, answers are given."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from discovery.core.confirm import (
    Answer,
    Check,
    Question,
    Settled,
    answered_by_listing,
    labels_removed,
    question_for,
    questions,
    revise,
    settle,
)
from discovery.core.convert import convert_proxies
from discovery.core.model import (
    Proxy,
    ProxyEndpoint,
    Scope,
    ScopeResult,
    Selector,
    StoredResource,
    Update,
)
from discovery.core.plan import REASON_UNCONFIRMED, Plan, make_plan

GROUP = "prod"
ACCOUNT = "111111111111"
OTHER = "222222222222"
REGION = "us-east-1"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/discovery"
PROD: Selector = (("env", ("prod",)),)
EVERYTHING: Selector = (("*", ("*",)),)


def a_proxy(
    name: str,
    *,
    tags: Mapping[str, str] | None = None,
    endpoints: Sequence[str] = ("ro",),
    resource_id: str = "",
) -> Proxy:
    rid = resource_id or f"prx-{name}"
    return Proxy(
        name=name,
        arn=f"arn:aws:rds:{REGION}:{ACCOUNT}:db-proxy:{rid}",
        endpoint=f"{name}.proxy-x.{REGION}.rds.amazonaws.com",
        engine_family="POSTGRESQL",
        status="available",
        require_tls=True,
        vpc_id="vpc-1",
        tags=dict(tags if tags is not None else {"env": "prod"}),
        endpoints=tuple(
            ProxyEndpoint(
                name=e,
                proxy_name=name,
                endpoint=f"{e}.endpoint.proxy-x.{REGION}.rds.amazonaws.com",
                status="available",
                target_role="READ_ONLY",
                is_default=False,
                vpc_id="vpc-1",
            )
            for e in endpoints
        ),
    )


def a_scope(selector: Selector = PROD, role: str = ROLE) -> Scope:
    return Scope(
        matcher_index=0, region=REGION, assume_role_arn=role, selector=selector,
        discovery_group=GROUP,
    )  # fmt: skip


def scanned(
    proxies: Sequence[Proxy], scope: Scope
) -> tuple[list[ScopeResult], dict[Scope, tuple[Proxy, ...]]]:
    converted = convert_proxies(proxies, scope.matching)
    result = ScopeResult(scope=scope, ok=True, account_id=ACCOUNT, resources=converted.resources)
    return [result], {scope: tuple(proxies)}


def registered(proxies: Sequence[Proxy], scope: Scope) -> list[StoredResource]:
    results, _ = scanned(proxies, scope)
    return [StoredResource(resource=r, revision=1) for r in results[0].resources]


def plan_for(current: Sequence[StoredResource]) -> Callable[[Sequence[ScopeResult]], Plan]:
    def make(results: Sequence[ScopeResult]) -> Plan:
        return make_plan(scopes=results, current=current, discovery_group=GROUP)

    return make


Truth = Callable[[Question], Answer]


def confirm(
    listed: Sequence[Proxy],
    current: Sequence[StoredResource],
    truth: Truth,
    scope: Scope | None = None,
) -> tuple[Settled, list[Question]]:
    """What the cycle does around the pure functions, with `truth` answering the reads."""
    scope = scope or a_scope()
    results, fetched = scanned(listed, scope)
    replan = plan_for(current)
    first = replan(results)
    asked = sorted(questions(first, results, fetched), key=repr)
    answers = {q: truth(q) for q in asked}
    revised, proxies = revise(results, fetched, answers)
    settled = settle(
        first=first, revised=replan(revised), results=revised, fetched=proxies, answers=answers
    )
    return settled, asked


def fleet_truth(*proxies: Proxy) -> Truth:
    """Answers as AWS would for a fleet holding `proxies`."""
    by_name = {p.name: p for p in proxies}

    def answer(question: Question) -> Answer:
        check = question.check
        proxy = by_name.get(check.proxy_name)
        if check.kind == "tags":
            return Answer(tags=proxy.tags) if proxy else Answer(error="DBProxyNotFoundFault")
        if check.kind == "endpoint":
            return Answer(exists=proxy is not None and check.endpoint_name in {
                e.name for e in proxy.endpoints})  # fmt: skip
        return Answer(exists=proxy is not None and proxy.arn.endswith(check.resource_id))

    return answer


def failing(error: str) -> Truth:
    return lambda question: Answer(error=error)


def deleted(settled: Settled) -> set[str]:
    return {s.resource.name for s in settled.plan.delete}


def unconfirmed(settled: Settled) -> dict[str, str]:
    return {w.name: w.action for w in settled.plan.withheld if w.code == REASON_UNCONFIRMED}


DB = "db-rdsproxy-us-east-1-111111111111"
DB_RO = "db-ro-rdsproxy-us-east-1-111111111111"


def test_steady_state_asks_nothing() -> None:
    proxies = [a_proxy("db")]
    settled, asked = confirm(proxies, registered(proxies, a_scope()), failing("never asked"))
    assert asked == []
    assert settled.plan.changes.__bool__() is False and settled.failed == 0


def test_a_proxy_listed_without_its_tags_is_kept_with_one_read_for_it_and_its_endpoint() -> None:
    real = a_proxy("db")
    settled, asked = confirm(
        [replace(real, tags={})], registered([real], a_scope()), fleet_truth(real)
    )
    assert [q.check for q in asked] == [Check(kind="tags", proxy_name="db", arn=real.arn)]
    assert asked[0].scope == a_scope()  # asked with the scope's own role and region
    assert deleted(settled) == set() and settled.plan.update == ()
    assert settled.plan.unchanged == 2
    assert unconfirmed(settled) == {DB: "delete", DB_RO: "delete"}
    assert settled.failed == 0


def test_labels_are_not_stripped_from_a_proxy_listed_without_its_tags() -> None:
    real = a_proxy("db", tags={"env": "prod", "team": "db"})
    scope = a_scope(EVERYTHING)
    settled, asked = confirm(
        [replace(real, tags={})], registered([real], scope), fleet_truth(real), scope
    )
    assert [q.check.kind for q in asked] == ["tags"]
    assert settled.plan.update == () and settled.plan.unchanged == 2
    assert unconfirmed(settled) == {DB: "update", DB_RO: "update"}


def test_real_tags_that_changed_are_applied_without_a_withheld_entry() -> None:
    old = a_proxy("db", tags={"env": "prod", "team": "db"})
    new = a_proxy("db", tags={"env": "prod", "team": "payments"})
    scope = a_scope(EVERYTHING)
    settled, _ = confirm([new], registered([old], scope), fleet_truth(new), scope)
    assert {u.after.labels["team"] for u in settled.plan.update} == {"payments"}
    assert unconfirmed(settled) == {}


def test_the_listing_is_stale_and_the_tag_read_is_newer() -> None:
    # GetResources still shows the old tags; ListTagsForResource has the new ones: plan those.
    old = a_proxy("db", tags={"env": "prod", "team": "db"})
    new = a_proxy("db", tags={"env": "prod", "team": "payments", "tier": "1"})
    scope = a_scope(EVERYTHING)
    listed = replace(old, tags={"env": "prod"})
    settled, _ = confirm([listed], registered([old], scope), fleet_truth(new), scope)
    assert {u.after.labels["tier"] for u in settled.plan.update} == {"1"}
    assert unconfirmed(settled) == {DB: "update", DB_RO: "update"}
    assert settled.failed == 0


@pytest.mark.parametrize(
    ("truth", "gone"),
    [
        pytest.param(fleet_truth(), {DB, DB_RO}, id="not-found-confirms"),
        pytest.param(fleet_truth(a_proxy("db")), set(), id="still-there-withholds"),
        pytest.param(failing("rds:DescribeDBProxies failed: Throttling"), set(), id="error"),
        pytest.param(lambda q: Answer(), set(), id="no-answer"),
    ],
)
def test_a_proxy_missing_from_the_listing_is_deleted_only_on_not_found(
    truth: Truth, gone: set[str]
) -> None:
    settled, asked = confirm([], registered([a_proxy("db")], a_scope()), truth)
    assert [q.check for q in asked] == [Check(kind="proxy", proxy_name="db", resource_id="prx-db")]
    assert deleted(settled) == gone
    withheld = {DB, DB_RO} - gone
    assert unconfirmed(settled) == dict.fromkeys(withheld, "delete")
    assert settled.failed == len(withheld)


def test_a_recreated_proxy_of_the_same_name_is_another_source() -> None:
    old = a_proxy("db", endpoints=(), resource_id="prx-old")
    new = a_proxy("db", endpoints=(), resource_id="prx-new")
    results, fetched = scanned([new], a_scope())
    gone = registered([old], a_scope())[0].resource
    # The listed `db` is not the registered one: ask whether the registered one exists, by id
    # (its tags would say nothing about it).
    question = question_for(gone, results, fetched)
    assert question is not None
    assert question.check == Check(kind="proxy", proxy_name="db", resource_id="prx-old")


def test_an_endpoint_missing_from_the_listing_is_asked_about_by_name() -> None:
    before = a_proxy("db")
    after = a_proxy("db", endpoints=())
    settled, asked = confirm([after], registered([before], a_scope()), fleet_truth(after))
    assert [q.check for q in asked] == [Check(kind="endpoint", proxy_name="db", endpoint_name="ro")]
    assert deleted(settled) == {DB_RO} and settled.failed == 0


def test_a_failed_tag_read_withholds_and_counts() -> None:
    real = a_proxy("db")
    settled, _ = confirm(
        [replace(real, tags={})],
        registered([real], a_scope()),
        failing("rds:ListTagsForResource failed: AccessDenied: no"),
    )
    assert deleted(settled) == set()
    assert unconfirmed(settled) == {DB: "delete", DB_RO: "delete"}
    assert settled.failed == 2
    assert all("AccessDenied" in w.reason for w in settled.plan.withheld)


def test_a_delete_in_an_account_region_no_scope_answered_for_asks_nothing() -> None:
    # A region dropped from the config: nothing to ask AWS about (and no credentials to ask);
    # the deletes wait for the operator as config changes (core.coverage), not as unconfirmed.
    other = replace(a_scope(), region="eu-west-1")
    settled, asked = confirm([], registered([a_proxy("db")], a_scope()), failing("x"), other)
    assert asked == [] and deleted(settled) == set()
    assert {(w.name, w.code) for w in settled.plan.withheld} == {
        (DB, "config-change"),
        (DB_RO, "config-change"),
    }


def test_a_scope_of_another_account_is_not_asked() -> None:
    role = f"arn:aws:iam::{OTHER}:role/discovery"
    scope = a_scope(role=role)
    results = [ScopeResult(scope=scope, ok=True, account_id=OTHER)]
    current = registered([a_proxy("db")], a_scope())
    first = make_plan(scopes=results, current=current, discovery_group=GROUP)
    assert questions(first, results, {scope: ()}) == set()


@pytest.mark.parametrize(
    ("before", "after", "lost"),
    [
        pytest.param({"a": "1"}, {"a": "1", "b": "2"}, False, id="label-added"),
        pytest.param({"a": "1"}, {"a": "1"}, False, id="same"),
        pytest.param({"a": "1", "b": "2"}, {"a": "1"}, True, id="label-removed"),
        # The listing had the tag: a new value is evidence, not absence.
        pytest.param({"a": "1"}, {"a": "2"}, False, id="value-changed"),
    ],
)
def test_labels_removed(before: dict[str, str], after: dict[str, str], lost: bool) -> None:
    held = registered([a_proxy("db", endpoints=())], a_scope())[0]
    old = replace(held, resource=replace(held.resource, labels=before))
    update = Update(before=old, after=replace(held.resource, labels=after))
    assert labels_removed(update) is lost


def test_an_update_that_only_adds_labels_asks_nothing() -> None:
    old = a_proxy("db", endpoints=())
    new = a_proxy("db", endpoints=(), tags={"env": "prod", "team": "db"})
    settled, asked = confirm([new], registered([old], a_scope()), failing("never asked"))
    assert asked == [] and len(settled.plan.update) == 1


TAG_CHOICES = st.sampled_from([{}, {"env": "prod"}, {"env": "dev"}, {"env": "prod", "t": "x"}])


@settings(max_examples=60, deadline=None)
@given(
    old=st.lists(TAG_CHOICES, min_size=1, max_size=6),
    new=st.lists(TAG_CHOICES, min_size=6, max_size=6),
    blank=st.lists(st.booleans(), min_size=6, max_size=6),
    selector=st.sampled_from([PROD, EVERYTHING]),
)
def test_a_listing_that_drops_tags_plans_as_the_truth_would(
    old: list[dict[str, str]],
    new: list[dict[str, str]],
    blank: list[bool],
    selector: Selector,
) -> None:
    """With truthful answers, a listing without some proxies' tags deletes what the real fleet
    would and updates nothing it would not; what it misses is only what the listing showed no
    change for (labels to add, creates: picked up once the index catches up). With failing
    answers there is no delete and no label removal at all."""
    scope = a_scope(selector)
    current = registered([a_proxy(f"p{i}", tags=t) for i, t in enumerate(old)], scope)
    truth = [a_proxy(f"p{i}", tags=t) for i, t in enumerate(new)]
    listed = [replace(p, tags={}) if b else p for p, b in zip(truth, blank, strict=True)]
    results, _ = scanned(truth, scope)
    expected = plan_for(current)(results)
    listed_results, _ = scanned(listed, scope)
    listed_plan = plan_for(current)(listed_results)
    # The guards come first: a cycle whose guard holds its deletes back asks nothing for them.
    assume(not listed_plan.needs_review)

    settled, _ = confirm(listed, current, fleet_truth(*truth), scope)
    assert settled.plan.delete == expected.delete
    assert all(u in expected.update for u in settled.plan.update)
    touched = {u.after.name for u in listed_plan.update}
    missed = {u.after.name for u in expected.update} - {u.after.name for u in settled.plan.update}
    assert not missed & touched
    assert settled.failed == 0

    held, _ = confirm(listed, current, failing("denied"), scope)
    assert held.plan.delete == ()
    assert not any(labels_removed(u) for u in held.plan.update)


def test_tags_read_per_proxy_by_the_listing_answer_the_tag_question() -> None:
    # tag:GetResources denied: the scope's tags came from ListTagsForResource already.
    retagged = a_proxy("db", tags={"env": "dev"})
    results, fetched = scanned([retagged], a_scope())
    first = plan_for(registered([a_proxy("db")], a_scope()))(results)
    asked = questions(first, results, fetched)
    assert answered_by_listing(asked, fetched, {a_scope()}) == {
        q: Answer(tags={"env": "dev"}) for q in asked
    }
    assert answered_by_listing(asked, fetched, set()) == {}


def test_a_scope_known_to_be_in_the_account_is_asked_before_one_of_unknown_account() -> None:
    base = Scope(matcher_index=1, region=REGION, selector=PROD, discovery_group=GROUP)
    results = [
        ScopeResult(scope=base, ok=True, account_id=""),  # no STS answer, nothing listed
        ScopeResult(scope=a_scope(), ok=True, account_id=ACCOUNT),
    ]
    gone = registered([a_proxy("db", endpoints=())], a_scope())[0].resource
    question = question_for(gone, results, {base: (), a_scope(): ()})
    assert question is not None and question.scope == a_scope()
    alone = question_for(gone, results[:1], {base: ()})
    assert alone is not None and alone.scope == base
