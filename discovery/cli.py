"""The command line: `discovery scan | validate | registry list|export | emulator | demo`.

Exit codes (DESIGN §7): 0 done, 1 runtime error, 2 bad config or usage, 3 done but some scopes
failed (left frozen), 4 done but deletes withheld by the delete guard. When both 3 and 4 apply,
3 wins: a failed scope is the more urgent thing to look at.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from discovery import __version__
from discovery.aws import AWSSource
from discovery.config import Config, ConfigError, load_config
from discovery.cycle import CycleReport, expand_scopes, run_cycle
from discovery.model import ScopeResult
from discovery.registry.base import Registry, RegistryConflict, RegistryError
from discovery.report import render_json, render_text, render_yaml

EXIT_OK = 0
EXIT_RUNTIME = 1
EXIT_CONFIG = 2
EXIT_SCOPES_FAILED = 3
EXIT_DELETES_WITHHELD = 4
DEFAULT_CONFIG = "discovery.yaml"

log = logging.getLogger("discovery")


class UsageError(Exception):
    """Bad usage that argparse cannot see (exit 2)."""


def open_registry(config: Config, config_path: Path) -> Registry:
    if config.registry.backend == "sqlite":
        from discovery.registry.sqlite import SQLiteRegistry

        path = Path(config.registry.path)
        if not path.is_absolute():
            path = config_path.parent / path
        return SQLiteRegistry(path)
    raise UsageError(
        f"{config_path}: registry.backend: {config.registry.backend!r} is not available in this "
        "version; use backend: sqlite"
    )


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
        async with AWSSource() as source:
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
    config = load_config(args.config)
    scopes = expand_scopes(config)
    print(
        f"{args.config}: ok — discovery group {config.discovery_group!r}, "
        f"{len(config.aws)} matcher(s), {len(scopes)} scope(s), "
        f"registry {config.registry.backend}"
    )
    return EXIT_OK


async def _list_registry(config: Config, config_path: Path) -> list[dict[str, object]]:
    registry = open_registry(config, config_path)
    try:
        stored = await registry.list_resources()
    finally:
        await registry.close()
    return [s.resource.to_dict() for s in stored]


def cmd_registry(args: argparse.Namespace) -> int:
    from discovery.model import Resource, is_owned
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
    from discovery.report import format_table

    print("\n".join(format_table(rows, ["NAME", "OWNED", "PROTOCOL", "URI", "ACCOUNT", "REGION"])))
    print(f"{len(resources)} resource(s)")
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
        "--log-level", default="warning", choices=["debug", "info", "warning", "error"]
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

    p = sub.add_parser("validate", help="check a config file and exit")
    with_config(p)
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("registry", help="read the registry")
    reg = p.add_subparsers(dest="registry_command", required=True, metavar="SUBCOMMAND")
    q = reg.add_parser("list", help="a table of every resource in the registry")
    with_config(q)
    q.set_defaults(func=cmd_registry)
    q = reg.add_parser("export", help="owned resources as multi-document YAML for tctl create -f")
    with_config(q)
    q.add_argument("--all", action="store_true", help="every resource, not only owned ones")
    q.set_defaults(func=cmd_registry)

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
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("aiobotocore").setLevel(logging.WARNING)
    logging.getLogger("botocore").setLevel(logging.WARNING)
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
