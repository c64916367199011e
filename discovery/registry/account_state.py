"""When each account was first seen gone from its organization, kept in a small JSON file.

`discovery.core.organization.listing_freezes` keeps an account's resources until it has been
gone for `organization.gone_grace`; that clock must survive restarts and one-shot `scan`s
from cron, so it lives in a file next to the registry (or at `organization.state_path`).
A missing or unreadable file reads as "no account seen gone yet": every clock starts again,
which can only keep resources longer, never delete them sooner.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

from discovery.core.config import Config
from discovery.registry.open import configured_sqlite_path

log = logging.getLogger(__name__)
VERSION = 1


class AccountStateFile:
    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> dict[str, float]:
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning(
                "%s: unreadable (%s); every gone-account clock starts again", self.path, exc
            )
            return {}
        gone = doc.get("first_seen_gone") if isinstance(doc, dict) else None
        if not isinstance(gone, dict):
            return {}
        return {str(k): float(v) for k, v in gone.items() if isinstance(v, int | float) and str(k)}

    def save(self, gone: Mapping[str, float]) -> None:
        """Write atomically (temp file + rename), so a crash leaves the old or the new file."""
        doc = {"version": VERSION, "first_seen_gone": dict(sorted(gone.items()))}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(doc, out, indent=1)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def account_state_for(config: Config, config_path: Path) -> AccountStateFile:
    """Where "first seen gone" per organization account is kept: `organization.state_path`
    (relative: to the config's folder), else next to the SQLite file, else next to the config."""
    if config.organization.state_path:
        path = Path(config.organization.state_path)
        return AccountStateFile(path if path.is_absolute() else config_path.parent / path)
    if config.registry.backend == "sqlite":
        db = configured_sqlite_path(config, config_path)
        return AccountStateFile(db.with_name(db.name + ".accounts.json"))
    return AccountStateFile(config_path.parent / "discovery-accounts.json")
