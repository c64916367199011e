"""What the daemon reports about itself: the cycles' record, readiness, the `/status` document.

`/status` shows the last cycle through its `CycleSummary`, and each scope in the one JSON shape
of a scope (`discovery.output.report.scope_document`, DESIGN §7) plus what only a daemon
knows: its skipped items by reason and when it last answered.
"""

from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from discovery.core.config import Config
from discovery.core.plan import REASON_SCOPE_FAILED
from discovery.core.summary import ScopeSummary
from discovery.daemon.backend import GuardedRegistry
from discovery.daemon.election import Election, election_interval
from discovery.daemon.runner import CycleOutcome
from discovery.output.logs import Redactor
from discovery.output.metrics import SUCCESS_RESULTS
from discovery.output.page import HISTORY_LIMIT, CyclePoint, render_page
from discovery.output.report import scope_document

# /status lists at most this many withheld changes (all of them are counted); a region of
# thousands of proxies that fails would otherwise make every status read megabytes long.
STATUS_WITHHELD_LIMIT = 1000
# /status lists at most this many skipped items per scope.
STATUS_SKIPPED_LIMIT = 100


def iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return (
        datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    )


class CycleBook:
    """What the cycles have left behind so far: counts, the last outcome, the last success."""

    def __init__(self) -> None:
        self.completed = 0
        self.skipped = 0  # scheduled runs skipped because a cycle was still going
        self.last: CycleOutcome | None = None
        self.last_success: float | None = None
        self.followed = False  # was a ready follower: stays ready through its takeover
        # The last cycles, for the status page's chart: bounded, whatever the uptime.
        self.history: deque[CyclePoint] = deque(maxlen=HISTORY_LIMIT)

    def record(self, outcome: CycleOutcome) -> None:
        self.last = outcome
        summary = outcome.summary
        self.history.append(
            CyclePoint(
                cycle_id=outcome.cycle_id,
                finished_at=outcome.finished_at,
                duration=outcome.finished_at - outcome.started_at,
                result=outcome.result,
                changes=summary.to_create + summary.to_update + summary.to_delete,
                withheld=summary.withheld,
            )
        )
        if outcome.result in SUCCESS_RESULTS:
            self.completed += 1
            self.last_success = outcome.finished_at


def readiness(
    *,
    stopping: bool,
    registry: GuardedRegistry,
    election: Election,
    book: CycleBook,
    group: str,
    redactor: Redactor,
) -> tuple[bool, str]:
    """Ready: the registry answers and this replica can do its part.

    A leader is ready after its first completed cycle. A follower is ready once its elector
    reaches the database and it has read the registry: it can take over at any moment,
    and it stays ready while it does (a takeover is not an outage).
    """
    if stopping:
        return False, "stopping"
    if registry.reachable is False:
        return False, redactor(f"registry unreachable: {registry.error}")
    if election.start_error:
        return False, redactor(f"leader election cannot start: {election.start_error}")
    error = election.last_error
    if not election.leading and error:
        return False, redactor(f"leader election cannot reach its database: {error}")
    if book.completed == 0 and not book.followed:
        if election.leading is False:
            return False, "following another replica; waiting for the first registry read"
        return False, "waiting for the first cycle to complete"
    if election.leading:
        return True, "ready"
    return True, f"ready (following the leader of discovery group {group!r})"


# "rds:DescribeDBProxies failed: AccessDenied: User: arn:aws:... is not authorized ... — grant
# rds:DescribeDBProxies ...": the action and code, AWS's own message, then our fix.
_AWS_ERROR_RE = re.compile(
    r"^(?P<head>\S+ failed: [\w.]+)(?P<message>: .*?)??(?P<fix> — .*)?$", re.S
)
_ARN_RE = re.compile(r"\barn:aws[\w-]*:[^\s,;'\"()]*")
AWS_MESSAGE_DROPPED = " (AWS's message is in the daemon's log; server.status_detail: full shows it)"


