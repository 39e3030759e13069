"""Where the library reads its deployment settings: the env vars template.yaml gives each function.

Table names are never hard-coded: on AWS they come from ``!Ref``, locally the gateway resolves the
same references to local names. The AWS endpoint can be overridden the standard boto3 way
(``AWS_ENDPOINT_URL`` or ``AWS_ENDPOINT_URL_DYNAMODB``), which is how ``sam local invoke`` and the
CLI reach the embedded DynamoDB.
"""

from __future__ import annotations

import os

from tenantry.errors import ApiError

TENANTS_TABLE = "TENANTS_TABLE"
API_KEYS_TABLE = "API_KEYS_TABLE"
EVENTS_TABLE = "EVENTS_TABLE"
CONSUMERS_TABLE = "CONSUMERS_TABLE"
CONVERSATIONS_TABLE = "CONVERSATIONS_TABLE"
USAGE_TABLE = "USAGE_TABLE"
IDEMPOTENCY_TABLE = "IDEMPOTENCY_TABLE"

USAGE_PLAN_NAME_PREFIX = "USAGE_PLAN_NAME_PREFIX"
# The template's CorsAllowOrigin: the one web origin (or *) browsers may call from; empty: no CORS.
CORS_ALLOW_ORIGIN = "CORS_ALLOW_ORIGIN"

# Offboarding's final purge runs this long after the offboarding: longer than any request
# authorized before it can last (a streamed chat turn: up to 900 s, the template's most).
OFFBOARD_SETTLE_SECONDS = "OFFBOARD_SETTLE_SECONDS"
DEFAULT_OFFBOARD_SETTLE_SECONDS = 960
# EventBridge Scheduler: the schedule group of the stack's one-time tasks and the role it invokes
# the tenants function with.
SCHEDULE_GROUP = "SCHEDULE_GROUP"
SCHEDULER_ROLE_ARN = "SCHEDULER_ROLE_ARN"
# Where Scheduler puts a schedule it could not deliver (the template's TaskDeadLetterQueue).
TASK_DEAD_LETTER_QUEUE_ARN = "TASK_DEAD_LETTER_QUEUE_ARN"

# The largest request body any route accepts (design §5); larger ones get 413.
MAX_BODY_BYTES = 256 * 1024


class MisconfiguredError(ApiError):
    status = 500
    code = "misconfigured"


def table_name(env_var: str) -> str:
    name = os.environ.get(env_var)
    if not name:
        raise MisconfiguredError(f"{env_var} is not set for this function")
    return name


def optional_table_name(env_var: str) -> str | None:
    return os.environ.get(env_var) or None


def cors_allow_origin() -> str | None:
    return os.environ.get(CORS_ALLOW_ORIGIN, "").strip() or None


def stack_name() -> str:
    """The stack's name (the usage plans' prefix), which tags its API keys."""
    return os.environ.get(USAGE_PLAN_NAME_PREFIX, "tenantry")


def usage_plan_name(tier: str) -> str:
    return f"{os.environ.get(USAGE_PLAN_NAME_PREFIX, 'tenantry')}-{tier}"


def tenant_plan_name(tenant_id: str) -> str:
    """The usage plan of one tenant's own (limit overrides), beside the tier plans."""
    return f"{stack_name()}-tenant-{tenant_id}"


def offboard_settle_seconds() -> int:
    return int(os.environ.get(OFFBOARD_SETTLE_SECONDS) or DEFAULT_OFFBOARD_SETTLE_SECONDS)
