"""Admin API (onboarding, keys, tiers, offboarding, usage, stats), GET /me and GET /usage."""

from typing import Annotated, Any, cast

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from tenantry import deadline, exposition, http, selfservice, tasks, tenancy, usage
from tenantry.edge import Stage
from tenantry.models.numbers import QueryInt
from tenantry.models.tenants import (
    KEY_ID_PATTERN,
    TENANT_ID_PATTERN,
    CreatedTenant,
    CreateTenantRequest,
    IssuedKey,
    IssueKeyRequest,
    KeyInfo,
    KeyList,
    Me,
    MyKeyRequest,
    OffboardResult,
    Tenant,
    TenantPage,
    TenantStatus,
    UpdateTenantRequest,
)
from tenantry.models.usage import StatsPage, UsageReport
from tenantry.observability import logger, metrics, tracer

app = http.create_resolver()

TenantIdParam = Annotated[str, Path(pattern=TENANT_ID_PATTERN)]
DaysParam = Annotated[
    QueryInt, Query(ge=1, le=31, description="Daily history length (tiers with usage history)")
]


def _stage() -> Stage:
    context = app.current_event.request_context
    return Stage(api_id=context.api_id, stage=context.stage)


@app.post(
    "/tenants",
    tags=["tenants"],
    responses=http.created(
        CreatedTenant,
        "Onboarded; the key is shown once",
        follow={
            f"{method} {path}": {"tenant_id": "$response.body#/tenant/tenant_id"}
            for method, path in (
                ("GET", "/tenants/{tenant_id}"),
                ("PATCH", "/tenants/{tenant_id}"),
                ("POST", "/tenants/{tenant_id}/keys"),
                ("GET", "/tenants/{tenant_id}/keys"),
                ("GET", "/tenants/{tenant_id}/usage"),
                ("DELETE", "/tenants/{tenant_id}"),
            )
        },
    ),
    openapi_extensions=http.may_answer(409),
    summary="Onboard a tenant",
    description=(
        "Creates a tenant in a rate tier with its usage plan and its first API key, which is shown only "
        "in this answer."
    ),
)
def create_tenant(request: CreateTenantRequest) -> Response[CreatedTenant]:
    created = tenancy.create_tenant(request)
    return Response(status_code=201, content_type=http.JSON, body=created)


@app.get(
    "/tenants",
    tags=["tenants"],
    openapi_extensions=http.may_answer(400),
    summary="List tenants",
    description="Every tenant, optionally of one `tier` or `status`, a page at a time (`next_token`).",
)
def list_tenants(
    tier: Annotated[str | None, Query(pattern=r"^[a-z]{1,20}$")] = None,
    status: Annotated[TenantStatus | None, Query()] = None,
    limit: Annotated[QueryInt, Query(ge=1, le=100)] = 50,
    next_token: Annotated[str | None, Query(max_length=2048)] = None,
) -> TenantPage:
    return tenancy.list_tenants(tier=tier, status=status, limit=limit, next_token=next_token)


@app.get(
    "/tenants/<tenant_id>",
    tags=["tenants"],
    openapi_extensions=http.may_answer(404),
    summary="Read a tenant",
    description="A tenant's name, tier, status and chat settings.",
)
def get_tenant(tenant_id: TenantIdParam) -> Tenant:
    return tenancy.get_tenant(tenant_id)


# 409 edge_quota_reached (usage_plan_quota_reached): API Gateway's quota of usage plans is used up;
# 503 usage_plan_update_throttled: API Gateway's one plan update per 20 s; send the same again.
@app.patch(
    "/tenants/<tenant_id>",
    tags=["tenants"],
    openapi_extensions=http.may_answer(404, 409, 503),
    summary="Change a tenant",
    description=(
        "Renames a tenant, moves it to another tier, suspends or reactivates it, changes its chat "
        "settings, or overrides its limits (`limits`; `null` returns one to the tier's value); only "
        "the fields sent change."
    ),
)
def update_tenant(tenant_id: TenantIdParam, request: UpdateTenantRequest) -> Tenant:
    return tenancy.update_tenant(tenant_id, request, _stage())


