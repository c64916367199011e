"""The command line: `discovery run | scan | validate | registry list|export|migrate|copy
| print-iam | iam bootstrap | doctor | emulator | demo`.

Exit codes (DESIGN §7): 0 done, 1 runtime error, 2 bad config or usage, 3 done but some scopes
failed (left frozen), 4 done but deletes withheld by the delete guard. When both 3 and 4 apply,
3 wins: a failed scope is the more urgent thing to look at.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from discovery import __version__
from discovery.aws.clients import AWSSettings
from discovery.aws.rds_proxy import AWSSource
from discovery.core.config import Config, ConfigError, load_config
from discovery.core.model import ScopeResult
from discovery.core.scopes import expand_scopes
from discovery.core.summary import CycleReport
from discovery.output.report import render_json, render_text, render_yaml
from discovery.reconcile.cycle import run_cycle
from discovery.registry.base import Registry, RegistryConflict, RegistryError

if TYPE_CHECKING:
    from discovery.registry.leader import Leadership
    from discovery.registry.postgres import Fence, PostgresRegistry

EXIT_OK = 0
EXIT_RUNTIME = 1
EXIT_CONFIG = 2
EXIT_SCOPES_FAILED = 3
EXIT_DELETES_WITHHELD = 4
DEFAULT_CONFIG = "discovery.yaml"

log = logging.getLogger("discovery")


class UsageError(Exception):
    """Bad usage that argparse cannot see (exit 2)."""


def open_registry(
    config: Config, config_path: Path, *, leadership: Leadership | None = None
) -> Registry:
    """The configured registry.

    With `leadership` (the daemon's elector), a PostgreSQL registry is fenced: each apply
    commits only while that elector's session still holds the leader lock.
    """
    if config.registry.backend == "sqlite":
        from discovery.registry.sqlite import SQLiteRegistry

        path = Path(config.registry.path)
        if not path.is_absolute():
            path = config_path.parent / path
        return SQLiteRegistry(path)
    try:
        dsn = config.registry.resolve_dsn(os.environ)
    except ConfigError as exc:
        raise ConfigError(f"{config_path}: {exc}") from None
    fence: Fence | None = None
    if leadership is not None:
        from discovery.registry.postgres_leader import PostgresLeaderElector

        if isinstance(leadership, PostgresLeaderElector):
            fence = leadership.held_lock
    try:
        return postgres_registry(dsn, fence=fence)
    except RegistryError as exc:
        raise ConfigError(
            f"{config_path}: registry.dsn (or ${config.registry.dsn_env}): {exc}"
        ) from None


def open_leadership(config: Config, config_path: Path) -> Leadership:
    """The daemon's leader elector for `config`: `AlwaysLeader` for SQLite.

    Errors are those of `open_registry` (exit 2): no DSN or a malformed one names
    `registry.dsn`, a build without psycopg names the extra.
    """
    from discovery.registry.leader import leadership_for

    try:
        return leadership_for(config, os.environ)
    except ConfigError as exc:
        raise ConfigError(f"{config_path}: {exc}") from None
    except RegistryError as exc:
        raise ConfigError(
            f"{config_path}: registry.dsn (or ${config.registry.dsn_env}): {exc}"
        ) from None
    except ImportError as exc:
        raise UsageError(
            "leader election needs the 'postgres' extra: "
            f"pip install 'rdsproxy-discovery[postgres]' ({exc})"
        ) from None


def postgres_registry(
    dsn: str, *, migrate: bool = True, fence: Fence | None = None
) -> PostgresRegistry:
    """A `PostgresRegistry`, or a UsageError naming the extra when psycopg is not installed."""
    try:
        from discovery.registry.postgres import PostgresRegistry
    except ImportError as exc:
        raise UsageError(
            "the postgres registry needs the 'postgres' extra: "
            f"pip install 'rdsproxy-discovery[postgres]' ({exc})"
        ) from None
    return PostgresRegistry(dsn, migrate=migrate, fence=fence)


def exit_code_for(report: CycleReport) -> int:
    if report.failed_scopes:
        return EXIT_SCOPES_FAILED
    if report.plan.guard_tripped:
        return EXIT_DELETES_WITHHELD
    return EXIT_OK


class Progress:
    """A one-line scope counter on stderr, only when stderr is a terminal."""

    def __init__(self, total: int, stream: TextIO) -> None:
        self.total = total
        self.done = 0
        self.failed = 0
        self.stream = stream
        self.enabled = stream.isatty() and total > 1

    def __call__(self, result: ScopeResult) -> None:
        self.done += 1
        self.failed += 0 if result.ok else 1
        if self.enabled:
            failed = f", {self.failed} failed" if self.failed else ""
            self.stream.write(f"\rscanning: {self.done}/{self.total} scopes{failed}")
            if self.done == self.total:
                self.stream.write("\n")
            self.stream.flush()


async def scan(
    config: Config, config_path: Path, *, dry_run: bool, force: bool, stderr: TextIO
) -> CycleReport:
    registry = open_registry(config, config_path)
    progress = Progress(len(expand_scopes(config)), stderr)
    try:
        async with AWSSource(settings=AWSSettings.from_config(config.aws_client)) as source:
            return await run_cycle(
                config=config,
                source=source,
                registry=registry,
                dry_run=dry_run,
                force=force,
                on_scope=progress,
            )
    finally:
        await registry.close()


def render(report: CycleReport, output: str) -> str:
    if output == "json":
        return render_json(report) + "\n"
    if output == "yaml":
        return render_yaml(report)
    return render_text(report)


def cmd_scan(args: argparse.Namespace) -> int:
    config_path = Path(args.config)
    config = load_config(config_path)
    report = asyncio.run(
        scan(config, config_path, dry_run=args.dry_run, force=args.force, stderr=sys.stderr)
    )
    sys.stdout.write(render(report, args.output))
    for result in report.scopes:
        if not result.ok:
            log.warning(
                "scope %s/%s failed: %s",
                result.account_id or "?",
                result.scope.region,
                result.error,
            )
    return exit_code_for(report)


def cmd_validate(args: argparse.Namespace) -> int:
    from discovery.core.config import read_config

    loaded = read_config(args.config)
    config = loaded.config
    for warning in loaded.warnings:
        print(f"discovery: warning: {args.config}: {warning}", file=sys.stderr)
    scopes = expand_scopes(config)
    kind = " (teleport.yaml: discovery_service used)" if loaded.teleport else ""
    print(
        f"{args.config}: ok{kind} — discovery group {config.discovery_group!r}, "
        f"{len(config.aws)} matcher(s), {len(scopes)} scope(s), "
        f"registry {config.registry.backend}"
    )
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    from discovery.core.config import parse_listen
    from discovery.daemon.process import run_daemon
    from discovery.output.logs import Redactor, configure_logging

    config_path = Path(args.config)
    config = load_config(config_path)
    listen = args.listen or config.server.listen
    try:
        parse_listen(listen)
    except ValueError as exc:
        raise UsageError(f"--listen: {exc}") from None
    redactor = configure_logging(
        level=args.log_level,
        log_format=args.log_format,
        stream=sys.stderr,
        redactor=Redactor(m.external_id for m in config.aws),
    )
    # run_daemon opens the first backend before it starts anything: a backend this build
    # lacks, or no DSN, raises out of it and exits 2.
    return asyncio.run(
        run_daemon(
            config=config,
            config_path=config_path,
            listen=listen,
            listen_fixed=args.listen is not None,
            redactor=redactor,
            open_backend=open_backend,
            open_source=open_source,
        )
    )


def open_backend(config: Config, config_path: Path, /) -> tuple[Registry, Leadership]:
    """The daemon's registry and its elector; the registry's applies are fenced on the elector:
    they commit only while this replica holds the leader lock."""
    leadership = open_leadership(config, config_path)
    return open_registry(config, config_path, leadership=leadership), leadership


def open_source(
    config: Config,
    /,
    *,
    on_call: Callable[[str, str, int], None],
    on_throttle: Callable[[str], None],
) -> AWSSource:
    """The daemon's one AWS source, with the config's aws_client settings."""
    return AWSSource(
        settings=AWSSettings.from_config(config.aws_client),
        on_call=on_call,
        on_throttle=on_throttle,
    )


def cmd_print_iam(args: argparse.Namespace) -> int:
    import json

    from discovery.ops.iam import iam_plan, render_text

    plan = iam_plan(load_config(args.config), principal=args.principal)
    if args.output == "json":
        print(json.dumps(plan.to_dict(), indent=2))
    else:
        sys.stdout.write(render_text(plan))
    return EXIT_OK


def cmd_iam_bootstrap(args: argparse.Namespace) -> int:
    import json
    import os

    import boto3

    from discovery.ops.iam import IAMError, attach_policy, attachment_for, iam_plan

    plan = iam_plan(load_config(args.config))
    try:
        attachment = attachment_for(plan, args.attach_to_role, policy_name=args.policy_name)
    except IAMError as exc:
        raise UsageError(f"--attach-to-role: {exc}") from None
    what = (
        "the permissions policy of an assumed role"
        if attachment.kind == "assumed-role"
        else "the identity policy of the service's own role"
    )
    if args.dry_run:
        print(
            f"would put inline policy {attachment.policy_name!r} ({what}) on {attachment.role_arn}:"
        )
        print(json.dumps(attachment.document, indent=2))
        return EXIT_OK
    try:
        # IAM is global; STS needs a region even for GetCallerIdentity.
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        sts = boto3.client("sts", region_name=region or "us-east-1")
        attach_policy(attachment, iam=boto3.client("iam"), sts=sts)
    except IAMError as exc:
        print(f"discovery: iam bootstrap: {exc}", file=sys.stderr)
        return EXIT_RUNTIME
    print(f"put inline policy {attachment.policy_name!r} ({what}) on {attachment.role_arn}")
    if attachment.kind == "identity" and plan.roles:
        print(
            "the assumed roles also need their permissions and trust policies: "
            f"discovery print-iam --config {args.config} --principal {attachment.role_arn}"
        )
    return EXIT_OK


def cmd_doctor(args: argparse.Namespace) -> int:
    from discovery.ops.diagnosis import Check, failed, render_check, summary
    from discovery.ops.doctor import DoctorSettings, run_doctor

    config = load_config(args.config)
    if args.tcp_timeout <= 0:
        raise UsageError("--tcp-timeout must be greater than zero")
    settings = DoctorSettings(
        tcp=not args.no_tcp, tcp_timeout=args.tcp_timeout, config_hint=str(args.config)
    )

    def show(check: Check) -> None:
        print(render_check(check), flush=True)

    checks = asyncio.run(run_doctor(config, settings=settings, on_check=show))
    print(summary(checks))
    return EXIT_RUNTIME if failed(checks) else EXIT_OK


async def _list_registry(config: Config, config_path: Path) -> list[dict[str, object]]:
    registry = open_registry(config, config_path)
    try:
        stored = await registry.list_resources()
    finally:
        await registry.close()
    return [s.resource.to_dict() for s in stored]


def cmd_registry(args: argparse.Namespace) -> int:
    from discovery.core.model import Resource, is_owned
    from discovery.registry.export import export_yaml

    config_path = Path(args.config)
    config = load_config(config_path)
    docs = asyncio.run(_list_registry(config, config_path))
    resources = [Resource.from_dict(d) for d in docs]
    if args.registry_command == "export":
        if not args.all:
            resources = [r for r in resources if is_owned(r, config.discovery_group)]
        sys.stdout.write(export_yaml(resources))
        return EXIT_OK
    rows = [
        [
            r.name,
            "yes" if is_owned(r, config.discovery_group) else "no",
            r.protocol,
            r.uri,
            r.aws.account_id,
            r.aws.region,
        ]
        for r in resources
    ]
    from discovery.output.report import format_table

    print("\n".join(format_table(rows, ["NAME", "OWNED", "PROTOCOL", "URI", "ACCOUNT", "REGION"])))
    print(f"{len(resources)} resource(s)")
    return EXIT_OK


async def _migrate_registry(config: Config, config_path: Path) -> str:
    registry = open_registry(config, config_path)
    try:
        if config.registry.backend == "sqlite":
            from discovery.registry.sqlite import SCHEMA_VERSION

            await registry.list_resources()  # SQLite migrates its file on first use
            return f"registry {config.registry.path}: schema is at version {SCHEMA_VERSION}"
        from discovery.registry.postgres import PostgresRegistry

        assert isinstance(registry, PostgresRegistry)
        done = await registry.migrate()
        if done.before == done.after:
            return (
                f"registry {registry.where}: schema {done.schema!r} is already at version "
                f"{done.after}; nothing to do"
            )
        return (
            f"registry {registry.where}: migrated schema {done.schema!r} from version "
            f"{done.before} to {done.after}"
        )
    finally:
        await registry.close()


def cmd_registry_migrate(args: argparse.Namespace) -> int:
    config_path = Path(args.config)
    print(asyncio.run(_migrate_registry(load_config(config_path), config_path)))
    return EXIT_OK


def registry_from_spec(spec: str, *, flag: str, source: bool) -> tuple[Registry, str]:
    """`sqlite:PATH`, `postgres:DSN` (or a `postgresql://` URI) → a registry and its name.

    `postgres:` with nothing after it takes the DSN from $DISCOVERY_REGISTRY_DSN, which keeps
    the password out of the shell history and the process list. A source is never created
    or migrated: copying from a path or schema that holds no registry is an error.
    """
    from discovery.core.config import DEFAULT_DSN_ENV

    if spec.startswith(("postgresql://", "postgres://")):
        kind, rest = "postgres", spec
    elif ":" in spec:
        kind, rest = spec.split(":", 1)
    else:
        kind, rest = "", spec
    if kind == "sqlite":
        from discovery.registry.sqlite import SQLiteRegistry

        if not rest:
            raise UsageError(f"{flag}: sqlite: needs a path, e.g. sqlite:discovery.db")
        path = Path(rest)
        if source and not path.is_file():
            raise UsageError(f"{flag}: {path} does not exist (or is not a file)")
        return SQLiteRegistry(path), f"sqlite {path}"
    if kind in ("postgres", "postgresql"):
        dsn = rest.strip() or os.environ.get(DEFAULT_DSN_ENV, "").strip()
        if not dsn:
            raise UsageError(
                f"{flag}: postgres: needs a DSN (postgres:'host=... dbname=...') or, with "
                f"nothing after the colon, the DSN in ${DEFAULT_DSN_ENV}"
            )
        try:
            registry = postgres_registry(dsn, migrate=not source)
        except RegistryError as exc:
            raise UsageError(f"{flag}: {exc}") from None
        return registry, registry.where
    raise UsageError(f"{flag}: {spec!r}: write sqlite:PATH or postgres:DSN")


async def _copy_registry(source_spec: str, target_spec: str, *, replace: bool) -> str:
    from discovery.registry.copy import copy_registry

    source, source_name = registry_from_spec(source_spec, flag="--from", source=True)
    try:
        target, target_name = registry_from_spec(target_spec, flag="--to", source=False)
        try:
            result = await copy_registry(source, target, replace=replace, target_name=target_name)
        except RegistryConflict as exc:
            raise RegistryError(
                f"{target_name} changed while the copy ran ({exc}); nothing was copied, "
                "stop the writers of the target and copy again"
            ) from exc
        finally:
            await target.close()
    finally:
        await source.close()
    return (
        f"copied {result.copied} resource(s) from {source_name} to {target_name} "
        f"(created {result.created}, updated {result.updated}, deleted {result.deleted}, "
        f"unchanged {result.unchanged})"
    )


def cmd_registry_copy(args: argparse.Namespace) -> int:
    print(asyncio.run(_copy_registry(args.source, args.target, replace=args.replace)))
    return EXIT_OK


def cmd_emulator(args: argparse.Namespace) -> int:
    try:
        from discovery.emulator import main as emulator_main
    except ImportError as exc:
        raise UsageError(
            "the emulator needs the 'emulator' extra: pip install 'rdsproxy-discovery[emulator]'"
            f" ({exc})"
        ) from None
    return int(emulator_main(args.emulator_args))


def cmd_demo(args: argparse.Namespace) -> int:
    from discovery.demo.story import run_demo

    return run_demo(workdir=args.workdir, stdout=sys.stdout)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="discovery",
        description="Keep a registry of Teleport db resources in step with AWS RDS Proxies.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--log-level",
        default=None,
        choices=["debug", "info", "warning", "error"],
        help="default: info for run, warning for the other commands",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def with_config(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--config", "-c", default=DEFAULT_CONFIG, help=f"config file (default {DEFAULT_CONFIG})"
        )

    p = sub.add_parser("scan", help="scan AWS once and apply (or print) the plan")
    with_config(p)
    p.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    p.add_argument("--output", "-o", choices=["text", "json", "yaml"], default="text")
    p.add_argument("--force", action="store_true", help="override the delete guard once")
    p.set_defaults(func=cmd_scan)

    p = sub.add_parser(
        "run", help="the daemon: a cycle every poll_interval; /metrics /healthz /readyz /status"
    )
    with_config(p)
    p.add_argument(
        "--listen",
        metavar="HOST:PORT",
        default=None,
        help="HTTP address for /metrics /healthz /readyz /status (default: server.listen)",
    )
    p.add_argument("--log-format", choices=["text", "json"], default="text")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("validate", help="check a config file and exit")
    with_config(p)
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("registry", help="read, migrate or copy the registry")
    reg = p.add_subparsers(dest="registry_command", required=True, metavar="SUBCOMMAND")
    q = reg.add_parser("list", help="a table of every resource in the registry")
    with_config(q)
    q.set_defaults(func=cmd_registry)
    q = reg.add_parser("export", help="owned resources as multi-document YAML for tctl create -f")
    with_config(q)
    q.add_argument("--all", action="store_true", help="every resource, not only owned ones")
    q.set_defaults(func=cmd_registry)
    q = reg.add_parser("migrate", help="create or upgrade the registry's schema now")
    with_config(q)
    q.set_defaults(func=cmd_registry_migrate)
    q = reg.add_parser(
        "copy",
        help="copy every resource into another (empty) registry in one transaction",
        description="Copy every resource from one registry into another, in one transaction. "
        "SPEC is sqlite:PATH or postgres:DSN (postgres: alone takes the DSN from "
        "$DISCOVERY_REGISTRY_DSN).",
    )
    q.add_argument("--from", dest="source", required=True, metavar="SPEC", help="source registry")
    q.add_argument("--to", dest="target", required=True, metavar="SPEC", help="target registry")
    q.add_argument(
        "--replace",
        action="store_true",
        help="make a non-empty target an exact copy of the source (deletes what it lacks)",
    )
    q.set_defaults(func=cmd_registry_copy)

    from discovery.ops.iam import DEFAULT_POLICY_NAME, PRINCIPAL_PLACEHOLDER

    p = sub.add_parser("print-iam", help="print the least-privilege IAM policies for the config")
    with_config(p)
    p.add_argument(
        "--principal",
        default=PRINCIPAL_PLACEHOLDER,
        help="ARN the service runs as, named in the trust policies (default: a placeholder)",
    )
    p.add_argument("--output", "-o", choices=["text", "json"], default="text")
    p.set_defaults(func=cmd_print_iam)

    p = sub.add_parser("iam", help="set up IAM for the config")
    iam = p.add_subparsers(dest="iam_command", required=True, metavar="SUBCOMMAND")
    q = iam.add_parser(
        "bootstrap",
        help="put the needed policy on a role (the service's own role, or an assumed role)",
    )
    with_config(q)
    q.add_argument("--attach-to-role", required=True, metavar="ARN", help="IAM role ARN")
    q.add_argument("--policy-name", default=DEFAULT_POLICY_NAME, help="inline policy name")
    q.add_argument("--dry-run", action="store_true", help="print the policy, change nothing")
    q.set_defaults(func=cmd_iam_bootstrap)

    p = sub.add_parser("doctor", help="check credentials, roles, permissions and connectivity")
    with_config(p)
    p.add_argument("--tcp-timeout", type=float, default=3.0, metavar="SECONDS", help="per endpoint")
    p.add_argument(
        "--no-tcp",
        action="store_true",
        help="skip the TCP check (e.g. when run outside the proxies' VPCs)",
    )
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser(
        "emulator", help="run the AWS emulator (needs the 'emulator' extra)", add_help=False
    )
    p.add_argument("emulator_args", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_emulator)

    p = sub.add_parser("demo", help="offline demo against the bundled emulator and sample fleet")
    p.add_argument("--workdir", default=None, help="keep the demo's files here (default: temp)")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["emulator"]:
        # argparse's REMAINDER drops options that start with "--" after a subcommand, so the
        # emulator's own command line is handed over untouched.
        try:
            return cmd_emulator(argparse.Namespace(emulator_args=argv[1:]))
        except UsageError as exc:
            print(f"discovery: {exc}", file=sys.stderr)
            return EXIT_CONFIG
    parser = build_parser()
    args = parser.parse_args(argv)
    # A daemon's log is its activity record (one line per cycle); a one-shot command prints
    # its result on stdout and keeps stderr for problems.
    args.log_level = args.log_level or ("info" if args.command == "run" else "warning")
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("aiobotocore").setLevel(logging.WARNING)
    logging.getLogger("botocore").setLevel(logging.WARNING)
    # A failed refresh of assumed-role credentials is logged there with a full traceback, on
    # every call of every cycle; the scope's own failure line already names the error and fix.
    logging.getLogger("aiobotocore.credentials").setLevel(logging.ERROR)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"discovery: config error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except UsageError as exc:
        print(f"discovery: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except RegistryConflict as exc:
        print(
            f"discovery: the registry changed while this scan ran ({exc}); nothing was written, "
            "run the scan again",
            file=sys.stderr,
        )
        return EXIT_RUNTIME
    except RegistryError as exc:
        print(f"discovery: registry error: {exc}", file=sys.stderr)
        return EXIT_RUNTIME
    except KeyboardInterrupt:
        print("discovery: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
