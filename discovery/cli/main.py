"""The command line: `discovery run | scan | validate | registry list|export|history|migrate|copy
| print-iam | iam bootstrap | doctor | emulator | demo` — the parser and the dispatch.

The commands are in `scan`, `run`, `registry` and `ops` next to this module; what they are
built from comes from `discovery.wiring`. Exit codes are in `discovery.cli.common` (DESIGN §7).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from discovery import __version__
from discovery.cli.common import DEFAULT_CONFIG, EXIT_CONFIG, EXIT_RUNTIME, UsageError
from discovery.cli.ops import cmd_demo, cmd_doctor, cmd_emulator, cmd_iam_bootstrap, cmd_print_iam
from discovery.cli.registry import (
    cmd_registry,
    cmd_registry_adopt,
    cmd_registry_copy,
    cmd_registry_history,
    cmd_registry_migrate,
)
from discovery.cli.run import cmd_run
from discovery.cli.runtime import tune_gc
from discovery.cli.scan import cmd_scan, cmd_validate
from discovery.core.config import ConfigError
from discovery.ops.iam import DEFAULT_POLICY_NAME, PRINCIPAL_PLACEHOLDER
from discovery.ops.iam_dbservice import DB_SERVICE_PLACEHOLDER, DB_SERVICE_POLICY_NAME
from discovery.output.logs import configure_logging
from discovery.registry.base import PartialApply, RegistryConflict, RegistryError
from discovery.registry.open import BeforeCommit, RegistrySpecError

__all__ = ["EXIT_CONFIG", "build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="discovery",
        description="Keep a registry of Teleport db resources in step with AWS RDS Proxies.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _add_log_level(parser, default=None)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def with_config(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--config", "-c", default=DEFAULT_CONFIG, help=f"config file (default {DEFAULT_CONFIG})"
        )

    p = sub.add_parser("scan", help="scan AWS once and apply (or print) the plan")
    with_config(p)
    p.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    p.add_argument("--output", "-o", choices=["text", "json", "yaml"], default="text")
    p.add_argument(
        "--force",
        action="store_true",
        help="apply once what is withheld for review (delete guard, empty scope, config change)",
    )
    p.add_argument(
        "--accept-config-change",
        action="store_true",
        help="delete once the resources of account-regions the config no longer covers",
    )
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
    p.add_argument(
        "--once", action="store_true", help="one cycle in the foreground; exit codes as scan"
    )
    p.add_argument(
        "--dry-run", action="store_true", help="plan and report every cycle, never apply"
    )
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("validate", help="check a config file and exit")
    with_config(p)
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("registry", help="read, migrate or copy the registry")
    reg = p.add_subparsers(dest="registry_command", required=True, metavar="SUBCOMMAND")
    q = reg.add_parser("list", help="every resource in the registry: a table, JSON or YAML")
    with_config(q)
    q.add_argument("--output", "-o", choices=["text", "json", "yaml"], default="text")
    q.set_defaults(func=cmd_registry)
    q = reg.add_parser(
        "export",
        help="owned resources as documents for tctl create -f (YAML, or a stream of JSON objects)",
    )
    with_config(q)
    q.add_argument("--all", action="store_true", help="every resource, not only owned ones")
    q.add_argument(
        "--format",
        choices=["yaml", "json"],
        default="yaml",
        help="yaml: '---'-separated documents (default); json: one object after another, "
        "never an array (tctl create reads a JSON stream, not a list)",
    )
    q.set_defaults(func=cmd_registry)
    q = reg.add_parser("history", help="the most recent applies (the apply journal), newest first")
    with_config(q)
    q.add_argument("--limit", "-n", type=_positive_int, default=20, metavar="N", help="default 20")
    q.add_argument("--output", "-o", choices=["text", "json"], default="text")
    q.set_defaults(func=cmd_registry_history)
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
    q = reg.add_parser(
        "adopt",
        help="move the resources of another discovery group (and of none) into this one",
        description="Relabel, in one transaction, the RDS Proxy resources of discovery group "
        "OLD, and cloud-origin ones that carry no group, as owned by this config's "
        "discovery_group (after renaming discovery_group; nothing else adopts them).",
    )
    with_config(q)
    q.add_argument("--from-group", required=True, metavar="OLD", help="the group they have now")
    q.add_argument("--dry-run", action="store_true", help="list what would move, change nothing")
    q.set_defaults(func=cmd_registry_adopt)

    p = sub.add_parser("print-iam", help="print the least-privilege IAM policies for the config")
    with_config(p)
    p.add_argument(
        "--principal",
        default=PRINCIPAL_PLACEHOLDER,
        help="ARN the service runs as, named in the trust policies (default: a placeholder)",
    )
    p.add_argument(
        "--db-service-principal",
        default=DB_SERVICE_PLACEHOLDER,
        metavar="ARN",
        help="ARN the Teleport Database Service runs as, trusted by the roles registered as "
        "spec.aws.assume_role_arn (default: a placeholder)",
    )
    p.add_argument(
        "--from-registry",
        action="store_true",
        help="grant rds-db:connect on exactly the proxies registered for this discovery group "
        "(read from the registry) instead of dbuser:*/* per region and account",
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
    q.add_argument(
        "--policy-name",
        default=None,
        help=f"inline policy name (default {DEFAULT_POLICY_NAME}, or "
        f"{DB_SERVICE_POLICY_NAME} with --database-service)",
    )
    q.add_argument(
        "--database-service",
        action="store_true",
        help="the role is the Teleport Database Service's own: put its policy (sts:AssumeRole on "
        "the registered connection roles, rds-db:connect where none is registered)",
    )
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
    p.add_argument(
        "--workdir",
        default=None,
        help="keep the demo's files here (default: a temporary folder, removed)",
    )
    p.add_argument(
        "--port", type=int, default=0, help="the bundled emulator's port (default: any free one)"
    )
    p.add_argument(
        "--teleport",
        action="store_true",
        help="write into a Teleport cluster played by the bundled stand-in tctl, not SQLite",
    )
    p.set_defaults(func=cmd_demo)
    _log_level_after_every_command(parser)
    return parser


LOG_LEVELS = ("debug", "info", "warning", "error")


def _add_log_level(parser: argparse.ArgumentParser, *, default: object) -> None:
    parser.add_argument(
        "--log-level",
        default=default,
        choices=LOG_LEVELS,
        help="default: info for run, warning for the other commands",
    )


def _log_level_after_every_command(parser: argparse.ArgumentParser) -> None:
    """`--log-level` after any (sub)command too, as before it: `discovery scan --log-level
    debug`. SUPPRESS as the subcommand's default, so it never overwrites the one given first."""
    seen: set[int] = set()
    for action in parser._actions:  # argparse has no public walk over its subparsers
        if not isinstance(action, argparse._SubParsersAction):
            continue
        for name, child in action.choices.items():
            if id(child) in seen or name == "emulator":  # the emulator parses its own argv
                continue
            seen.add(id(child))
            _add_log_level(child, default=argparse.SUPPRESS)
            _log_level_after_every_command(child)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return value


