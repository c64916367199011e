"""`discovery print-iam | iam bootstrap | doctor | emulator | demo`: the operator's helpers."""

from __future__ import annotations

import argparse
import asyncio
import sys

from discovery.cli.common import EXIT_OK, EXIT_RUNTIME, UsageError
from discovery.wiring import load_config

__all__ = ["cmd_demo", "cmd_doctor", "cmd_emulator", "cmd_iam_bootstrap", "cmd_print_iam"]


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