# A purge that finishes answers 200; a large tenant's goes on off the request path: 202 "purging".
OFFBOARD_RESPONSES = cast(
    dict[int, OpenAPIResponse],
    {
        200: {
            "description": "Offboarded: keys revoked, every item purged",
            "content": {http.JSON: {"model": OffboardResult}},
        },
        202: {
            "description": "Keys revoked; a large tenant's purge goes on off the request path",
            "content": {
                http.JSON: {
                    "model": OffboardResult,
                    "example": {
                        "tenant_id": "acme",
                        "status": "purging",
                        "keys_revoked": 1,
                        "edge_keys_deleted": 1,
                        "items_deleted": {"EventsTable": 500},
                        "id_free_after": "2026-12-07T04:05:06Z",
                    },
                }
            },
        },
    },
)


@app.delete(
    "/tenants/<tenant_id>",
    tags=["tenants"],
    responses=OFFBOARD_RESPONSES,
    summary="Offboard a tenant",
    description=(
        "Revokes every key of the tenant, deletes its usage plan key and purges every item it owns, "
        "for at most a few seconds in the request: 200 with the counts when the purge finished, 202 "
        "`purging` when a large tenant's purge goes on off the request path. Safe to send again."
    ),
)
def offboard_tenant(tenant_id: TenantIdParam) -> Response[OffboardResult]:
    result = tenancy.offboard_tenant(tenant_id, _stage(), task_target=app.lambda_context.invoked_function_arn)
    return Response(
        status_code=200 if result.status == "offboarded" else 202, content_type=http.JSON, body=result
    )


@app.post(
    "/tenants/<tenant_id>/keys",
    tags=["keys"],
    responses=http.created(IssuedKey, "Issued; the key is shown once"),
    # 409 key_operation_conflict: a concurrent rotation abandoned this one's new key; send it again;
    # 409 key_limit_reached: the tenant has 50 live keys
    openapi_extensions=http.may_answer(404, 409),
    summary="Issue a tenant key",
    description=(
        "Issues a new API key for the tenant (shown only in this answer), with an optional `name`, "
        "`scopes` and expiry. With rotation (the default), the tenant's older keys stop after "
        "`grace_seconds`; with `rotate: false` the new key is added beside them."
    ),
)
def issue_key(tenant_id: TenantIdParam, request: IssueKeyRequest | None = None) -> Response[IssuedKey]:
    issued = tenancy.issue_key(tenant_id, request or IssueKeyRequest(), _stage())
    return Response(status_code=201, content_type=http.JSON, body=issued)


@app.get(
    "/tenants/<tenant_id>/keys",
    tags=["keys"],
    openapi_extensions=http.may_answer(404),
    summary="List a tenant's keys",
    description="The tenant's keys with their status and hint; never their secrets.",
)
def list_keys(tenant_id: TenantIdParam) -> KeyList:
    return KeyList(keys=tenancy.list_keys(tenant_id))


@app.delete(
    "/tenants/<tenant_id>/keys/<key_id>",
    tags=["keys"],
    openapi_extensions=http.may_answer(404),
    summary="Revoke a tenant key",
    description=(
        "Revokes one key of the tenant at once in the key table; API Gateway may admit it until its "
        "authorizer cache expires (300 s)."
    ),
)
def revoke_key(tenant_id: TenantIdParam, key_id: Annotated[str, Path(pattern=KEY_ID_PATTERN)]) -> KeyInfo:
    return tenancy.revoke_key(tenant_id, key_id, _stage())


@app.get(
    "/usage",
    tags=["usage"],
    summary="Read my usage",
    description=(
        "The calling tenant's request and token counters: today, this month, and (tiers with usage "
        "history) the last `days` days."
    ),
)
def my_usage(days: DaysParam = 1) -> UsageReport:
    caller = http.caller(app)
    return usage.report(caller.tenant_id, days)


@app.get(
    "/tenants/<tenant_id>/usage",
    tags=["usage"],
    openapi_extensions=http.may_answer(404),
    summary="Read a tenant's usage",
    description="A tenant's request and token counters, as GET /usage shows them to the tenant.",
)
def tenant_usage(tenant_id: TenantIdParam, days: DaysParam = 1) -> UsageReport:
    return usage.report(tenant_id, days, as_admin=True)


