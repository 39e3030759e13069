"""The tenant's event store: publish, read, subscribe, metrics, consumer checkpoints. Logic:
tenantry.events and tenantry.subscriptions."""

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body, Header, Path, Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from tenantry import events, http, streaming, subscriptions
from tenantry.models.events import (
    CONSUMER_NAME_PATTERN,
    EVENT_TYPE_PATTERN,
    MAX_POSITION,
    POSITION_OR_ZERO_PATTERN,
    POSITION_PATTERN,
    Checkpoint,
    CheckpointIn,
    Event,
    EventPage,
    PublishBody,
    Published,
    PublishedBatch,
    StreamEnd,
    StreamMetrics,
)
from tenantry.models.numbers import QueryInt
from tenantry.observability import logger, metrics, tracer

app = http.create_resolver()

ConsumerName = Annotated[str, Path(pattern=CONSUMER_NAME_PATTERN)]


@app.post(
    "/events",
    tags=["events"],
    responses=http.created(
        Published | PublishedBatch,
        "Stored: the position, or a batch's positions",
        # Only what every answer (one event's or a batch's) can fill: a batch has no `position`.
        follow={"GET /events": {}, "GET /metrics": {}},
    ),
    openapi_extensions=http.may_answer(409),
    summary="Publish events",
    description=(
        "Appends one event, or a batch of 1-99 in order, to the tenant's stream at the next gapless "
        "positions, all or none. With `expected_position` the append happens only if the stream's last "
        "position is that one (0: empty), else 409 `wrong_expected_position` with `current_position` "
        "and nothing stored (optimistic concurrency). With an `Idempotency-Key` (a batch then holds at "
        "most 98 events), the first answer is stored with the events and replayed for 24 h to any resend "
        "with the same body (a conditional one included: its resend answers its first result, not 409); "
        "the same key with another body is 422 `idempotency_key_reused`."
    ),
)
def publish(
    body: Annotated[PublishBody, Body()],
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            pattern=events.IDEMPOTENCY_KEY_PATTERN,
            description="Retries with the same key and body answer the first result for 24 h",
        ),
    ] = None,
) -> Response[dict[str, Any]]:
    caller = http.caller(app)
    answer = events.publish(caller.tenant_id, body, idempotency_key, incarnation=caller.incarnation)
    return Response(status_code=201, content_type=http.JSON, body=answer)


@app.get(
    "/events",
    tags=["events"],
    summary="Read the event stream",
    description=(
        "The tenant's events from position `from` on, up to `to` (inclusive) if given, in order, "
        "optionally of one `type`; follow `next_from` until it is null. A `to` before `from` is 422."
    ),
)
def read_events(
    start: Annotated[QueryInt, Query(alias="from", ge=1, le=MAX_POSITION)] = 1,
    limit: Annotated[QueryInt, Query(ge=1, le=1000)] = 100,
    event_type: Annotated[str | None, Query(alias="type", pattern=EVENT_TYPE_PATTERN)] = None,
    to: Annotated[
        QueryInt | None, Query(ge=1, le=MAX_POSITION, description="The last position to read (inclusive)")
    ] = None,
) -> EventPage:
    caller = http.caller(app)
    return events.read_events(caller.tenant_id, start, limit, event_type, to)


@app.get(
    "/events/stream",
    tags=["events"],
    openapi_extensions=http.may_answer(404)
    | http.streams(
        "Every stored event from the start point in order, then each new one as it is stored (Server-Sent"
        " Events, each `event` with `id: <position>`); `end` says where to resume",
        only=True,
        identified=("event", "end"),
        event=Event,
        end=StreamEnd,
        error=None,
    ),
    summary="Subscribe to the event stream",
    description=(
        "A live subscription: every stored event from `from` (or after `Last-Event-ID`, or after the "
        "checkpoint of `consumer`; `Last-Event-ID` wins, as a reconnect sends it) in order, then each "
        "new event as it is stored, none skipped or repeated, optionally of one `type`. A `: keep-alive` "
        "comment comes at least every 15 s of silence. The stream closes with an `end` event "
        "(`next_from`, and `id` one less, so an EventSource resumes exactly) after `max_seconds`, after "
        "`limit` events, or at the latest after the deployment's maximum (15 minutes by default, minus "
        "5 s); an `error` event ends it when the tenant is suspended or offboarded (within 5 s). "
        "Errors before the stream (validation, auth, rate limit) are JSON answers."
    ),
)
def subscribe(  # every parameter by name, as Powertools passes them
    *,
    start: Annotated[
        QueryInt | None,
        Query(alias="from", ge=1, le=MAX_POSITION, description="The first position (default 1)"),
    ] = None,
    consumer: Annotated[
        str | None,
        Query(
            pattern=CONSUMER_NAME_PATTERN,
            description="Start after this consumer's checkpoint (at 1 if it has none); not with `from`",
        ),
    ] = None,
    event_type: Annotated[str | None, Query(alias="type", pattern=EVENT_TYPE_PATTERN)] = None,
    max_seconds: Annotated[
        QueryInt | None,
        Query(ge=1, le=subscriptions.MAX_SECONDS, description="Close the stream after this many seconds"),
    ] = None,
    limit: Annotated[
        QueryInt | None, Query(ge=1, le=MAX_POSITION, description="Close the stream after this many events")
    ] = None,
    last_event_id: Annotated[
        str | None,
        Header(
            alias="Last-Event-ID",
            pattern=POSITION_OR_ZERO_PATTERN,
            description="The last position received: resume after it (what an EventSource sends)",
        ),
    ] = None,
) -> Any:  # the stream's 200
    caller = http.caller(app)
    subscriber = subscriptions.Subscriber(caller.tenant_id, caller.incarnation, caller.expires_at)
    request = subscriptions.SubscriptionRequest(
        start, consumer, last_event_id, event_type, max_seconds, limit
    )
    return streaming.respond(subscriptions.subscribe(subscriber, request, request_id=http.request_id(app)))


@app.get(
    "/events/<position>",
    tags=["events"],
    openapi_extensions=http.may_answer(404),
    summary="Read one event",
    description="The tenant's event at `position`; 404 when the stream has no such position.",
)
def get_event(
    position: Annotated[str, Path(pattern=POSITION_PATTERN, description="A position in canonical decimal")],
) -> Event:
    caller = http.caller(app)
    return events.get_event(caller.tenant_id, int(position))


@app.get(
    "/metrics",
    tags=["events"],
    summary="Count the stream's events",
    description="How many events the tenant's stream holds (its last position).",
)
def stream_metrics() -> StreamMetrics:
    caller = http.caller(app)
    return events.stream_metrics(caller.tenant_id)


@app.put(
    "/consumers/<name>",
    tags=["events"],
    summary="Save a consumer checkpoint",
    description=(
        "Records the last position the named consumer processed (at most the stream's last position)."
    ),
)
def save_checkpoint(name: ConsumerName, request: CheckpointIn) -> Checkpoint:
    caller = http.caller(app)
    return events.save_checkpoint(caller.tenant_id, name, request)


@app.get(
    "/consumers/<name>",
    tags=["events"],
    openapi_extensions=http.may_answer(404),
    summary="Read a consumer checkpoint",
    description="The last position the named consumer saved; 404 if it never saved one.",
)
def get_checkpoint(name: ConsumerName) -> Checkpoint:
    caller = http.caller(app)
    return events.get_checkpoint(caller.tenant_id, name)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any] | None:
    return http.run(app, event, context)
