"""The `aws` matchers of the config, and the `organization` settings that go with them.

A matcher names where to look: explicit regions or `["*"]` (every region enabled in the
account, from `account:ListRegions`), and one account role (`assume_role_arn`), the base
credentials (no role), or every ACTIVE account of an AWS Organization (`organization` +
`assume_role_name`, the role assumed in each member account). Validation errors name the key.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from discovery.core.durations import bounded_duration
from discovery.core.selector import SelectorPatternError, compile_pattern

SUPPORTED_TYPES = ("rdsproxy",)
ALL_REGIONS = "*"
REGION_RE = re.compile(r"^[a-z]{2}(-gov|-iso|-isob|-isof|-isoe)?-[a-z]+-\d{1,2}$")
ROLE_ARN_RE = re.compile(r"^arn:aws(-cn|-us-gov|-iso|-iso-b)?:iam::\d{12}:role/[\w+=,.@/-]{1,512}$")
ROLE_NAME_RE = re.compile(r"^[\w+=,.@-]{1,64}$")
ORG_ID_RE = re.compile(r"^o-[a-z0-9]{10,32}$")
# A root (r-xxxx) or an organizational unit (ou-xxxx-xxxxxxxx), as ListRoots/ListChildren say.
OU_ID_RE = re.compile(r"^(r-[0-9a-z]{4,32}|ou-[0-9a-z]{4,32}-[a-z0-9]{8,32})$")
HOUR = 3600.0


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)


def _tag_values(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, Sequence) and value and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ValueError("a tag selector value must be a string or a non-empty list of strings")


def _ou_ids(ids: tuple[str, ...]) -> tuple[str, ...]:
    for ou in ids:
        if not OU_ID_RE.match(ou):
            raise ValueError(
                f"{ou!r} is not an organizational unit or root id (e.g. ou-ab12-34cd56ef or r-ab12)"
            )
    return tuple(dict.fromkeys(ids))


class OrganizationMatch(_Frozen):
    """Which accounts of an AWS Organization a matcher covers."""

    id: str
    # Subtrees whose ACTIVE accounts are scanned; empty: the whole organization (its root).
    include_ous: tuple[str, ...] = ()
    # Subtrees dropped entirely, even inside an included one.
    exclude_ous: tuple[str, ...] = ()

    @field_validator("id")
    @classmethod
    def _id(cls, org_id: str) -> str:
        if not ORG_ID_RE.match(org_id):
            raise ValueError(
                f"{org_id!r} is not an AWS Organization id; expected o-exampleorgid "
                "(see `aws organizations describe-organization`)"
            )
        return org_id

    @field_validator("include_ous", "exclude_ous")
    @classmethod
    def _ous(cls, ids: tuple[str, ...]) -> tuple[str, ...]:
        return _ou_ids(ids)


class Matcher(_Frozen):
    types: tuple[str, ...]
    regions: tuple[str, ...]
    tags: Mapping[str, tuple[str, ...]] = Field(default_factory=lambda: {"*": ("*",)})
    assume_role_arn: str = ""
    external_id: str = ""
    organization: OrganizationMatch | None = None
    # Organization matchers: the role assumed in every member account,
    # arn:<partition>:iam::<account>:role/<assume_role_name>.
    assume_role_name: str = ""
    # Organization matchers: a role to assume for the Organizations listing (in the management
    # or delegated-admin account); unset: the base credentials list the organization.
    organization_role_arn: str = ""
    # The role the Teleport Database Service assumes to connect (spec.aws.assume_role_arn of
    # what this matcher registers); empty: the discovery role above, as Teleport does.
    db_assume_role_arn: str = ""
    db_external_id: str = ""

    @field_validator("types")
    @classmethod
    def _types(cls, types: tuple[str, ...]) -> tuple[str, ...]:
        if not types:
            raise ValueError('at least one type is required, e.g. types: ["rdsproxy"]')
        for t in types:
            if t not in SUPPORTED_TYPES:
                raise ValueError(f"unsupported type {t!r}; only 'rdsproxy' is supported")
        return tuple(dict.fromkeys(types))

    @field_validator("regions")
    @classmethod
    def _regions(cls, regions: tuple[str, ...]) -> tuple[str, ...]:
        if not regions:
            raise ValueError('at least one region is required, e.g. regions: ["us-east-1"]')
        if ALL_REGIONS in regions:
            if len(regions) > 1:
                raise ValueError(
                    'regions: ["*"] (every enabled region) cannot be mixed with named regions'
                )
            return regions
        for r in regions:
            if not REGION_RE.match(r):
                raise ValueError(f"{r!r} is not a valid AWS region name (e.g. us-east-1)")
        return tuple(dict.fromkeys(regions))

    @field_validator("tags", mode="before")
    @classmethod
    def _tags(cls, tags: object) -> dict[str, tuple[str, ...]]:
        if tags is None:
            return {"*": ("*",)}
        if not isinstance(tags, Mapping):
            raise ValueError(
                'tags must be a mapping of label key to value(s), e.g. {"env": "prod"}'
            )
        out: dict[str, tuple[str, ...]] = {}
        for key, value in tags.items():
            values = _tag_values(value)
            for v in values:
                if v.startswith("^") and v.endswith("$"):
                    try:
                        compile_pattern(v)
                    except SelectorPatternError as exc:
                        raise ValueError(
                            f"tags[{key}]: invalid regular expression {v!r}: {exc}"
                        ) from None
            out[str(key)] = values
        return out

    @field_validator("assume_role_arn", "organization_role_arn", "db_assume_role_arn")
    @classmethod
    def _role(cls, arn: str) -> str:
        if arn and not ROLE_ARN_RE.match(arn):
            raise ValueError(
                f"{arn!r} is not an IAM role ARN; expected arn:aws:iam::123456789012:role/NAME"
            )
        return arn

    @field_validator("assume_role_name")
    @classmethod
    def _role_name(cls, name: str) -> str:
        if name and not ROLE_NAME_RE.match(name):
            raise ValueError(
                f"{name!r} is not an IAM role name (the name only, e.g. discovery, not an ARN)"
            )
        return name

    @model_validator(mode="after")
    def _roles_fit_together(self) -> Matcher:
        if self.organization is not None:
            if not self.assume_role_name:
                raise ValueError(
                    "organization needs assume_role_name: the role to assume in every member "
                    "account, e.g. assume_role_name: discovery"
                )
            if self.assume_role_arn:
                raise ValueError(
                    "assume_role_arn cannot be used with organization; set assume_role_name "
                    "(the role in every member account) instead"
                )
        else:
            if self.assume_role_name:
                raise ValueError(
                    "assume_role_name needs organization (it names the role in every member "
                    "account); for one account, use assume_role_arn"
                )
            if self.organization_role_arn:
                raise ValueError("organization_role_arn needs organization; remove it")
        if self.external_id and not (self.assume_role_arn or self.assume_role_name):
            raise ValueError("external_id requires assume_role_arn; set both or remove external_id")
        self._connection_role_fits()
        return self

    def _connection_role_fits(self) -> None:
        """Teleport rejects a database whose assume_role_arn is outside its own account."""
        if self.db_external_id and not self.db_assume_role_arn:
            raise ValueError(
                "db_external_id requires db_assume_role_arn; set both or remove db_external_id"
            )
        if self.db_assume_role_arn and self.organization is not None:
            raise ValueError(
                "db_assume_role_arn cannot be used with organization: Teleport needs the role "
                "in each database's own account; the member role (assume_role_name) is registered"
            )
        db_account = self.db_assume_role_arn.split(":")[4] if self.db_assume_role_arn else ""
        if db_account and self.role_account_id and db_account != self.role_account_id:
            raise ValueError(
                f"db_assume_role_arn is in account {db_account}, the proxies in "
                f"{self.role_account_id} (assume_role_arn): Teleport rejects a database whose "
                "assume_role_arn is in another account; use a role in that account"
            )

    @property
    def role_account_id(self) -> str:
        return self.assume_role_arn.split(":")[4] if self.assume_role_arn else ""

    @property
    def external_ids(self) -> tuple[str, ...]:
        """The matcher's secrets, redacted from logs and /status: both external ids."""
        return tuple(i for i in (self.external_id, self.db_external_id) if i)

    @property
    def all_regions(self) -> bool:
        return self.regions == (ALL_REGIONS,)

    @property
    def needs_listing(self) -> bool:
        """Its scopes depend on what AWS lists (accounts or regions), not on the config alone."""
        return self.organization is not None or self.all_regions


TTL = Annotated[float, BeforeValidator(bounded_duration(low=1.0, high=30 * 24 * HOUR))]
Grace = Annotated[float, BeforeValidator(bounded_duration(low=60.0, high=30 * 24 * HOUR))]


class OrganizationSettings(_Frozen):
    """How Organizations and `account:ListRegions` listings are cached, and how long an account
    must be gone before its resources may be deleted."""

    # A listing is reused this long; then refreshed at the start of the next cycle.
    cache_ttl: TTL = HOUR
    # An account missing from a complete listing (or SUSPENDED) keeps its resources this long.
    gone_grace: Grace = 24 * HOUR
    # Where "first seen gone" per account is kept between runs (relative: to the config file).
    # Empty: next to the SQLite registry file, or `discovery-accounts.json` for PostgreSQL.
    state_path: str = ""