TierParam = Annotated[str | None, Query(pattern=r"^[a-z]{1,20}$", description="Only this tier's tenants")]
PROMETHEUS_RESPONSE: dict[int, OpenAPIResponse] = {
    200: {
        "description": "Prometheus text format 0.0.4: every tenant's counters this month",
        "content": {exposition.CONTENT_TYPE: {"schema": {"type": "string"}}},
    }
}


def _prometheus(tier: str | None) -> Response[str]:
    return Response(status_code=200, content_type=exposition.CONTENT_TYPE, body=exposition.scrape(tier))


@app.get(
    "/stats",
    tags=["usage"],
    openapi_extensions=http.may_answer(400),
    responses={
        200: {
            "description": "JSON; with an Accept that prefers text/plain, the text of /stats/prometheus",
            "content": {
                http.JSON: {"model": StatsPage},
                exposition.CONTENT_TYPE: {"schema": {"type": "string"}},
            },
        }
    },
    summary="Read every tenant's statistics",
    description=(
        "Each tenant's requests, allowed, denied and average latency this month, a page at a time; as "
        "Prometheus text when the Accept header prefers text/plain."
    ),
)
def stats(
    limit: Annotated[QueryInt, Query(ge=1, le=100)] = 50,
    next_token: Annotated[str | None, Query(max_length=2048)] = None,
    tier: TierParam = None,
) -> Response[Any]:
    if exposition.wants_text(app.current_event.headers.get("accept")):
        return _prometheus(tier)
    return Response(status_code=200, content_type=http.JSON, body=usage.stats(limit, next_token, tier=tier))


@app.get(
    "/stats/prometheus",
    tags=["usage"],
    responses=PROMETHEUS_RESPONSE,
    summary="Export statistics for Prometheus",
    description="Every tenant's counters this month in Prometheus' text format, for a scraper.",
)
def stats_prometheus(tier: TierParam = None) -> Response[str]:
    return _prometheus(tier)


@app.get(
    "/me",
    tags=["tenant"],
    openapi_extensions=http.may_answer(404),
    summary="Describe my tenant",
    description=(
        "The calling tenant's id, name, tier, status, effective limits (and where each comes from), "
        "features, and the calling key's scopes."
    ),
)
def me() -> Me:
    caller = http.caller(app)
    return tenancy.describe_me(caller.tenant_id, caller.key_id, scopes=caller.scopes)


@app.post(
    "/me/keys",
    tags=["tenant"],
    responses=http.created(IssuedKey, "Issued; the key is shown once"),
    # 403 scope_not_held: a scope the calling key lacks; 409 key_limit_reached: 50 live keys
    openapi_extensions=http.may_answer(403, 404, 409),
    summary="Issue a key of my own",
    description=(
        "Issues a new key of the calling tenant (shown only in this answer), with scopes no wider than "
        "the calling key's (its own when omitted); at most 50 live keys per tenant."
    ),
)
def create_my_key(request: MyKeyRequest | None = None) -> Response[IssuedKey]:
    caller = http.caller(app)
    issued = selfservice.create_key(caller.tenant_id, caller.scopes, request or MyKeyRequest(), _stage())
    return Response(status_code=201, content_type=http.JSON, body=issued)


@app.get(
    "/me/keys",
    tags=["tenant"],
    openapi_extensions=http.may_answer(404),
    summary="List my keys",
    description="The calling tenant's keys: id, name, scopes, hint, status and expiry; never a key's value.",
)
def list_my_keys() -> KeyList:
    return KeyList(keys=selfservice.list_keys(http.caller(app).tenant_id))


# 404: no such key of the calling tenant (another tenant's key id too); 409 key_in_use: the key
# this request is made with
@app.delete(
    "/me/keys/<key_id>",
    tags=["tenant"],
    openapi_extensions=http.may_answer(404, 409),
    summary="Revoke a key of my own",
    description="Revokes one of the calling tenant's keys at once; never the key this request is made with.",
)
def revoke_my_key(key_id: Annotated[str, Path(pattern=KEY_ID_PATTERN)]) -> KeyInfo:
    caller = http.caller(app)
    return selfservice.revoke_key(caller.tenant_id, caller.key_id, key_id, _stage())


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any] | None:
    if tasks.is_task(event):  # EventBridge Scheduler's one-time tasks (offboarding's final purge)
        with deadline.budget(context):
            return tenancy.run_task(event, task_target=context.invoked_function_arn)
    return http.run(app, event, context)