def main(argv: Sequence[str] | None = None, *, before_commit: BeforeCommit | None = None) -> int:
    """Run one command; its exit code.

    `before_commit` is a seam for the fault tests only (`tests/faults/paused.py`): it runs inside
    every registry apply's transaction just before the commit. The `discovery` script passes none.
    """
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
    args.before_commit = before_commit
    # A daemon's log is its activity record (one line per cycle); a one-shot command prints
    # its result on stdout and keeps stderr for problems.
    args.log_level = args.log_level or ("info" if args.command == "run" else "warning")
    # Every command logs in the daemon's format (`run` sets it up again with --log-format and
    # the config's external ids to redact). botocore stays at WARNING even with debug: its
    # debug lines are every request's headers and body.
    configure_logging(level=args.log_level, stream=sys.stderr)
    # A failed refresh of assumed-role credentials is logged there with a full traceback, on
    # every call of every cycle; the scope's own failure line already names the error and fix.
    logging.getLogger("aiobotocore.credentials").setLevel(logging.ERROR)
    tune_gc()  # a quarter of a large cycle's CPU went to the garbage collector (runtime.py)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"discovery: config error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except (UsageError, RegistrySpecError) as exc:
        print(f"discovery: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except RegistryConflict as exc:
        print(
            f"discovery: the registry changed while this scan ran ({exc}); nothing was written, "
            "run the scan again",
            file=sys.stderr,
        )
        return EXIT_RUNTIME
    except PartialApply as exc:
        print(f"discovery: registry apply incomplete: {exc}", file=sys.stderr)
        return EXIT_RUNTIME
    except RegistryError as exc:
        print(f"discovery: registry error: {exc}", file=sys.stderr)
        return EXIT_RUNTIME
    except KeyboardInterrupt:
        print("discovery: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
