"""The emulated AWS Organization: its id, root, OUs and who may list it (see `fleet.Fleet`)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

__all__ = ["OrgNodeId", "OrganizationSpec", "OrganizationalUnitSpec"]

AccountId = Annotated[str, StringConstraints(pattern=r"^\d{12}$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


OrgNodeId = Annotated[
    str, StringConstraints(pattern=r"^(r-[0-9a-z]{4,32}|ou-[0-9a-z]{4,32}-[a-z0-9]{8,32})$")
]


class OrganizationalUnitSpec(_Strict):
    """An OU of the emulated organization; `parent` is the root id or another OU's id."""

    id: Annotated[str, StringConstraints(pattern=r"^ou-[0-9a-z]{4,32}-[a-z0-9]{8,32}$")]
    name: str = ""
    parent: OrgNodeId


class OrganizationSpec(_Strict):
    """The AWS Organization the fleet's accounts belong to (those with an `ou`)."""

    id: Annotated[str, StringConstraints(pattern=r"^o-[a-z0-9]{10,32}$")] = "o-exampleorg01"
    root_id: Annotated[str, StringConstraints(pattern=r"^r-[0-9a-z]{4,32}$")] = "r-root"
    # Who may call the Organizations API: the management account (default: the fleet's
    # caller_account) and any delegated administrator.
    management_account: AccountId | None = None
    delegated_admins: list[AccountId] = Field(default_factory=list)
    ous: list[OrganizationalUnitSpec] = Field(default_factory=list)
    # Organizations pages hold at most this many items (real AWS: up to 20 for most lists).
    page_size: int = Field(default=20, ge=1, le=1000)
