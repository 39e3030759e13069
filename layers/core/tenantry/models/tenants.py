"""Pydantic models shared by handlers, logic and the OpenAPI document.

Request models forbid unknown fields, so a typo is a 422 that names the field rather than a
silently ignored setting.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tenantry.models.numbers import IntegralNumbers
from tenantry.routes import SCOPE_NAMES, Scope
from tenantry.tiers import TIER_NAMES, TIERS

TENANT_ID_PATTERN = r"^[a-z0-9][a-z0-9-]{2,62}$"
KEY_ID_PATTERN = r"^key_[0-9a-f]{16}$"

TenantStatus = Literal["active", "suspended"]
KeyStatus = Literal["active", "suspended", "revoked", "expired"]
Role = Literal["tenant", "admin"]

TenantId = Annotated[str, Field(pattern=TENANT_ID_PATTERN, description="Lower-case id, 3-63 chars")]
# Surrounding whitespace is stripped, so a name needs one character that is not whitespace.
TenantName = Annotated[str, Field(min_length=1, max_length=200, pattern=r"\S")]
TierName = Annotated[str, Field(description="The rate tier", json_schema_extra={"enum": list(TIER_NAMES)})]


def _check_tier(value: str) -> str:
    if value not in TIERS:
        raise ValueError(f"unknown tier {value!r}; expected one of {', '.join(TIER_NAMES)}")
    return value


class RequestModel(IntegralNumbers):
    # strict: a boolean is never taken for an integer (``true`` is not 1), nor a number with a
    # fraction (``7.0`` is 7, as JSON Schema reads it: IntegralNumbers).
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, strict=True)


class TenantConfig(RequestModel):
    """Per-tenant settings the chat feature reads."""

    system_prompt: str | None = Field(default=None, max_length=8000)
    max_messages: int | None = Field(default=None, ge=1, le=200, description="Memory window")
    model: str | None = Field(
        default=None,
        max_length=100,
        pattern=r"^[A-Za-z0-9._:-]+$",
        description="LLM model; only for tiers with model choice",
    )


class CreateTenantRequest(RequestModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"name": "Acme Corp", "tier": "pro", "config": {"max_messages": 20}}]}
    )

    name: TenantName
    tier: TierName
    tenant_id: TenantId | None = None
    config: TenantConfig | None = None

    _tier = field_validator("tier")(_check_tier)


class LimitOverrides(RequestModel):
    """Per-tenant overrides of the tier's limits: any subset; ``null`` returns one to the tier's
    value; a limit not given keeps its current override."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"requests_per_minute": 600, "burst": 50, "tokens_per_month": None}]}
    )

    # API Gateway's account throttle is 10,000 requests/s (burst 5,000): a plan above it is moot.
    requests_per_minute: int | None = Field(default=None, ge=1, le=600_000, description="Throttle rate")
    burst: int | None = Field(default=None, ge=1, le=5_000, description="Throttle burst")
    requests_per_month: int | None = Field(
        default=None, ge=1, le=2_000_000_000, description="API Gateway's monthly quota"
    )
    tokens_per_month: int | None = Field(
        default=None, ge=0, le=1_000_000_000_000, description="LLM token budget (0: no chat turns)"
    )


class UpdateTenantRequest(RequestModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"tier": "enterprise"}], "minProperties": 1})

    name: TenantName | None = None
    tier: TierName | None = None
    status: TenantStatus | None = None
    config: TenantConfig | None = None
    limits: LimitOverrides | None = Field(default=None, description="Per-tenant limit overrides")

    @field_validator("tier")
    @classmethod
    def _known_tier(cls, value: str | None) -> str | None:
        return None if value is None else _check_tier(value)

    @model_validator(mode="after")
    def _something_to_change(self) -> UpdateTenantRequest:
        if not self.model_fields_set:
            raise ValueError("give at least one of name, tier, status, config, limits")
        return self


KeyName = Annotated[str, Field(min_length=1, max_length=100, pattern=r"\S", description="A label for humans")]
KeyScopes = Annotated[
    list[Scope],
    Field(
        min_length=1,
        max_length=len(SCOPE_NAMES),
        description="What the key may call; omitted or null: every scope",
        json_schema_extra={"uniqueItems": True},
    ),
]
Lifetime = Annotated[int, Field(ge=60, le=5 * 365 * 86_400, description="Lifetime of the new key")]


