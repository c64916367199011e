"""Running `tctl`: one subprocess per call, bounded by a timeout, its failure named for operators.

tctl prints its result lines on stdout (`database "x" has been created`) and an error as
`ERROR: <message>` on stderr with exit code 1 (tool/tctl/common: `utils.FatalError`). The
messages below are Teleport's own (v17/v18): `access denied to perform action "create" on "db"`
(lib/services/role.go), `database "x" already exists` / `database "x" doesn't exist`
(lib/services/local/databases.go); an expired or unusable identity and an unreachable cluster
are reported by the client before any resource call. Those that no retry can fix (they would
fail every resource the same way) are `global`: the apply stops at the first one.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from discovery.registry.base import RegistryError

__all__ = ["Tctl", "TctlError", "TctlResult", "TctlSettings", "explain"]

ROLE_FIX = (
    "the Teleport role of this identity needs rules for resources [db] with verbs "
    "[list, read, create, update, delete] (see README: Write into a Teleport cluster)"
)
IDENTITY_FIX = "renew the bot identity (is tbot running and writing registry.identity?)"
REACH_FIX = "check registry.auth_server and that the Teleport proxy/auth is reachable"


class TctlError(RegistryError):
    """A tctl call failed. `str()` is one line naming the fix.

    `kind` is `missing` (no tctl), `identity`, `denied`, `unreachable`, `timeout` or `other`;
    all but `other` would fail every other call the same way (`global_`).
    """

    def __init__(self, message: str, *, kind: str = "other") -> None:
        super().__init__(message)
        self.kind = kind

    @property
    def global_(self) -> bool:
        return self.kind != "other"


@dataclass(frozen=True, kw_only=True)
class TctlSettings:
    """How to call tctl: the binary, the flags before the subcommand, the timeout per call."""

    tctl: str = "tctl"
    auth_server: str = ""
    identity: str = ""
    timeout: float = 30.0

    def prefix(self) -> list[str]:
        argv = [self.tctl]
        if self.auth_server:
            argv += ["--auth-server", self.auth_server]
        if self.identity:
            argv += ["-i", self.identity]
        return argv

    @classmethod
    def resolved(
        cls, *, tctl: str, auth_server: str, identity: str, timeout: float, base: Path
    ) -> TctlSettings:
        """Relative paths (a `tctl` with a `/`, the identity) taken against `base`."""
        if "/" in tctl and not Path(tctl).is_absolute():
            tctl = str(base / tctl)
        if identity and not Path(identity).is_absolute():
            identity = str(base / identity)
        return cls(tctl=tctl, auth_server=auth_server, identity=identity, timeout=timeout)


@dataclass(frozen=True, kw_only=True)
class TctlResult:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def error_line(self) -> str:
        """tctl's `ERROR: ...` message (first line, prefix dropped), or what stderr held."""
        lines = [ln.strip() for ln in self.stderr.splitlines() if ln.strip()]
        for line in lines:
            if line.startswith("ERROR:"):
                return line.removeprefix("ERROR:").strip()
        return lines[-1] if lines else f"exit code {self.returncode} with no message"


class Tctl:
    """Runs `tctl <flags> ARGS` as an asyncio subprocess; kills it when the timeout passes."""

    def __init__(self, settings: TctlSettings) -> None:
        self.settings = settings

    def binary_path(self) -> str | None:
        """Where the configured tctl is, or None when it is neither a file nor on PATH."""
        tctl = self.settings.tctl
        if "/" in tctl:
            return tctl if os.access(tctl, os.X_OK) and Path(tctl).is_file() else None
        return shutil.which(tctl)

    async def run(self, args: Sequence[str]) -> TctlResult:
        """tctl's answer; `TctlError` when it could not run or did not finish in time."""
        argv = (*self.settings.prefix(), *args)
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except (FileNotFoundError, PermissionError, NotADirectoryError) as exc:
            raise TctlError(
                f"cannot run tctl {self.settings.tctl!r} ({exc.strerror}): install Teleport's "
                "tctl or set registry.tctl to its path",
                kind="missing",
            ) from None
        try:
            out, err = await asyncio.wait_for(proc.communicate(), self.settings.timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            raise TctlError(
                f"tctl {' '.join(args[:1])} did not answer within {self.settings.timeout:g}s "
                f"(registry.timeout): {REACH_FIX}; the outcome of this call is unknown and the "
                "next cycle re-reads the cluster",
                kind="timeout",
            ) from None
        except asyncio.CancelledError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            raise
        return TctlResult(
            argv=argv,
            returncode=proc.returncode if proc.returncode is not None else -1,
            stdout=out.decode("utf-8", "replace"),
            stderr=err.decode("utf-8", "replace"),
        )


# An identity that cannot be used: expired, not trusted, or its file missing (tctl -i FILE).
_EXPIRED = re.compile(
    r"expired|x509: certificate|identity file|tls: bad certificate|no such file or directory",
    re.I,
)
_DENIED = re.compile(r"access denied", re.I)
_UNREACHABLE = re.compile(
    r"connection refused|no such host|i/o timeout|unreachable|connect: |failed to connect|"
    r"context deadline exceeded|EOF$",
    re.I,
)


def explain(result: TctlResult, action: str) -> TctlError:
    """A failed call → one line naming the fix (the class of failure decides `global_`)."""
    message = result.error_line
    if _DENIED.search(message):
        return TctlError(f"tctl {action}: {message}: {ROLE_FIX}", kind="denied")
    if _EXPIRED.search(message):
        return TctlError(f"tctl {action}: {message}: {IDENTITY_FIX}", kind="identity")
    if _UNREACHABLE.search(message):
        return TctlError(f"tctl {action}: {message}: {REACH_FIX}", kind="unreachable")
    return TctlError(f"tctl {action}: {message}")
