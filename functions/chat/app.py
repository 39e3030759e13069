"""Chat with the tenant's LLM configuration and the user's persistent sessions. Logic: tenantry.chat."""

from typing import Annotated, Any

from aws_lambda_powertools.event_handler.openapi.params import Header, Path, Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from tenantry import chat, http, streaming
from tenantry.models.chat import (
    SESSION_ID_PATTERN,
    USER_ID_PATTERN,
    ChatAnswer,
    ChatRequest,
    ChatStreamDelta,
    ChatStreamDone,
    ChatStreamStart,
    SessionDeleted,
    SessionDetail,
    SessionPage,
)
from tenantry.models.numbers import QueryInt
from tenantry.observability import logger, metrics, tracer

app = http.create_resolver()

UserId = Annotated[
    str, Header(alias="X-User-ID", pattern=USER_ID_PATTERN, description="The tenant's end user")
]
SessionId = Annotated[str, Path(pattern=SESSION_ID_PATTERN)]
PageToken = Annotated[str | None, Query(max_length=2048)]


@app.post(
    "/chat",
    tags=["chat"],
    responses=http.answers(ChatAnswer, "The turn, stored"),
    openapi_extensions=http.may_answer(404, 409)
    | http.streams(
        "The reply as the model writes it (Server-Sent Events); the turn is stored before `done`",
        start=ChatStreamStart,
        delta=ChatStreamDelta,
        done=ChatStreamDone,
        error=None,
    ),
    summary="Send a chat message",
    description=(
        "One turn of the calling user's (X-User-Id) conversation with the LLM: continues `session_id` or "
        'starts a session, and answers the model\'s reply with the tokens it used. With `"stream": true`'
        " the reply comes as Server-Sent Events. Counts against the tenant's monthly token budget (429 "
        "with Retry-After when it is spent)."
    ),
)
def chat_turn(request: ChatRequest, user_id: UserId) -> Any:  # ChatAnswer, or the stream's 200
    caller = http.caller(app)
    if request.stream:
        return streaming.respond(
            chat.stream_turn(caller.tenant_id, caller.tier, user_id, request, request_id=http.request_id(app))
        )
    return chat.turn(caller.tenant_id, caller.tier, user_id, request, request_id=http.request_id(app))


@app.get(
    "/sessions",
    tags=["chat"],
    openapi_extensions=http.may_answer(400),
    summary="List the user's chat sessions",
    description=(
        "The calling user's own sessions, most recently active first, a page at a time (`next_token`)."
    ),
)
def list_sessions(
    user_id: UserId,
    limit: Annotated[QueryInt, Query(ge=1, le=100)] = 20,
    next_token: PageToken = None,
) -> SessionPage:
    caller = http.caller(app)
    return chat.list_sessions(caller.tenant_id, user_id, limit, next_token)


@app.get(
    "/sessions/<session_id>",
    tags=["chat"],
    openapi_extensions=http.may_answer(400, 404),
    summary="Read a chat session",
    description=(
        "One of the calling user's sessions with its turns, a page at a time. Another user's or tenant's "
        "session is 404."
    ),
)
def read_session(
    session_id: SessionId,
    user_id: UserId,
    limit: Annotated[QueryInt, Query(ge=1, le=500, description="Turns per page")] = 100,
    next_token: PageToken = None,
) -> SessionDetail:
    caller = http.caller(app)
    return chat.read_session(caller.tenant_id, user_id, session_id, limit, next_token)


@app.delete(
    "/sessions/<session_id>",
    tags=["chat"],
    openapi_extensions=http.may_answer(404),
    summary="Delete a chat session",
    description="Deletes one of the calling user's sessions and every turn in it.",
)
def delete_session(session_id: SessionId, user_id: UserId) -> SessionDeleted:
    caller = http.caller(app)
    return chat.delete_session(caller.tenant_id, user_id, session_id)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any] | None:
    # POST /chat streams (template.yaml; the chat function runs tenantry.streaming_runtime): its
    # answer goes out through context.response_stream and this returns None.
    return http.run(app, event, context)
