"""The Teleport cluster as the registry, through `tctl` (issue 13).

Commands, exactly: `tctl get db --format=json` (list), `tctl create FILE` (creates: without
`-f`, so a name someone registered since we read fails instead of being overwritten),
`tctl create -f FILE` (updates: overwrite), `tctl rm db/NAME` (one delete per call), with
`--auth-server` and `-i` before the subcommand when configured (see `teleport_tctl`).

There are no transactions. Followed from Teleport's source (tool/tctl/common/
resource_command.go, `Create`): tctl decodes the file's documents one after another, prints
`database "NAME" has been created|updated` for each, and stops at the first error, so the
documents before it are written and those after it are not tried. An apply therefore:

1. re-reads the cluster and refuses (`RegistryConflict`, nothing written) when an update's or
   delete's revision moved or a create's name appeared — the compare-and-swap of the other
   backends, checked just before writing instead of atomically;
2. batches creates and updates into files of up to `BATCH` documents, reads each written
   name off stdout, and after a batch fails retries what was not written one by one, so
   every resource's outcome is known;
3. deletes one `rm` each; a resource already gone counts as deleted;
4. stops at the first failure that would fail every call alike (identity, access, cluster
   unreachable, timeout, no tctl) and raises: `TctlError` when nothing was written,
   `PartialApply` (what was written, what was not and why) otherwise. The next cycle
   re-reads the cluster and plans the rest.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from discovery.core.journal import JournalEntry, journal_entry
from discovery.core.model import Changes, Resource, StoredResource
from discovery.registry.base import PartialApply, RegistryConflict, RegistryError, WriteFailure
from discovery.registry.teleport_codec import TctlOutputError, decode_list, encode_documents
from discovery.registry.teleport_journal import TeleportJournal
from discovery.registry.teleport_tctl import Tctl, TctlError, TctlSettings, explain

__all__ = ["BATCH", "TeleportRegistry"]

BATCH = 50
"""Documents per `tctl create` call: few calls, each well inside the per-call timeout."""

_WRITTEN = re.compile(r'^database "(?P<name>[^"]+)" has been (?P<how>created|updated|deleted)')


@dataclass
class _Progress:
    written: list[tuple[str, str]] = field(default_factory=list)
    failed: list[WriteFailure] = field(default_factory=list)
    stopped: TctlError | None = None


class TeleportRegistry:
    """A `Registry` in a Teleport cluster, written through tctl."""

    def __init__(self, settings: TctlSettings, *, journal: Path | None = None) -> None:
        self.tctl = Tctl(settings)
        self.journal = TeleportJournal(journal)
        self.where = f"teleport {settings.auth_server or '(tctl default cluster)'}"

    async def list_resources(self) -> list[StoredResource]:
        result = await self.tctl.run(["get", "db", "--format=json"])
        if not result.ok:
            raise explain(result, "get db")
        try:
            return decode_list(result.stdout)
        except TctlOutputError as exc:
            raise RegistryError(f"{exc}; is registry.tctl Teleport's tctl?") from None

    async def apply(self, changes: Changes) -> None:
        if not changes:
            return
        await self._check_unmoved(changes)
        progress = _Progress()
        await self._write(progress, "create", list(changes.create), force=False)
        await self._write(progress, "update", [u.after for u in changes.update], force=True)
        for stored in changes.delete:
            if progress.stopped is not None:
                progress.failed.append(_not_tried("delete", stored.resource.name, progress))
                continue
            await self._delete(progress, stored.resource.name)
        entry = journal_entry(changes)
        if entry is not None:
            self.journal.append(entry, progress.written)
        if not progress.failed:
            return
        if not progress.written and progress.stopped is not None:
            raise progress.stopped
        raise PartialApply(written=progress.written, failed=progress.failed)

    async def history(
        self,
        *,
        discovery_group: str | None = None,
        since: datetime | None = None,
        limit: int | None = None,
    ) -> list[JournalEntry]:
        """The local journal's rows (`registry.journal`); none without one."""
        return self.journal.history(discovery_group=discovery_group, since=since, limit=limit)

    async def close(self) -> None:
        return None

    async def _check_unmoved(self, changes: Changes) -> None:
        current = {s.resource.name: s.revision for s in await self.list_resources()}
        for resource in changes.create:
            if resource.name in current:
                raise RegistryConflict(f"cannot create {resource.name!r}: it already exists")
        before = [u.before for u in changes.update] + list(changes.delete)
        for stored in before:
            if current.get(stored.resource.name) != stored.revision:
                raise RegistryConflict(
                    f"{stored.resource.name!r} was changed or deleted since it was read"
                )

    async def _write(
        self, progress: _Progress, action: str, resources: list[Resource], *, force: bool
    ) -> None:
        for start in range(0, len(resources), BATCH):
            batch = resources[start : start + BATCH]
            if progress.stopped is not None:
                progress.failed += [_not_tried(action, r.name, progress) for r in batch]
                continue
            written, error = await self._create(batch, force=force)
            progress.written += [(action, n) for n in written]
            if error is None:
                continue
            rest = [r for r in batch if r.name not in written]
            if error.global_ or len(batch) == 1:
                self._fail(progress, action, rest, error)
                continue
            for resource in rest:  # one by one: each resource's own outcome
                if progress.stopped is not None:
                    progress.failed.append(_not_tried(action, resource.name, progress))
                    continue
                one, error = await self._create([resource], force=force)
                if one:
                    progress.written.append((action, resource.name))
                elif error is not None:
                    self._fail(progress, action, [resource], error)

    def _fail(
        self, progress: _Progress, action: str, resources: list[Resource], error: TctlError
    ) -> None:
        if error.global_:
            progress.stopped = error
        progress.failed += [
            WriteFailure(action=action, name=r.name, reason=str(error)) for r in resources
        ]

    async def _create(
        self, batch: list[Resource], *, force: bool
    ) -> tuple[set[str], TctlError | None]:
        """One `tctl create [-f] FILE`: the names it wrote, and its error if it failed."""
        with tempfile.NamedTemporaryFile(
            "w", suffix=".yaml", prefix="discovery-", encoding="utf-8"
        ) as file:
            file.write(encode_documents(batch))
            file.flush()
            args = ["create", "-f", file.name] if force else ["create", file.name]
            try:
                result = await self.tctl.run(args)
            except TctlError as exc:
                return set(), exc
        wanted = {r.name for r in batch}
        if result.ok:  # every document was written, whatever tctl printed about each
            return wanted, None
        written = {m["name"] for m in map(_WRITTEN.match, result.stdout.splitlines()) if m}
        return written & wanted, explain(result, "create -f" if force else "create")

    async def _delete(self, progress: _Progress, name: str) -> None:
        try:
            result = await self.tctl.run(["rm", f"db/{name}"])
        except TctlError as exc:
            progress.stopped = exc
            progress.failed.append(WriteFailure(action="delete", name=name, reason=str(exc)))
            return
        gone = re.search(rf'database "{re.escape(name)}" (doesn\'t exist|not found)', result.stderr)
        if result.ok or gone:
            progress.written.append(("delete", name))  # already gone is as good as deleted
            return
        error = explain(result, "rm")
        if error.global_:
            progress.stopped = error
        progress.failed.append(WriteFailure(action="delete", name=name, reason=str(error)))


def _not_tried(action: str, name: str, progress: _Progress) -> WriteFailure:
    reason = f"not tried after an earlier failure ({progress.stopped})"
    return WriteFailure(action=action, name=name, reason=reason)
