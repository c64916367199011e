"""Confirmed deletes and label removals (DESIGN §6, issue 12 hole 4): the pure part.

A listing can leave things out: `tag:GetResources` omits a proxy while its index lags, and a
proxy it omits looks untagged, so it would be deleted under `tags: {env: prod}` or have its
tag labels stripped under the default selector. Before the plan deletes a resource, or updates
one in a way that removes a label, a targeted read confirms the evidence:

- the resource's proxy (or custom endpoint) is not in the listing: `DescribeDBProxies
  (DBProxyName=…)` / `DescribeDBProxyEndpoints(DBProxyEndpointName=…)` must answer NotFound;
- its proxy is listed (it no longer matches, or a label would go): `rds:ListTagsForResource`
  on the proxy ARN gives the real tags, and the scope is converted again with them, so a proxy
  whose tags were only missing is desired again (unchanged or updated).

Any label is treated as possibly tag-derived, because a tag may overwrite a generated label. A
label whose value changes while its key stays is not confirmed: the listing had the tag, so its
value is evidence, not absence (only absence is ambiguous: an omitted proxy and an untagged one
look the same).

What this module decides: which reads a plan needs (`questions`), how confirmed tags change the
scopes (`revise`), and which changes of the re-made plan stand (`settle`). The shell
(`reconcile.confirming`) asks the questions. A plan with no delete and no label removal needs
no read: steady state costs nothing.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from discovery.core.convert import convert_proxies
from discovery.core.model import Proxy, Resource, Scope, ScopeResult, Update
from discovery.core.plan import REASON_UNCONFIRMED, Action, Plan, Withheld

CheckKind = Literal["proxy", "endpoint", "tags"]
Fetched = Mapping[Scope, Sequence[Proxy]]


@dataclass(frozen=True, kw_only=True)
class Check:
    """One targeted read. `proxy`/`endpoint`: does it still exist? `tags`: what are they?"""

    kind: CheckKind
    proxy_name: str
    resource_id: str = ""  # `proxy`: a proxy of that name with another id is another source
    endpoint_name: str = ""  # `endpoint`
    arn: str = ""  # `tags`: the proxy's ARN

    def describe(self) -> str:
        if self.kind == "tags":
            return f"rds:ListTagsForResource({self.arn})"
        if self.kind == "endpoint":
            return f"rds:DescribeDBProxyEndpoints(DBProxyEndpointName={self.endpoint_name})"
        return f"rds:DescribeDBProxies(DBProxyName={self.proxy_name})"


@dataclass(frozen=True, kw_only=True)
class Question:
    """A check asked with one scope's credentials and region."""

    scope: Scope
    check: Check


@dataclass(frozen=True, kw_only=True)
class Answer:
    """What a read said: `exists` for proxy/endpoint checks, `tags` for tag checks, or the
    `error` (one line) when it failed. An answer with neither is a failure too."""

    exists: bool | None = None
    tags: Mapping[str, str] | None = None
    error: str = ""


@dataclass(frozen=True, kw_only=True)
class Settled:
    plan: Plan
    failed: int  # changes withheld because a read failed or disagreed with the listing


def labels_removed(update: Update) -> bool:
    """The update removes a label (a tag may be behind any label)."""
    after = update.after.labels
    return any(key not in after for key in update.before.resource.labels)


def to_confirm(plan: Plan) -> dict[str, tuple[Action, Resource]]:
    """The changes of `plan` that need a targeted read: name → (action, resource as held)."""
    wanted: dict[str, tuple[Action, Resource]] = {
        s.resource.name: ("delete", s.resource) for s in plan.delete
    }
    for update in plan.update:
        if labels_removed(update):
            wanted[update.after.name] = ("update", update.before.resource)
    return wanted


def question_for(
    resource: Resource, results: Sequence[ScopeResult], fetched: Fetched
) -> Question | None:
    """The read that confirms a change to `resource`; None when no scope that answered covers
    its account-region (a config change, not missing evidence: nothing to ask)."""
    aws = resource.aws
    # The scopes of its account-region; one whose account is unknown (no STS answer, nothing
    # listed) only when no scope is known to be in that account.
    known: list[Scope] = []
    unknown: list[Scope] = []
    for r in results:
        if r.ok and r.scope.region == aws.region:
            account = r.account_id or r.scope.role_account_id
            if account == aws.account_id:
                known.append(r.scope)
            elif not account:
                unknown.append(r.scope)
    area = known or unknown
    if not area:
        return None
    for scope in area:
        proxy = _find(fetched.get(scope, ()), resource)
        if proxy is None:
            continue
        endpoint = aws.rdsproxy_custom_endpoint_name
        if endpoint and endpoint not in {e.name for e in proxy.endpoints if not e.is_default}:
            check = Check(kind="endpoint", proxy_name=proxy.name, endpoint_name=endpoint)
            return Question(scope=scope, check=check)
        return Question(scope=scope, check=Check(kind="tags", proxy_name=proxy.name, arn=proxy.arn))
    check = Check(kind="proxy", proxy_name=aws.rdsproxy_name, resource_id=aws.rdsproxy_resource_id)
    return Question(scope=area[0], check=check)


def questions(plan: Plan, results: Sequence[ScopeResult], fetched: Fetched) -> set[Question]:
    """Every read `plan` needs, each once (a proxy's endpoints share its tag read)."""
    asked: set[Question] = set()
    for _, resource in to_confirm(plan).values():
        question = question_for(resource, results, fetched)
        if question is not None:
            asked.add(question)
    return asked


