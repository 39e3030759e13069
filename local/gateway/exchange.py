"""One request's record on its way through the local gateway, and the gateway's own answers to it.

Every step of the pipeline (core.py) fills in what it learned: the route it matched, the
authorizer's answer, the API key of the usage plan, how long the integration took, the response
type of a refusal. The proxy event (proxyevent.py) and the access-log line (accesslog.py) are both
built from this one record, so they never disagree about a request.
"""

from __future__ import annotations

import functools
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import unquote

from local.gateway import responses
from local.gateway.responses import GatewayAnswer
from local.gateway.server import HttpResponse

if TYPE_CHECKING:
    from local.gateway.api import ApiModel, Route
    from local.gateway.auth import AuthorizerResult


@dataclass
class Exchange:
    """What one request gathered on its way through, for the event and the access log."""

    request_id: str
    started: float
    epoch_ms: int
    method: str
    path: str
    route: Route | None = None
    authorizer: AuthorizerResult | None = None
    api_key: str | None = None
    api_key_id: str | None = None
    integration_ms: int | None = None
    error_type: str = ""

    @property
    def request_time(self) -> str:
        """``$context.requestTime``: CLF-formatted, UTC (``25/Nov/2026:00:50:03 +0000``)."""
        return _clf_time(self.epoch_ms // 1000)


_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@functools.lru_cache(maxsize=8)
def _clf_time(epoch_seconds: int) -> str:
    # Every request of a second has the same text: formatted once per second, and with English
    # month names whatever the process's locale.
    moment = time.gmtime(epoch_seconds)
    return (
        f"{moment.tm_mday:02d}/{_MONTHS[moment.tm_mon - 1]}/{moment.tm_year}:"
        f"{moment.tm_hour:02d}:{moment.tm_min:02d}:{moment.tm_sec:02d} +0000"
    )


def new_exchange(method: str, path: str) -> Exchange:
    now = time.time()
    return Exchange(str(uuid.uuid4()), time.perf_counter(), int(now * 1000), method, path)


def decoded_path(raw_path: str) -> str:
    """Percent-decoded, except that an encoded slash never splits a segment and stays encoded:
    ``/events%2F1`` is one segment that matches no route (not event 1), and ``/events/1%2F2``
    hands the handler the parameter ``1%2F2``, which no pattern accepts."""
    if "%" not in raw_path:
        return raw_path  # nothing encoded (most requests): each segment decodes to itself
    return "/".join(unquote(segment).replace("/", "%2F") for segment in raw_path.split("/"))


def gateway_answer(answer: GatewayAnswer, exchange: Exchange, model: ApiModel) -> HttpResponse:
    """API Gateway's own answer, rendered from the template's gateway responses."""
    exchange.error_type = answer.error_type
    authorizer = exchange.authorizer.context if exchange.authorizer is not None else None
    status, headers, body = responses.render(model.gateway_responses, answer, exchange.request_id, authorizer)
    return HttpResponse(
        status,
        [
            ("Content-Type", "application/json"),
            *headers,
            ("x-amzn-RequestId", exchange.request_id),
            ("x-amzn-ErrorType", answer.amzn_error_type),
        ],
        body,
    )
