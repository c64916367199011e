"""The configuration file: YAML validated into frozen pydantic models (DESIGN §7).

Every way a config can be wrong ends in one `ConfigError` whose message names the YAML path of
the bad field (e.g. `aws[0].external_id`) and the fix, so the CLI can print it and exit 2.

A Teleport `teleport.yaml` is accepted too (migration): its `discovery_service` section is
translated by `discovery.core.teleport_config`, and what it leaves out comes back as warnings.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from discovery.core import teleport_config
from discovery.core.config_errors import render_errors, yaml_path
from discovery.core.config_yaml import ConfigYAMLError, load_yaml
from discovery.core.durations import (
    MAX_DELETE_WINDOW,
    MAX_POLL_INTERVAL,
    MAX_TIMEOUT,
    MIN_POLL_INTERVAL,
    MIN_TIMEOUT,
    bounded_duration,
    check_range,
    parse_duration,
    parse_jitter,
    parse_seconds,
    strict_fraction,
    strict_int,
)
from discovery.core.matchers import (
    REGION_RE,
    ROLE_ARN_RE,
    SUPPORTED_TYPES,
    Matcher,
    OrganizationMatch,
    OrganizationSettings,
    _Frozen,
)
from discovery.core.regions import OPT_OUT, unknown_region

__all__ = [
    "MIN_POLL_INTERVAL",
    "REGION_RE",
    "ROLE_ARN_RE",
    "SUPPORTED_TYPES",
    "Config",
    "ConfigError",
    "LoadedConfig",
    "Matcher",
    "OrganizationMatch",
    "OrganizationSettings",
    "config_from_mapping",
    "loaded_from_mapping",
    "parse_config",
    "parse_duration",
    "parse_jitter",
    "parse_listen",
    "yaml_path",
]

GROUP_RE = re.compile(r"^[a-zA-Z0-9][-a-zA-Z0-9_.]{0,62}$")


class ConfigError(Exception):
    """A config that cannot be used. `str()` is the one line a user sees.

    A key or value quoted in the message may hold a newline or another control character;
    those are shown escaped (`\\n`), so the message stays one line.
    """

    def __init__(self, message: str) -> None:
        super().__init__("".join(c if c.isprintable() else repr(c)[1:-1] for c in message))


Timeout = Annotated[float, BeforeValidator(bounded_duration(low=MIN_TIMEOUT, high=MAX_TIMEOUT))]
Fraction = Annotated[float, BeforeValidator(strict_fraction)]
Window = Annotated[float, BeforeValidator(bounded_duration(low=0.0, high=MAX_DELETE_WINDOW))]
WholeNumber = Annotated[int, BeforeValidator(strict_int)]
DEFAULT_JITTER_FRACTION = 0.1


def parse_listen(value: str) -> tuple[str, int]:
    """`HOST:PORT`, `[IPv6]:PORT` or `:PORT` (all interfaces, host "") → (host, port)."""
    text = value.strip()
    host, sep, port_text = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        sep = ""  # a bare IPv6 address without brackets is ambiguous
    bad_host = any(c in host for c in "[] /")
    if not sep or not port_text.isdigit() or int(port_text) > 65535 or bad_host:
        raise ValueError(
            f"{value!r} is not an address to listen on; write HOST:PORT, e.g. 127.0.0.1:9464, "
            "[::1]:9464, or :9464 for all interfaces"
        )
    return host, int(port_text)


DEFAULT_DSN_ENV = "DISCOVERY_REGISTRY_DSN"
_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


_AUTH_SERVER_RE = re.compile(
    r"^[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?(:\d{1,5})?$|^\[[0-9a-fA-F:.]+\](:\d{1,5})?$"
)


class RegistryConfig(_Frozen):
    backend: Literal["sqlite", "postgres", "teleport"] = "sqlite"
    path: str = "discovery.db"
    # postgres: a libpq DSN (`host=... dbname=... user=...` or `postgresql://...`). Better left
    # empty, with the DSN in the environment variable `dsn_env` names, so that no password sits
    # in the config file (libpq's own PGPASSWORD and ~/.pgpass work too).
    dsn: str = ""
    dsn_env: str = DEFAULT_DSN_ENV
    # teleport: the Teleport cluster itself, written through `tctl` (discovery.registry.teleport).
    # `tctl` is a command on PATH or a path (a relative one is taken against the config's
    # folder); `auth_server` and `identity` are passed as `--auth-server` and `-i` when set.
    tctl: str = "tctl"
    auth_server: str = ""
    identity: str = ""
    timeout: Timeout = 30.0
    # teleport: the apply journal (the delete guard's window, `registry history`) is kept in
    # this local file; empty: no journal, the guard counts the current cycle only.
    journal: str = ""

    @field_validator("tctl")
    @classmethod
    def _tctl(cls, tctl: str) -> str:
        if not tctl.strip():
            raise ValueError("must name the tctl binary, e.g. tctl or /usr/local/bin/tctl")
        return tctl.strip()

    @field_validator("auth_server")
    @classmethod
    def _auth_server(cls, address: str) -> str:
        if address and not _AUTH_SERVER_RE.match(address):
            raise ValueError(
                f"{address!r} is not host[:port], e.g. teleport.example.com:443 "
                "(the proxy or auth address tctl connects to)"
            )
        return address

    @model_validator(mode="after")
    def _identity_needs_auth_server(self) -> RegistryConfig:
        if self.backend == "teleport" and self.identity and not self.auth_server:
            raise ValueError(
                "registry.identity needs registry.auth_server: tctl with -i (an identity "
                "file) must be told where to connect, e.g. auth_server: teleport.example.com:443"
            )
        return self

    @field_validator("dsn_env")
    @classmethod
    def _dsn_env(cls, name: str) -> str:
        if not _ENV_NAME_RE.match(name):
            raise ValueError(
                f"{name!r} is not an environment variable name, e.g. {DEFAULT_DSN_ENV}"
            )
        return name

    def resolve_dsn(self, environ: Mapping[str, str]) -> str:
        """The PostgreSQL DSN: the `dsn_env` variable when it is set, else `dsn`.

        The environment wins so that one deployment can override the file per replica or per
        command (e.g. `discovery registry migrate` with an owner role's DSN).
        """
        from_env = environ.get(self.dsn_env, "").strip()
        if from_env:
            return from_env
        if self.dsn.strip():
            return self.dsn.strip()
        raise ConfigError(
            f"registry.dsn: backend postgres needs a DSN; set the environment variable "
            f"{self.dsn_env} (named by registry.dsn_env) or registry.dsn, "
            "e.g. 'host=db.internal dbname=discovery user=discovery'"
        )


class SafetyConfig(_Frozen):
    policy: Literal["sync", "upsert-only", "create-only"] = "sync"
    max_delete_fraction: Fraction = 0.3
    # The guard adds the deletes of the applies journaled within this window (0s: this cycle).
    delete_window: Window = 3600.0


DEFAULT_PER_ACCOUNT_REGION = 16


class AWSClientConfig(_Frozen):
    """How the AWS clients behave: timeouts, retries and concurrency (botocore's settings).

    The defaults suit AWS; tests and slow networks shorten or lengthen them. A call that
    exhausts `max_attempts` (throttled, 5xx, timed out) fails its scope, which is then frozen.
    """

    read_timeout: Timeout = 30.0
    connect_timeout: Timeout = 5.0
    max_attempts: WholeNumber = Field(default=6, ge=1, le=20)
    # Calls in flight over all scopes (the global ceiling), and per (account, region): AWS
    # throttles per account and region, so that limit halves when AWS throttles.
    max_concurrency: WholeNumber = Field(default=256, ge=1, le=1000)
    # Unset: 16, or max_concurrency when that is lower (see `per_account_region`).
    max_concurrency_per_account_region: WholeNumber | None = Field(default=None, ge=1, le=300)
    # A scope still fetching this long after it started is failed (frozen) for this cycle.
    scope_deadline: Timeout = 60.0

    @property
    def per_account_region(self) -> int:
        """The calls in flight allowed per (account, region)."""
        if self.max_concurrency_per_account_region is None:
            return min(DEFAULT_PER_ACCOUNT_REGION, self.max_concurrency)
        return self.max_concurrency_per_account_region

    @model_validator(mode="after")
    def _per_key_within_global(self) -> AWSClientConfig:
        per = self.max_concurrency_per_account_region
        if per is not None and per > self.max_concurrency:
            raise ValueError(
                f"max_concurrency_per_account_region ({self.max_concurrency_per_account_region}) "
                f"must not exceed max_concurrency ({self.max_concurrency}); lower it or raise "
                "max_concurrency"
            )
        return self


class ServerConfig(_Frozen):
    listen: str = "127.0.0.1:9464"
    # "summary": /status shows a failed scope's error without AWS's own message (it names the
    # caller's ARN and account); "full": as the logs show it.
    status_detail: Literal["summary", "full"] = "summary"
    # Connections served at once; one more is answered 503 and closed at once (/healthz is
    # always answered), so idle clients cannot use up the process's file descriptors.
    max_connections: int = Field(default=64, ge=4, le=10_000)

    @field_validator("listen")
    @classmethod
    def _listen(cls, listen: str) -> str:
        parse_listen(listen)
        return listen


class Config(_Frozen):
    discovery_group: str
    # Range-checked by `_interval` (its floor is the caller's, see `loaded_from_mapping`).
    poll_interval: Annotated[float, BeforeValidator(parse_seconds)] = 300.0
    # The daemon waits poll_interval plus a random 0..poll_jitter between cycles, so a fleet of
    # daemons started together does not hit AWS in step. None: 10% of poll_interval; 0s: off.
    poll_jitter: Annotated[float | None, BeforeValidator(parse_jitter)] = None
    aws: tuple[Matcher, ...]
    registry: RegistryConfig = Field(default_factory=RegistryConfig)
    safety: SafetyConfig = Field(default_factory=SafetyConfig)
    server: ServerConfig = Field(default_factory=ServerConfig)
    aws_client: AWSClientConfig = Field(default_factory=AWSClientConfig)
    organization: OrganizationSettings = Field(default_factory=OrganizationSettings)
    # A region botocore does not know yet is refused unless this is true (see core/regions.py).
    allow_unknown_regions: bool = False

    @field_validator("discovery_group")
    @classmethod
    def _group(cls, group: str) -> str:
        if not GROUP_RE.match(group):
            raise ValueError(
                f"{group!r} is not a valid discovery group; use letters, digits, '-', '_' or '.'"
                " (at most 63 characters)"
            )
        return group

    @field_validator("poll_interval")
    @classmethod
    def _interval(cls, interval: float, info: ValidationInfo) -> float:
        # The floor comes from the caller (see `config_from_mapping`), never from the file.
        context = info.context if isinstance(info.context, Mapping) else {}
        low = float(context.get("min_poll_interval", MIN_POLL_INTERVAL))
        return check_range(interval, low=low, high=MAX_POLL_INTERVAL)

    @field_validator("poll_jitter")
    @classmethod
    def _jitter(cls, jitter: float | None, info: ValidationInfo) -> float | None:
        interval = info.data.get("poll_interval")
        if jitter is not None and interval is not None and jitter > interval:
            raise ValueError(
                f"poll_jitter ({jitter:g}s) must not be longer than poll_interval ({interval:g}s)"
            )
        return jitter

    @property
    def poll_jitter_seconds(self) -> float:
        """The jitter the daemon uses: poll_jitter, or 10% of poll_interval when unset."""
        if self.poll_jitter is None:
            return self.poll_interval * DEFAULT_JITTER_FRACTION
        return self.poll_jitter

    @field_validator("aws")
    @classmethod
    def _matchers(cls, matchers: tuple[Matcher, ...]) -> tuple[Matcher, ...]:
        if not matchers:
            raise ValueError("at least one matcher is required under aws")
        return matchers


@dataclass(frozen=True, kw_only=True)
class LoadedConfig:
    """A validated config, what was ignored while reading it, and which format it was in."""

    config: Config
    warnings: tuple[str, ...] = ()
    teleport: bool = False


def config_from_mapping(
    data: object, *, source: str = "config", min_poll_interval: float = MIN_POLL_INTERVAL
) -> Config:
    return loaded_from_mapping(data, source=source, min_poll_interval=min_poll_interval).config


def loaded_from_mapping(
    data: object,
    *,
    source: str = "config",
    min_poll_interval: float = MIN_POLL_INTERVAL,
    known_regions: Collection[str] | None = None,
) -> LoadedConfig:
    """Our config or a teleport.yaml (told apart by its top-level keys), validated.

    `min_poll_interval` is the shortest `poll_interval` accepted: the product's 10s unless a
    test lowers it (`discovery.wiring` reads DISCOVERY_MIN_POLL_INTERVAL); a file cannot.
    `known_regions`: the AWS region names a region must be one of (botocore's, passed in by
    `discovery.wiring`) unless the config sets `allow_unknown_regions`; None: not checked.
    """
    context = {"min_poll_interval": min_poll_interval}
    if data is None:
        raise ConfigError(
            f"{source}: the file is empty (or only comments); "
            "at least discovery_group and aws are needed, see config.example.yaml"
        )
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"{source}: the top level must be a mapping of settings "
            f"(discovery_group: ..., aws: ...), not {_kind_of(data)}"
        )
    if not teleport_config.is_teleport_config(data):
        config = _validate(data, source=source, context=context, known_regions=known_regions)
        return LoadedConfig(config=config)
    source = f"{source} (teleport.yaml)"
    try:
        translated = teleport_config.translate(data)
    except teleport_config.TeleportConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    config = _validate(
        translated.mapping,
        source=source,
        context=context,
        where=translated.original_loc,
        known_regions=known_regions,
    )
    return LoadedConfig(config=config, warnings=translated.warnings, teleport=True)


def _kind_of(data: object) -> str:
    if isinstance(data, list):
        return "a list"
    if isinstance(data, str):
        return f"the text {data[:40]!r}"
    if isinstance(data, bool):
        return f"the boolean {str(data).lower()}"
    if isinstance(data, int | float):
        return f"the number {data!r}"
    return f"a {type(data).__name__}"


# teleport.yaml has no such setting: the way out is our own config format.
TELEPORT_REGION_OPT_OUT = (
    "write a discovery.yaml with allow_unknown_regions: true (teleport.yaml has no such setting)"
)


def _same_loc(loc: Sequence[int | str]) -> Sequence[int | str]:
    return loc


def _validate(
    data: Mapping[str, Any],
    *,
    source: str,
    context: Mapping[str, float],
    where: Callable[[Sequence[int | str]], Sequence[int | str]] = _same_loc,
    known_regions: Collection[str] | None = None,
) -> Config:
    try:
        config = Config.model_validate(data, context=dict(context))
    except ValidationError as exc:
        raise ConfigError(
            render_errors(exc.errors(), source=source, model=Config, where=where)
        ) from None
    if known_regions is not None and not config.allow_unknown_regions:
        opt_out = TELEPORT_REGION_OPT_OUT if where is not _same_loc else OPT_OUT
        problem = unknown_region(config.aws, known_regions, opt_out=opt_out)
        if problem is not None:
            raise ConfigError(f"{source}: {yaml_path(where(problem.loc))}: {problem.message}")
    return config


def parse_config(
    text: str,
    *,
    source: str,
    min_poll_interval: float = MIN_POLL_INTERVAL,
    known_regions: Collection[str] | None = None,
) -> LoadedConfig:
    """A config file's text (ours or a teleport.yaml) → the validated config and its warnings.

    `source` names the file in every error. Reading the file is the caller's (see
    `discovery.wiring.read_config`): this stays pure. A key repeated in a mapping is an error
    (see `discovery.core.config_yaml`).
    """
    try:
        data = load_yaml(text)
    except ConfigYAMLError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    return loaded_from_mapping(
        data, source=source, min_poll_interval=min_poll_interval, known_regions=known_regions
    )
