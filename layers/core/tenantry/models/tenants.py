"""Pydantic models shared by handlers, logic and the OpenAPI document.

Request models forbid unknown fields, so a typo is a 422 that names the field rather than a
silently ignored setting.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tenantry.models.numbers import IntegralNumbers
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


class UpdateTenantRequest(RequestModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"tier": "enterprise"}], "minProperties": 1})

    name: TenantName | None = None
    tier: TierName | None = None
    status: TenantStatus | None = None
    config: TenantConfig | None = None

    @field_validator("tier")
    @classmethod
    def _known_tier(cls, value: str | None) -> str | None:
        return None if value is None else _check_tier(value)

    @model_validator(mode="after")
    def _something_to_change(self) -> UpdateTenantRequest:
        if not self.model_fields_set:
            raise ValueError("give at least one of name, tier, status, config")
        return self


class IssueKeyRequest(RequestModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"grace_seconds": 3600}]})

    grace_seconds: int = Field(
        default=86_400,
        ge=0,
        le=30 * 86_400,
        description="How long the tenant's older keys keep working (never past their own expiry)",
    )
    expires_in_seconds: int | None = Field(
        default=None, ge=60, le=5 * 365 * 86_400, description="Lifetime of the new key"
    )


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


class KeyInfo(BaseModel):
    key_id: str
    tenant_id: str
    role: Role
    status: KeyStatus
    hint: str
    created_at: str
    expires_at: str | None = None


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
    limits: dict[str, object]
    features: list[str]
    key_id: str
