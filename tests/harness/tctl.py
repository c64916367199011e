"""The stand-in tctl (discovery/demo/tctl_standin.py) as a test uses it: installed as an
executable `tctl` in a folder, its cluster state and faults in a JSON file, its calls recorded.
"""

from __future__ import annotations

import json
import shlex
import sys
import uuid
from pathlib import Path
from typing import Any

from discovery.demo import tctl_standin

STANDIN = Path(tctl_standin.__file__)


class StandinTctl:
    """A `tctl` executable at `self.path` whose cluster lives in `self.state_path`."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.state_path = folder / "tctl-state.json"
        self.path = folder / "tctl"
        self.path.write_text(
            "#!/bin/sh\n"
            f"TCTL_STANDIN_STATE={shlex.quote(str(self.state_path))} "
            f'exec {shlex.quote(sys.executable)} {shlex.quote(str(STANDIN))} "$@"\n'
        )
        self.path.chmod(0o755)
        self._write({"resources": {}, "faults": {}, "calls": []})

    def _read(self) -> dict[str, Any]:
        return dict(json.loads(self.state_path.read_text()))

    def _write(self, state: dict[str, Any]) -> None:
        self.state_path.write_text(json.dumps(state, indent=1, sort_keys=True))

    def resources(self) -> dict[str, dict[str, Any]]:
        return dict(self._read()["resources"])

    def calls(self) -> list[list[str]]:
        return list(self._read()["calls"])

    def subcommands(self) -> list[str]:
        """Each call's subcommand (`get`, `create`, `rm`), global flags left out."""
        out = []
        for argv in self.calls():
            args = list(argv)
            while args and args[0].startswith("-"):
                args = args[2:]
            out.append(args[0] if args else "")
        return out

    def writes(self) -> list[list[str]]:
        """The calls that write: `create` and `rm`."""
        return [c for c, sub in zip(self.calls(), self.subcommands(), strict=True) if sub != "get"]

    def clear_calls(self) -> None:
        state = self._read()
        state["calls"] = []
        self._write(state)

    def set_faults(self, **faults: Any) -> None:
        state = self._read()
        state["faults"] = faults
        self._write(state)

    def seed(self, doc: dict[str, Any]) -> None:
        """A resource someone else registered (by hand, Terraform...): as tctl would store it."""
        state = self._read()
        doc = json.loads(json.dumps(doc))
        doc.setdefault("metadata", {})["revision"] = str(uuid.uuid4())
        state["resources"][doc["metadata"]["name"]] = doc
        self._write(state)
