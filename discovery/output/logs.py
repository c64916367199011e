"""Log lines an operator can follow and a log pipeline can parse, with no secret in them.

Text by default, JSON lines with `--log-format json`. Every line written while a cycle runs
carries that cycle's id, and lines about one scope carry its account and region: both come from
context variables, so they follow the asyncio tasks of a cycle without being passed around.

Secrets: nothing in this service logs credentials or external ids on purpose, and the formatters
also scrub every known secret (the configured external ids, the base credentials from the
environment) from each line before it is written, as a second line of defence against a library
or an AWS error message echoing one back.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TextIO

LOG_FORMATS = ("text", "json")
REDACTED = "***"
# Environment variables whose values are secrets when set (the access key id is not secret,
# but it names the credentials; scrubbing it costs nothing).
SECRET_ENV = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")
# Short values are too likely to be ordinary words ("testing" in the emulator's docs); real
# secret keys are 40 characters, session tokens hundreds.
_MIN_ENV_SECRET = 16
# AWS requires an external id to be at least 2 characters.
_MIN_SECRET = 2
# A secret is replaced only as a whole token: not where these characters continue it on either
# side, so an external id `us` leaves `us-east-1` and `status` alone.
_TOKEN_CHAR = "A-Za-z0-9_-"
_IS_TOKEN_CHAR = re.compile(f"[{_TOKEN_CHAR}]")

_cycle_id: ContextVar[str] = ContextVar("discovery_cycle_id", default="")
_scope: ContextVar[tuple[str, str] | None] = ContextVar("discovery_scope", default=None)


@contextmanager
def cycle_context(cycle_id: str) -> Iterator[None]:
    """Tag every log line written inside (this task and the tasks it starts) with the cycle id."""
    token = _cycle_id.set(cycle_id)
    try:
        yield
    finally:
        _cycle_id.reset(token)


@contextmanager
def scope_context(*, account: str, region: str) -> Iterator[None]:
    """Tag log lines with the scope's account ("" while unknown) and region."""
    token = _scope.set((account, region))
    try:
        yield
    finally:
        _scope.reset(token)


def current_cycle_id() -> str:
    return _cycle_id.get()


class Redactor:
    """Replaces every known secret in a string, as a whole token only (`us` is redacted in
    `ExternalId=us`, not in `us-east-1`). Secrets are only ever added (config reloads)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: tuple[str, ...] = ()
        self._pattern: re.Pattern[str] | None = None
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        known = set(self._secrets) | {s for s in secrets if len(s) >= _MIN_SECRET}
        # Longest first, so a secret that contains another is replaced whole.
        self._secrets = tuple(sorted(known, key=lambda s: (-len(s), s)))
        self._pattern = re.compile("|".join(map(_whole_token, self._secrets))) if known else None

    def add_environment(self, environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self.add(v for k in SECRET_ENV if len(v := env.get(k, "")) >= _MIN_ENV_SECRET)

    def __call__(self, text: str) -> str:
        if self._pattern is None:
            return text
        return self._pattern.sub(REDACTED, text)

    def scrub(self, value: Any) -> Any:
        """A copy of a JSON-like value with every string value redacted. Keys are names this
        service chose (`status`, a region, a resource name), never secrets: they stay as they
        are, so a short secret cannot scramble the document's shape."""
        if isinstance(value, str):
            return self(value)
        if isinstance(value, dict):
            return {k: self.scrub(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.scrub(v) for v in value]
        return value


def _whole_token(secret: str) -> str:
    """`secret` as a regex that matches it only where it is not part of a longer token."""
    before = f"(?<![{_TOKEN_CHAR}])" if _IS_TOKEN_CHAR.match(secret[0]) else ""
    after = f"(?![{_TOKEN_CHAR}])" if _IS_TOKEN_CHAR.match(secret[-1]) else ""
    return before + re.escape(secret) + after


def _utc(created: float) -> str:
    return (
        time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
        + f".{int(created % 1 * 1000):03d}Z"
    )


class _Base(logging.Formatter):
    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def _context(self) -> dict[str, str]:
        """The cycle and scope fields, their values redacted like any other value."""
        fields: dict[str, str] = {}
        cycle_id = _cycle_id.get()
        if cycle_id:
            fields["cycle_id"] = cycle_id
        scope = _scope.get()
        if scope is not None:
            account, region = scope
            if account:
                fields["account"] = account
            fields["region"] = region
        return {k: self.redactor(v) for k, v in fields.items()}

    def _exception(self, record: logging.LogRecord) -> str:
        text = ""
        if record.exc_info:
            text = self.formatException(record.exc_info)
        if record.stack_info:
            text = (text + "\n" if text else "") + self.formatStack(record.stack_info)
        return text


class TextFormatter(_Base):
    """`2024-05-01T12:00:00.000Z INFO discovery.daemon: message cycle=… account=… region=…`."""

    def format(self, record: logging.LogRecord) -> str:
        # The values are redacted, never the line's own words (level, logger, context keys).
        message = self.redactor(record.getMessage())
        line = f"{_utc(record.created)} {record.levelname} {record.name}: {message}"
        context = self._context()
        if context:
            line += " " + " ".join(
                f"{'cycle' if k == 'cycle_id' else k}={v}" for k, v in context.items()
            )
        exception = self._exception(record)
        if exception:
            line += "\n" + self.redactor(exception)
        return line


class JsonFormatter(_Base):
    """One JSON object per line: time, level, logger, message, cycle_id, account, region."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": _utc(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": self.redactor(record.getMessage()),
        }
        doc.update(self._context())
        exception = self._exception(record)
        if exception:
            doc["exception"] = self.redactor(exception)
        return json.dumps(doc, ensure_ascii=False)


def configure_logging(
    *, level: str, log_format: str = "text", stream: TextIO, redactor: Redactor | None = None
) -> Redactor:
    """Replace the root handlers with one that writes `log_format` lines to `stream`.

    Returns the redactor the formatter uses, so the caller can add secrets as it learns them.
    """
    if log_format not in LOG_FORMATS:
        raise ValueError(f"unknown log format {log_format!r}; use one of {', '.join(LOG_FORMATS)}")
    redactor = redactor or Redactor()
    redactor.add_environment()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        JsonFormatter(redactor) if log_format == "json" else TextFormatter(redactor)
    )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Libraries log per request at DEBUG/INFO; their warnings still come through.
    for noisy in ("aiobotocore", "botocore", "urllib3", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # APScheduler warns about skipped and missed runs in its own words; the daemon logs (and
    # counts) those itself, with the cycle context. Its errors still come through.
    logging.getLogger("apscheduler").setLevel(logging.ERROR)
    return redactor
