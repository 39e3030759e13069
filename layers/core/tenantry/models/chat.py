"""Models of chat: a turn's request and answer, sessions and their messages."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from tenantry.models.numbers import IntegralNumbers

USER_ID_PATTERN = r"^[A-Za-z0-9_.@:-]{1,128}$"
SESSION_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
MAX_MESSAGE_CHARS = 32_000


class ChatRequest(IntegralNumbers):
    # strict: a boolean or a fraction is never taken for an integer, nor a number for a string.
    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        strict=True,
        json_schema_extra={"examples": [{"message": "What is my order status?"}]},
    )

    message: str = Field(
        min_length=1,
        max_length=MAX_MESSAGE_CHARS,
        pattern=r"\S",  # stripped, so it needs one character that is not whitespace
        description="The user's message",
    )
    session_id: str | None = Field(
        default=None, pattern=SESSION_ID_PATTERN, description="Continue this session; omit to start one"
    )
    stream: bool = Field(
        default=False,
        description=(
            "true: answer 200 text/event-stream, the reply as the model writes it (events start, "
            "delta…, then done or error); false: one JSON answer once the reply is complete"
        ),
    )


class TokenCount(BaseModel):
    input: int
    output: int


class ChatAnswer(BaseModel):
    response: str
    session_id: str
    model: str
    tokens: TokenCount


class ChatStreamStart(BaseModel):
    """``event: start``: the stream's first event, sent before the model writes."""

    session_id: str
    model: str


class ChatStreamDelta(BaseModel):
    """``event: delta``: the next piece of the reply, as the model writes it."""

    text: str


class ChatStreamDone(BaseModel):
    """``event: done``: the last event of a turn that was stored; its tokens were metered."""

    session_id: str
    model: str
    tokens: TokenCount
    stop_reason: str = Field(description="Why the model stopped: end_turn, max_tokens, stop_sequence…")


class SessionInfo(BaseModel):
    session_id: str
    title: str
    turns: int
    model: str
    created_at: str
    updated_at: str


class SessionPage(BaseModel):
    sessions: list[SessionInfo]
    next_token: str | None


class ChatMessage(BaseModel):
    role: Literal["user", "assistant"]
    content: str
    created_at: str


class SessionDetail(BaseModel):
    session: SessionInfo
    messages: list[ChatMessage]
    next_token: str | None


class SessionDeleted(BaseModel):
    session_id: str
    items_deleted: int
