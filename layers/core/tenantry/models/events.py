"""Models of the event store: what a tenant publishes, reads back, and checkpoints."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, GetJsonSchemaHandler, field_validator
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from tenantry.models.numbers import IntegralNumbers

EVENT_TYPE_PATTERN = r"^[A-Za-z0-9_.:-]{1,128}$"
CONSUMER_NAME_PATTERN = r"^[A-Za-z0-9_.:-]{1,128}$"
# The largest integer every JSON parser holds exactly (JavaScript's, and validators that read
# numbers as doubles); DynamoDB numbers stop at 38 digits, so an unbounded one would be a store error.
MAX_POSITION = 2**53 - 1
POSITION_PATTERN = r"^[1-9][0-9]{0,18}$"  # canonical decimal only: not " 1", "+1" or "01"
POSITION_OR_ZERO_PATTERN = r"^(0|[1-9][0-9]{0,15})$"  # a Last-Event-ID: 0 is "nothing received yet"
MAX_BATCH = 99  # a transaction holds 100 items: the events and the HEAD update


class _Request(IntegralNumbers):
    # strict: a boolean is never taken for an integer (``{"position": true}`` is not 1), nor a
    # number with a fraction (``7.0`` is 7, as JSON Schema reads it: IntegralNumbers).
    model_config = ConfigDict(extra="forbid", strict=True)


class EventIn(_Request):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"type": "order.placed", "data": {"order_id": "o-1", "total": 42}}]}
    )

    type: Annotated[str, Field(pattern=EVENT_TYPE_PATTERN, description="1-128 of [A-Za-z0-9_.:-]")]
    data: dict[str, Any] = Field(description="Any JSON object")
    timestamp: str | None = Field(
        default=None,
        description="RFC 3339 with an offset; default: now",
        json_schema_extra={"format": "date-time"},
    )

    @field_validator("timestamp")
    @classmethod
    def _rfc3339(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            moment = datetime.fromisoformat(value)
        except ValueError as exc:
            raise ValueError("must be an RFC 3339 date-time, e.g. 2026-11-24T10:00:00Z") from exc
        if "T" not in value.upper() or moment.tzinfo is None:
            raise ValueError("must be an RFC 3339 date-time with a time and an offset (Z or ±hh:mm)")
        return iso_utc(moment)


_EXPECTED_POSITION_DESCRIPTION = (
    "Append only if the stream's last position is this (0: an empty stream); otherwise 409"
    " `wrong_expected_position` with `current_position`, and nothing is stored"
)


def _expected_position() -> Any:
    return Field(default=None, ge=0, le=MAX_POSITION, description=_EXPECTED_POSITION_DESCRIPTION)


class SingleEventIn(EventIn):
    """One event published on its own, optionally conditioned on the stream's last position."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"type": "order.placed", "data": {"order_id": "o-1", "total": 42}, "expected_position": 0}
            ]
        }
    )

    expected_position: int | None = _expected_position()


class EventBatch(_Request):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "events": [
                        {"type": "order.placed", "data": {"order_id": "o-1"}},
                        {"type": "order.paid", "data": {}},
                    ]
                }
            ]
        }
    )

    events: list[EventIn] = Field(min_length=1, max_length=MAX_BATCH)
    expected_position: int | None = _expected_position()


class _OneEventOrBatch:
    """Documents ``POST /events``'s body as a typed oneOf while it is validated as a plain object,
    so the event store's own parsing names the field (``events.3.type``) in its 422."""

    @classmethod
    def __get_pydantic_json_schema__(
        cls, _core: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {
            "oneOf": [
                handler(SingleEventIn.__pydantic_core_schema__),
                handler(EventBatch.__pydantic_core_schema__),
            ],
            "description": 'One event {"type", "data", "timestamp"?, "expected_position"?} or a batch'
            ' {"events": [...], "expected_position"?} of 1-99',
        }


PublishBody = Annotated[dict[str, Any], _OneEventOrBatch]


class Published(BaseModel):
    position: int


class PublishedBatch(BaseModel):
    positions: list[int]


class Event(BaseModel):
    position: int
    type: str
    data: dict[str, Any]
    timestamp: str
    recorded_at: str


class EventPage(BaseModel):
    events: list[Event]
    next_from: int | None = Field(
        description="The `from` of the next page; null at the end of the stream (or of the range up to"
        " `to`). A page may end"
        " early (its size in bytes, or the items a type filter examined) with fewer events than"
        " `limit`, even none: follow `next_from` until it is null"
    )


class StreamEnd(BaseModel):
    """A subscription's last event: where to resume."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"next_from": 43}]})

    next_from: int = Field(
        description="The position to resume from: reconnect with `from` this, or with `Last-Event-ID`"
        " one less (the `end` event's own `id`, which an EventSource sends by itself)"
    )


class StreamMetrics(BaseModel):
    tenant: str
    total_events: int
    timestamp: int


class CheckpointIn(_Request):
    model_config = ConfigDict(json_schema_extra={"examples": [{"position": 1}]})

    position: int = Field(ge=0, le=MAX_POSITION, description="The last position this consumer has processed")


class Checkpoint(BaseModel):
    name: str
    position: int
    updated_at: str


def iso_utc(moment: datetime) -> str:
    """``2026-11-24T10:00:00.123Z``: one sortable form for every stored instant."""
    text = moment.astimezone(UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")