def _distinct(scopes: list[Scope] | None) -> list[Scope] | None:
    if scopes is not None and len(set(scopes)) != len(scopes):
        raise ValueError("a scope is listed twice")
    return scopes


class IssueKeyRequest(RequestModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"grace_seconds": 3600},
                {"name": "dashboard", "scopes": ["events:read", "usage:read"], "rotate": False},
            ]
        }
    )

    grace_seconds: int = Field(
        default=86_400,
        ge=0,
        le=30 * 86_400,
        description="With rotate: how long the older keys keep working (never past their own expiry)",
    )
    expires_in_seconds: Lifetime | None = None
    name: KeyName | None = None
    scopes: KeyScopes | None = None
    rotate: bool = Field(
        default=True,
        description="True: the older keys stop after grace_seconds (a rotation); false: they stay",
    )

    _scopes = field_validator("scopes")(_distinct)


class MyKeyRequest(RequestModel):
    """A key a tenant issues itself: its scopes are a subset of the calling key's (omitted: the
    calling key's own). It never rotates the tenant's other keys."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"name": "ci", "scopes": ["events:write"], "expires_in_seconds": 86400}]
        }
    )

    name: KeyName | None = None
    scopes: KeyScopes | None = None
    expires_in_seconds: Lifetime | None = None

    _scopes = field_validator("scopes")(_distinct)


LimitSource = Literal["tier", "override"]


class Limits(BaseModel):
    """The limits in force: the tier's, or the tenant's overrides."""

    requests_per_minute: int
    burst: int
    requests_per_month: int
    tokens_per_month: int
    llm_tokens_per_month: int = Field(description="The older name of tokens_per_month (same value)")


class LimitSources(BaseModel):
    """Where each limit comes from: the tenant's tier, or an override of the operator's."""

    requests_per_minute: LimitSource
    burst: LimitSource
    requests_per_month: LimitSource
    tokens_per_month: LimitSource


class Tenant(BaseModel):
    tenant_id: str
    name: str
    tier: str
    status: TenantStatus
    # Titled: an inline object titled "Config" is named TenantConfig by client generators, a second
    # model of the request's TenantConfig name (openapi-python-client then drops both).
    config: dict[str, object] = Field(
        default_factory=dict, title="Settings", description="The chat settings set (TenantConfig's fields)"
    )
    created_at: str
    updated_at: str
    limits: Limits
    limit_sources: LimitSources


class KeyInfo(BaseModel):
    key_id: str
    tenant_id: str
    role: Role
    status: KeyStatus
    hint: str
    created_at: str
    expires_at: str | None = None
    name: str | None = None
    scopes: list[str] | None = Field(default=None, description="What the key may call; null: every scope")


class CreatedTenant(BaseModel):
    tenant: Tenant
    api_key: str = Field(description="Shown once; only its SHA-256 is stored")


class TenantPage(BaseModel):
    tenants: list[Tenant]
    next_token: str | None = None


class IssuedKey(BaseModel):
    key: KeyInfo
    api_key: str = Field(description="Shown once; only its SHA-256 is stored")
    older_keys_expire_at: str | None = None


class KeyList(BaseModel):
    keys: list[KeyInfo]


class OffboardResult(BaseModel):
    tenant_id: str
    status: Literal["offboarded", "purging"] = Field(
        default="offboarded",
        description=(
            "offboarded (200): keys revoked and every item purged. purging (202): keys revoked, "
            "the purge of a large tenant goes on off the request path; DELETE again to see where it stands"
        ),
    )
    keys_revoked: int
    edge_keys_deleted: int
    items_deleted: dict[str, int]
    id_free_after: str | None = Field(
        default=None,
        description="When the final purge runs and the id is free again (409 tenant_offboarding until then)",
    )


class Me(BaseModel):
    tenant_id: str
    name: str
    tier: str
    status: TenantStatus
    limits: Limits
    limit_sources: LimitSources
    features: list[str]
    key_id: str
    scopes: list[str] | None = Field(default=None, description="The calling key's scopes; null: every scope")
