"""`discovery print-iam | iam bootstrap | doctor | emulator | demo`: the operator's helpers."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from discovery.cli.common import EXIT_OK, EXIT_RUNTIME, UsageError
from discovery.wiring import load_config

__all__ = ["cmd_demo", "cmd_doctor", "cmd_emulator", "cmd_iam_bootstrap", "cmd_print_iam"]


def cmd_print_iam(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from discovery.core.model import Resource, is_owned
    from discovery.ops.iam import iam_plan, principal_problem, render_text
    from discovery.wiring import open_registry

    problem = principal_problem(args.principal)
    if problem:
        raise UsageError(f"--principal: {problem}")
    config = load_config(args.config)
    registered: list[Resource] | None = None
    if args.from_registry:

        async def owned() -> list[Resource]:
            registry = open_registry(config, Path(args.config), read_only=True)
            try:
                stored = await registry.list_resources()
            finally:
                await registry.close()
            return [s.resource for s in stored if is_owned(s.resource, config.discovery_group)]

        registered = asyncio.run(owned())
    plan = iam_plan(
        config,
        principal=args.principal,
        db_service_principal=args.db_service_principal,
        registered=registered,
    )
    if args.output == "json":
        print(json.dumps(plan.to_dict(), indent=2))
    else:
        sys.stdout.write(render_text(plan))
    return EXIT_OK


def cmd_iam_bootstrap(args: argparse.Namespace) -> int:
    import json
    import os

    import boto3

    from discovery.ops.iam import DEFAULT_POLICY_NAME, IAMError, iam_plan
    from discovery.ops.iam_bootstrap import attach_policy, attachment_for
    from discovery.ops.iam_dbservice import DB_SERVICE_POLICY_NAME

    plan = iam_plan(load_config(args.config))
    default_name = DB_SERVICE_POLICY_NAME if args.database_service else DEFAULT_POLICY_NAME
    try:
        attachment = attachment_for(
            plan,
            args.attach_to_role,
            policy_name=args.policy_name or default_name,
            database_service=args.database_service,
        )
    except IAMError as exc:
        raise UsageError(f"--attach-to-role: {exc}") from None
    what = {
        "assumed-role": "the permissions policy of an assumed role",
        "database-service": "the Teleport Database Service's policy",
    }.get(attachment.kind, "the identity policy of the service's own role")
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
        tcp=not args.no_tcp,
        tcp_timeout=args.tcp_timeout,
        config_hint=str(args.config),
        endpoint_url=os.environ.get("AWS_ENDPOINT_URL", "").strip(),
    )

    def show(check: Check) -> None:
        print(render_check(check), flush=True)

    checks = asyncio.run(run_doctor(config, settings=settings, on_check=show))
    print(summary(checks))
    return EXIT_RUNTIME if failed(checks) else EXIT_OK


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

    return run_demo(workdir=args.workdir, stdout=sys.stdout, teleport=args.teleport, port=args.port)
