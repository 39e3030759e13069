"""The one place that sets botocore's timeouts and retries for every function (import-light: the
authorizer imports it before it has decided to pay for boto3).

botocore's defaults (60 s connect and read timeouts, the legacy retry mode) belong to batch jobs,
not to code inside a 29 s API Gateway integration or a 5 s authorizer. The standard retry mode
retries throttling (``ProvisionedThroughputExceededException``, ``ThrottlingException``,
``TooManyRequestsException``) and transient errors with jittered exponential backoff; a
transaction that lost a race is retried by :mod:`tenantry.retry`, which botocore cannot do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from botocore.config import Config

# API functions: DynamoDB answers in milliseconds, so a 3 s silence is a lost request, better
# retried. The standard mode's backoff doubles from up to 1 s (1, 2, 4 s at most before attempts 2-4),
# so 4 attempts bound a throttled call's pauses to 7 s inside a 29 s budget, and make a 20 %
# throttle rate fail a call 0.16 % of the time; write paths then retry within their own deadline.
API: dict[str, Any] = {
    "connect_timeout": 1,
    "read_timeout": 3,
    "retries": {"total_max_attempts": 4, "mode": "standard"},
}
# The authorizer runs in 5 s and API Gateway waits for it: short timeouts, and botocore makes a
# single attempt; tenantry.authorizer retries the key lookup itself within a deadline (botocore's
# retries cannot stop at one).
AUTHORIZER: dict[str, Any] = {
    "connect_timeout": 0.5,
    "read_timeout": 1,
    "retries": {"total_max_attempts": 1, "mode": "standard"},
}


def config(settings: dict[str, Any]) -> Config:
    from botocore.config import Config  # noqa: PLC0415 - deferred: see the module's docstring

    return Config(**settings)
