"""The shell around `core.confirm`: ask the targeted reads a plan needs, then re-plan.

The reads run concurrently, bounded by the source's call wrapper; a plan that deletes nothing
and removes no label asks nothing. Dry-run confirms too, so the plan it prints is the one a
real scan would apply.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence

from discovery.aws.rds_proxy import FetchedScope, ProxySource
from discovery.core.confirm import (
    Question,
    Settled,
    answered_by_listing,
    questions,
    revise,
    settle,
)
from discovery.core.model import Scope, ScopeResult
from discovery.core.plan import Plan

log = logging.getLogger(__name__)
Replan = Callable[[Sequence[ScopeResult]], Awaitable[Plan]]


async def confirm_plan(
    *,
    plan: Plan,
    results: Sequence[ScopeResult],
    kept: Mapping[Scope, FetchedScope],
    source: ProxySource,
    replan: Replan,
) -> tuple[Settled, tuple[ScopeResult, ...]]:
    """The plan with its deletes and label-removing updates confirmed (or withheld), and the
    scope results converted with any confirmed tags."""
    fetched = {scope: f.proxies for scope, f in kept.items()}
    needed = questions(plan, results, fetched)
    if not needed:
        return Settled(plan=plan, failed=0), tuple(results)
    # Where the listing's tags came from ListTagsForResource already, they are the answer.
    answers = answered_by_listing(needed, fetched, {s for s, f in kept.items() if f.tags_confirmed})
    asked = sorted(needed - answers.keys(), key=_order)
    answers.update(
        zip(
            asked,
            await asyncio.gather(*(source.confirm(q.scope, q.check) for q in asked)),
            strict=True,
        )
    )
    for question, answer in answers.items():
        if answer.error:
            log.warning("confirmation %s failed: %s", question.check.describe(), answer.error)
    revised, proxies = revise(results, fetched, answers)
    settled = settle(
        first=plan, revised=await replan(revised), results=revised, fetched=proxies, answers=answers
    )
    return settled, revised


def _order(question: Question) -> tuple[str, ...]:
    c = question.check
    return (question.scope.region, c.kind, c.proxy_name, c.endpoint_name, c.arn)