def answered_by_listing(
    asked: Collection[Question], fetched: Fetched, tags_confirmed: Collection[Scope]
) -> dict[Question, Answer]:
    """The tag questions the listing already answers: in a scope whose tags were read with
    rds:ListTagsForResource per proxy (the fallback), the listed tags are the confirmed ones."""
    answers: dict[Question, Answer] = {}
    for question in asked:
        if question.check.kind != "tags" or question.scope not in tags_confirmed:
            continue
        for proxy in fetched.get(question.scope, ()):
            if proxy.arn == question.check.arn:
                answers[question] = Answer(tags=proxy.tags)
    return answers


def revise(
    results: Sequence[ScopeResult], fetched: Fetched, answers: Mapping[Question, Answer]
) -> tuple[tuple[ScopeResult, ...], dict[Scope, tuple[Proxy, ...]]]:
    """The scopes converted again with the confirmed tags of every proxy whose tags were read."""
    confirmed = {
        q.check.arn: a.tags
        for q, a in answers.items()
        if q.check.kind == "tags" and a.tags is not None
    }
    revised: list[ScopeResult] = []
    proxies_by_scope: dict[Scope, tuple[Proxy, ...]] = {}
    for result in results:
        proxies = tuple(fetched.get(result.scope, ()))
        stale = {p.arn for p in proxies if p.arn in confirmed and p.tags != confirmed[p.arn]}
        patched = tuple(
            replace(p, tags=dict(confirmed[p.arn])) if p.arn in stale else p for p in proxies
        )
        proxies_by_scope[result.scope] = patched
        if not result.ok or not stale:
            revised.append(result)
            continue
        converted = convert_proxies(patched, result.scope.matching)
        revised.append(replace(result, resources=converted.resources, skipped=converted.skipped))
    return tuple(revised), proxies_by_scope


def settle(
    *,
    first: Plan,
    revised: Plan,
    results: Sequence[ScopeResult],
    fetched: Fetched,
    answers: Mapping[Question, Answer],
) -> Settled:
    """`revised` (made from the confirmed tags) with every change that still lacks a confirming
    answer withheld `unconfirmed`, and the changes of `first` the answers overturned reported."""
    held: list[Withheld] = []
    failed = 0
    blocked: set[str] = set()
    for name, (action, resource) in to_confirm(revised).items():
        question = question_for(resource, results, fetched)
        if question is None:
            continue
        reason = _unconfirmed(question, answers.get(question))
        if reason is not None:
            held.append(Withheld(name=name, action=action, reason=reason, code=REASON_UNCONFIRMED))
            blocked.add(name)
            failed += 1

    decided, proposed = _changes(revised), _changes(first)
    listed = {w.name for w in revised.withheld} | blocked
    for name, (action, resource) in to_confirm(first).items():
        if name in listed or proposed.get(name) == decided.get(name):
            continue
        question = question_for(resource, results, fetched)
        source = question.check.describe() if question is not None else "a targeted read"
        held.append(
            Withheld(
                name=name,
                action=action,
                reason=(
                    f"the listing's tags for it were incomplete (tag:GetResources); {source} "
                    "gave its real tags and the plan uses them"
                ),
                code=REASON_UNCONFIRMED,
            )
        )

    plan = replace(
        revised,
        delete=tuple(s for s in revised.delete if s.resource.name not in blocked),
        update=tuple(u for u in revised.update if u.after.name not in blocked),
        withheld=revised.withheld + tuple(held),
    )
    return Settled(plan=plan, failed=failed)


def _unconfirmed(question: Question, answer: Answer | None) -> str | None:
    """Why the change `question` was asked for may not go ahead; None when it is confirmed."""
    asked = question.check.describe()
    if answer is None:
        return f"not confirmed: {asked} was not asked this cycle; the next cycle asks"
    if answer.error:
        return f"not confirmed: {answer.error}; the change waits for the next cycle"
    if question.check.kind == "tags":
        if answer.tags is not None:
            return None
    elif answer.exists is False:
        return None
    elif answer.exists:
        return (
            f"not confirmed: the listing left it out but {asked} still finds it; "
            "kept until a listing agrees"
        )
    return f"not confirmed: {asked} gave no answer; the change waits for the next cycle"


ChangeKey = tuple[Action, Resource | None]


def _changes(plan: Plan) -> dict[str, ChangeKey]:
    out: dict[str, ChangeKey] = {s.resource.name: ("delete", None) for s in plan.delete}
    out.update({u.after.name: ("update", u.after) for u in plan.update})
    return out


def _find(proxies: Sequence[Proxy], resource: Resource) -> Proxy | None:
    """The listed proxy `resource` came from: same name and, when known, same resource id."""
    aws = resource.aws
    for proxy in proxies:
        if proxy.name != aws.rdsproxy_name:
            continue
        if not aws.rdsproxy_resource_id or proxy.arn.endswith(
            f":db-proxy:{aws.rdsproxy_resource_id}"
        ):
            return proxy
    return None


__all__ = [
    "Answer",
    "Check",
    "Question",
    "Settled",
    "answered_by_listing",
    "labels_removed",
    "question_for",
    "questions",
    "revise",
    "settle",
    "to_confirm",
]
