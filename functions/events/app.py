"""The tenant's event store: publish, read, metrics, consumer checkpoints. Logic: tenantry.events."""

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body, Header, Path, Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from tenantry import events, http
from tenantry.models.events import (
    CONSUMER_NAME_PATTERN,
    EVENT_TYPE_PATTERN,
    MAX_POSITION,
    POSITION_PATTERN,
    Checkpoint,
    CheckpointIn,
    Event,
    EventPage,
    PublishBody,
    Published,
    PublishedBatch,
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