def brief_error(error: str) -> str:
    """A scope's error for `/status` at `server.status_detail: summary`: the failed action, the
    AWS error code and the fix, without AWS's own message (which names the caller's ARN and
    account, and `/status` may be reachable by more people than the logs); any other ARN left
    in the text is masked."""
    match = _AWS_ERROR_RE.match(error)
    if match is not None and match.group("message"):
        error = match.group("head") + (match.group("fix") or "") + AWS_MESSAGE_DROPPED
    return _ARN_RE.sub("arn:…", error)


def brief_reason(reason: str) -> str:
    """A `scope-failed` withheld change's reason at `summary`: the frozen scope's error in it
    (`scope A/R failed: <error>`) briefed as the scope's own error is (`brief_error`)."""
    head, sep, error = reason.partition(" failed: ")
    if sep and head.startswith("scope "):
        return f"{head} failed: {brief_error(error)}"
    return _ARN_RE.sub("arn:…", reason)


def scope_status(scope: ScopeSummary, *, detail: str = "full") -> dict[str, Any]:
    """A scope in `/status`: DESIGN §7's scope object, plus what only a daemon knows.

    Its `skipped` list stops at STATUS_SKIPPED_LIMIT items (all of them are counted by reason):
    an account of thousands of proxies that a selector leaves out would otherwise make every
    status read megabytes long.
    """
    doc = scope_document(scope)
    doc["skipped"] = doc["skipped"][:STATUS_SKIPPED_LIMIT]
    if detail != "full" and doc["error"]:
        doc["error"] = brief_error(doc["error"])
    return {
        **doc,
        "skipped_truncated": len(scope.skipped) > STATUS_SKIPPED_LIMIT,
        "skipped_by_reason": scope.skipped_by_reason,
        "last_success_at": iso(scope.last_success),
    }


def cycle_document(outcome: CycleOutcome, *, detail: str = "full") -> dict[str, Any]:
    """The last cycle as `/status` shows it: no resource bodies, no external ids; at `detail`
    "summary", no AWS error messages (see `brief_error`)."""
    summary = outcome.summary
    doc: dict[str, Any] = {
        "id": outcome.cycle_id,
        "started_at": iso(outcome.started_at),
        "finished_at": iso(outcome.finished_at),
        "duration_seconds": round(outcome.finished_at - outcome.started_at, 3),
        "result": outcome.result,
        "error": outcome.error,
    }
    counts: dict[str, Any] = {
        "scopes": summary.scope_count,
        "scopes_failed": summary.failed,
        "discovered": summary.discovered,
        "skipped": summary.skipped,
    }
    if summary.planned:
        counts.update(
            created=summary.created,
            updated=summary.updated,
            deleted=summary.deleted,
            unchanged=summary.unchanged,
            withheld=summary.withheld,
            conflicts=summary.conflicts,
            owned=summary.owned,
        )
        doc["applied"] = summary.applied
        doc["delete_guard_tripped"] = summary.guard_tripped
    doc["counts"] = counts
    doc["scopes"] = [scope_status(s, detail=detail) for s in summary.scopes]
    if outcome.report is not None:
        withheld = outcome.report.plan.withheld
        doc["withheld_by_reason"] = dict(summary.withheld_by_reason)
        brief = detail != "full"
        doc["withheld"] = [
            {
                "name": w.name,
                "action": w.action,
                "reason": brief_reason(w.reason)
                if brief and w.code == REASON_SCOPE_FAILED
                else w.reason,
                "code": w.code,
            }
            for w in withheld[:STATUS_WITHHELD_LIMIT]
        ]
        doc["withheld_truncated"] = summary.withheld > STATUS_WITHHELD_LIMIT
    return doc


