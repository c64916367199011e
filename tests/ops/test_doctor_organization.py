"""`discovery doctor` for an organization matcher: the listing answers (how many accounts),
or fails with the code and the fix, against the emulator's Organizations API."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from discovery.core.config import config_from_mapping
from discovery.emulator import EmulatorThread
from discovery.ops.diagnosis import Check, Status
from discovery.ops.doctor import DoctorSettings, run_doctor

FLEET: dict[str, Any] = {
    "caller_account": "000000000000",
    "organization": {"id": "o-exampleorg01", "root_id": "r-root"},
    "accounts": [
        {"id": "111111111111", "ou": "r-root", "roles": [{"name": "discovery"}]},
        {"id": "222222222222", "ou": "r-root", "status": "SUSPENDED"},
    ],
}


@pytest.fixture
def emulator(aws_env: pytest.MonkeyPatch) -> Iterator[EmulatorThread]:
    with EmulatorThread(FLEET) as emu:
        aws_env.setenv("AWS_ENDPOINT_URL", emu.url)
        yield emu


def organization_checks(org_id: str) -> list[Check]:
    config = config_from_mapping(
        {
            "discovery_group": "g",
            "aws": [
                {
                    "types": ["rdsproxy"],
                    "regions": ["*"],
                    "organization": {"id": org_id},
                    "assume_role_name": "discovery",
                }
            ],
        }
    )
    checks = asyncio.run(run_doctor(config, settings=DoctorSettings(tcp=False, max_attempts=1)))
    return [c for c in checks if c.check == "organization"]


def test_the_listing_answers(emulator: EmulatorThread) -> None:
    [check] = organization_checks("o-exampleorg01")
    assert check.status is Status.OK, check
    assert check.subject == "aws[0] o-exampleorg01 as base credentials"
    assert "2 account(s) in scope, 1 ACTIVE" in check.detail


def test_a_denied_or_wrong_listing_fails_with_the_fix(emulator: EmulatorThread) -> None:
    [wrong] = organization_checks("o-otherorg0001")
    assert wrong.status is Status.FAIL and wrong.code == "organization-listing-failed"
    assert "o-exampleorg01" in wrong.detail and "aws[0].organization.id" in wrong.fix
    emulator.set_faults([{"operation": "ListRoots", "code": "AccessDeniedException"}])
    [denied] = organization_checks("o-exampleorg01")
    assert denied.status is Status.FAIL and "organizations:ListRoots" in denied.detail
    assert "organization_role_arn" in denied.fix
