"""Tenant-scoped credentials: the TenantDataRole, assumed with the session tag ``TenantId``.

IAM lets a session of that role touch only items whose partition key equals its ``TenantId`` tag
(``dynamodb:LeadingKeys``), so a store handed the wrong tenant id gets AccessDenied from AWS
instead of another tenant's data. One ``AssumeRole`` costs a round trip to STS, so the scoped
clients are cached per tenant in this warm sandbox until ``REFRESH_MARGIN_SECONDS`` before the
session expires: in steady state a request pays nothing for them.

The role comes from ``TENANT_DATA_ROLE_ARN`` (the template gives it to the tenant-facing
functions); without it the function role's clients serve every request (tests of other layers,
tools run with an operator's credentials).
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from tenantry import aws, caches
from tenantry.errors import UpstreamUnavailable
from tenantry.observability import logger

ROLE_ARN_ENV = "TENANT_DATA_ROLE_ARN"
SESSION_SECONDS_ENV = "TENANT_SESSION_SECONDS"
TAG_KEY = "TenantId"
DEFAULT_SESSION_SECONDS = 3600
# Renew this long before expiry, so a request never starts with credentials that die mid-way
# (a request lasts at most 29 s; clocks may drift a little).
REFRESH_MARGIN_SECONDS = 300
# Two levels, because they cost differently: a session's keys are a few hundred bytes and save an
# STS round trip; a scoped client and resource are about 0.5 MB and save building them (a few ms).
# So a sandbox keeps many tenants' sessions and the most recent tenants' clients.
MAX_CACHED_TENANTS = 4096
MAX_CACHED_CLIENTS = 64


class CredentialsUnavailable(UpstreamUnavailable):
    code = "credentials_unavailable"


@dataclass(frozen=True, slots=True)
class _Session:
    key_id: str
    secret: str
    token: str
    renew_at: float


class TenantCredentials:
    """Scoped DynamoDB access per tenant, cached until a margin before its session expires."""

    def __init__(
        self,
        role_arn: str,
        session_seconds: int = DEFAULT_SESSION_SECONDS,
        *,
        clock: Callable[[], float] = time.time,
        max_tenants: int = MAX_CACHED_TENANTS,
        max_clients: int = MAX_CACHED_CLIENTS,
    ) -> None:
        self.role_arn = role_arn
        self.session_seconds = session_seconds
        self.margin = min(REFRESH_MARGIN_SECONDS, session_seconds // 4)
        self._clock = clock
        self._max_tenants = max_tenants
        self._max_clients = max_clients
        self._sessions: OrderedDict[str, _Session] = OrderedDict()
        self._clients: OrderedDict[str, tuple[_Session, aws.DataAccess]] = OrderedDict()
        self._lock = threading.Lock()
        self.assume_calls = 0
        self.client_builds = 0

    def access_for(self, tenant_id: str) -> aws.DataAccess:
        now = self._clock()
        with self._lock:
            built = self._clients.get(tenant_id)
            if built is not None and now < built[0].renew_at:
                self._clients.move_to_end(tenant_id)
                self._sessions.move_to_end(tenant_id)
                return built[1]
            session = self._sessions.get(tenant_id)
        if session is None or now >= session.renew_at:
            session = self._assume(tenant_id)
        access = self._build(session)
        with self._lock:
            self._sessions[tenant_id] = session
            self._sessions.move_to_end(tenant_id)
            self._clients[tenant_id] = (session, access)
            self._clients.move_to_end(tenant_id)
            while len(self._sessions) > self._max_tenants:
                self._sessions.popitem(last=False)
            while len(self._clients) > self._max_clients:
                self._clients.popitem(last=False)
        return access

    def _assume(self, tenant_id: str) -> _Session:
        try:
            answer = aws.sts().assume_role(
                RoleArn=self.role_arn,
                # Session names show in CloudTrail; tenant ids fit the name's pattern and length.
                RoleSessionName=tenant_id[:64],
                DurationSeconds=self.session_seconds,
                Tags=[{"Key": TAG_KEY, "Value": tenant_id}],
            )
        except (ClientError, BotoCoreError) as exc:
            logger.error("could not assume the tenant data role", extra={"error": aws.error_code(exc)})
            raise CredentialsUnavailable(
                "Tenant credentials are unavailable; retry shortly", headers={"Retry-After": "1"}
            ) from exc
        self.assume_calls += 1
        credentials = answer["Credentials"]
        return _Session(
            credentials["AccessKeyId"],
            credentials["SecretAccessKey"],
            credentials["SessionToken"],
            credentials["Expiration"].timestamp() - self.margin,
        )

    def _build(self, session: _Session) -> aws.DataAccess:
        self.client_builds += 1
        # From the default session (not a new boto3.Session), so building them stays cheap: the
        # service models it has loaded are reused.
        client = boto3.client(
            "dynamodb", config=aws.CONFIG, aws_access_key_id=session.key_id,
            aws_secret_access_key=session.secret, aws_session_token=session.token,
        )  # fmt: skip
        resource = boto3.resource(
            "dynamodb", config=aws.CONFIG, aws_access_key_id=session.key_id,
            aws_secret_access_key=session.secret, aws_session_token=session.token,
        )  # fmt: skip
        return aws.DataAccess(client=client, resource=resource)

    def cached_tenants(self) -> int:
        return len(self._sessions)

    def cached_clients(self) -> int:
        return len(self._clients)


_vendor: TenantCredentials | None = None
_vendor_lock = threading.Lock()


def vendor() -> TenantCredentials | None:
    """This sandbox's credential cache, or None when the function has no tenant data role."""
    global _vendor  # noqa: PLW0603 - one cache per warm sandbox is the point
    role_arn = os.environ.get(ROLE_ARN_ENV)
    if not role_arn:
        return None
    with _vendor_lock:
        if _vendor is None or _vendor.role_arn != role_arn:
            seconds = int(os.environ.get(SESSION_SECONDS_ENV) or DEFAULT_SESSION_SECONDS)
            _vendor = TenantCredentials(role_arn, seconds)
        return _vendor


def scoped_access(tenant_id: str) -> aws.DataAccess | None:
    """The tenant's scoped DynamoDB access, or None when the function has no tenant data role."""
    cache = vendor()
    return None if cache is None else cache.access_for(tenant_id)


@caches.register
def _forget_vendor() -> None:
    global _vendor  # noqa: PLW0603
    with _vendor_lock:
        _vendor = None