@dataclass(frozen=True, kw_only=True)
class StatusView:
    """What `/status` is made of, besides the last cycle: role, config, registry, schedule."""

    config: Config
    config_path: str
    config_loaded_at: float
    version: str
    started_at: float
    ready: tuple[bool, str]
    election: Election
    registry: GuardedRegistry
    book: CycleBook
    running: str | None  # the id of the cycle under way
    next_at: float | None  # when the next scheduled run is due
    dry_run: bool = False  # `run --dry-run`: plans and reports, never applies


def status_document(view: StatusView) -> dict[str, Any]:
    """What `/status` shows besides the last cycle: the live fields (role, readiness, schedule),
    cheap to build on every read."""
    config, election, book = view.config, view.election, view.book
    ready, why = view.ready
    return {
        "discovery_group": config.discovery_group,
        "version": view.version,
        "started_at": iso(view.started_at),
        "ready": ready,
        "ready_reason": why,
        "role": "leader" if election.leading else "follower",
        "dry_run": view.dry_run,
        "leadership": {
            # False only for a registry with one writer and no lock (AlwaysLeader).
            "elected": election.elected,
            "since": iso(election.since),
            "election_interval_seconds": election_interval(config),
            "last_error": election.last_error,
            "last_lost_at": iso(election.lost_at),
            "last_lost_reason": election.lost_reason,
        },
        "config": {
            "path": view.config_path,
            "loaded_at": iso(view.config_loaded_at),
            "poll_interval_seconds": config.poll_interval,
            "poll_jitter_seconds": config.poll_jitter_seconds,
        },
        "registry": {
            "backend": config.registry.backend,
            "reachable": view.registry.reachable,
            "error": view.registry.error,
        },
        "cycles": {
            "completed": book.completed,
            "skipped": book.skipped,
            "running": view.running,
            "next_at": iso(view.next_at),
        },
        "last_success_at": iso(book.last_success),
    }


def _dumps(doc: Any) -> str:
    return json.dumps(doc, indent=2)


class StatusCache:
    """The last cycle's part of `/status`, serialized once per cycle.

    That part is most of the document (a scope list, withheld changes: hundreds of KB in a big
    fleet), and it only changes when a cycle ends or the config (its detail level, the
    redactor's ids) changes, so it is rebuilt then, not on every read: hundreds of concurrent
    reads cost one `json.dumps` of the small live part each, and never starve `/healthz`.
    """

    def __init__(self) -> None:
        self._last_cycle: str | None = None
        self._cycle_doc: Any = None
        self._page: tuple[str, bytes] | None = None  # (the live part it was rendered with, page)
        self.builds = 0  # how many times the cycle part was serialized
        self.page_builds = 0  # how many times the status page was rendered

    def invalidate(self) -> None:
        self._last_cycle = None
        self._page = None

    def _cycle(self, view: StatusView, detail: str, scrub: Callable[[Any], Any]) -> str:
        if self._last_cycle is None:
            last = view.book.last
            self._cycle_doc = (
                scrub(cycle_document(last, detail=detail)) if last is not None else None
            )
            # Indented as a member of the top-level object (JSON strings hold no raw newline).
            self._last_cycle = _dumps(self._cycle_doc).replace("\n", "\n  ")
            self.builds += 1
        return self._last_cycle

    def text(self, view: StatusView, *, detail: str, scrub: Callable[[Any], Any]) -> str:
        """The whole `/status` document as JSON text (indented, newline-terminated)."""
        cycle = self._cycle(view, detail, scrub)
        head = _dumps(scrub(status_document(view)))
        return f'{head[:-2]},\n  "last_cycle": {cycle}\n}}\n'

    def page(self, view: StatusView, *, detail: str, scrub: Callable[[Any], Any]) -> bytes:
        """The status page (`GET /`), rendered from the same cached cycle part as `/status`:
        again only when a cycle ends or the live part (role, readiness, schedule) changes."""
        self._cycle(view, detail, scrub)
        head = scrub(status_document(view))
        key = _dumps(head)
        if self._page is None or self._page[0] != key:
            self._page = (key, render_page(head, self._cycle_doc, list(view.book.history)))
            self.page_builds += 1
        return self._page[1]
