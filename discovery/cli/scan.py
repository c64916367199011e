"""`discovery scan` (one cycle, its report on stdout) and `discovery validate`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from discovery import wiring
from discovery.cli.common import (
    EXIT_DELETES_WITHHELD,
    EXIT_OK,
    EXIT_RUNTIME,
    EXIT_SCOPES_FAILED,
)
from discovery.core.outage import global_failure
from discovery.core.plan import (
    REASON_CONFIG_CHANGE,
    REASON_EMPTY_SCOPE,
    REASON_NAME_COLLISION,
    REASON_UNCONFIRMED,
)
from discovery.core.scopes import expand_scopes, needs_listings
from discovery.core.summary import CycleReport
from discovery.output.blocks import terminal_console
from discovery.output.progress import Progress
from discovery.output.report import render_json, render_rich, render_text, render_yaml
from discovery.registry.sqlite_leader import RegistryLocked
from discovery.wiring import load_config, read_config

__all__ = ["cmd_scan", "cmd_validate", "exit_code_for", "render"]

log = logging.getLogger("discovery")


def exit_code_for(report: CycleReport) -> int:
    """1 if every scope failed for one reason of this process's setup (no credentials, no such
    AWS_PROFILE, AWS unreachable: `discovery.core.outage`); 3 if a scope failed or a confirming
    read failed; else 4 if a change waits for review (delete guard, name collision, empty scope,
    config change); else 0."""
    if global_failure(report.scopes):
        return EXIT_RUNTIME
    if report.failed_scopes or report.unconfirmed:
        return EXIT_SCOPES_FAILED
    if report.plan.needs_review:
        return EXIT_DELETES_WITHHELD
    return EXIT_OK


def render(report: CycleReport, output: str) -> str:
    if output == "json":
        return render_json(report) + "\n"
    if output == "yaml":
        return render_yaml(report)
    return render_text(report)


def cmd_scan(args: argparse.Namespace) -> int:
    config_path = Path(args.config)
    config = load_config(config_path)
    scopes = expand_scopes(config)
    # Organization and ["*"] matchers expand at scan time, from AWS's listings: the total is
    # not known in advance, so the counter shows "N/?" for them.
    open_ended = needs_listings(config)
    progress = Progress(() if open_ended else scopes, sys.stderr, open_ended=open_ended)
    try:
        with progress:
            report = asyncio.run(
                wiring.scan(
                    config,
                    config_path,
                    dry_run=args.dry_run,
                    force=args.force,
                    accept_config_change=args.accept_config_change,
                    scopes=scopes,
                    on_scope=progress,
                    before_commit=args.before_commit,
                )
            )
    except RegistryLocked as exc:  # another process writes this file: one line, exit 1
        print(f"discovery: {exc}", file=sys.stderr)
        return EXIT_RUNTIME
    outage = global_failure(report.scopes)
    if outage:  # one line, not a row per scope saying the same thing
        print(f"discovery: {outage}", file=sys.stderr)
        return EXIT_RUNTIME
    if args.output == "text" and sys.stdout.isatty():
        # A person reads it: tables fit the terminal, with colour (none with NO_COLOR).
        render_rich(report, terminal_console())
    else:
        sys.stdout.write(render(report, args.output))
    for w in report.plan.withheld:
        if w.code in (
            REASON_NAME_COLLISION,
            REASON_EMPTY_SCOPE,
            REASON_CONFIG_CHANGE,
            REASON_UNCONFIRMED,
        ):
            log.warning("%s %s withheld [%s]: %s", w.action, w.name, w.code, w.reason)
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
    loaded = read_config(args.config)
    config = loaded.config
    for warning in loaded.warnings:
        print(f"discovery: warning: {args.config}: {warning}", file=sys.stderr)
    scopes = expand_scopes(config)
    kind = " (teleport.yaml: discovery_service used)" if loaded.teleport else ""
    listed = sum(1 for m in config.aws if m.needs_listing)
    more = f" (+ {listed} matcher(s) whose accounts or regions AWS lists at scan time)"
    print(
        f"{args.config}: ok{kind} — discovery group {config.discovery_group!r}, "
        f"{len(config.aws)} matcher(s), {len(scopes)} scope(s){more if listed else ''}, "
        f"registry {config.registry.backend}"
    )
    return EXIT_OK
