"""The one error body every answer other than 2xx carries: ours, and API Gateway's own through the
template's GatewayResponses. Used for the OpenAPI document; the HTTP glue writes the same keys."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class FieldError(BaseModel):
    field: str = Field(description="Dotted path of the offending field, e.g. `config.max_messages`")
    message: str
    type: str = Field(description="A stable code for the kind of problem, e.g. `missing`, `too_deep`")


class ErrorBody(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "message": "Invalid request: tier",
                    "error": "validation_error",
                    "request_id": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
                    "field": "tier",
                    "errors": [{"field": "tier", "message": "Field required", "type": "missing"}],
                }
            ]
        }
    )

    message: str | None = Field(
        description="Human-readable; API Gateway's own text on its answers (null on an authorizer failure)"
    )
    error: str = Field(description="A stable code, e.g. `not_found`, `validation_error`, `throttled`")
    request_id: str = Field(description="The request's id; also the `x-amzn-RequestId` header")
    field: str | None = Field(
        default=None,
        description="The field the error is about (the first of `errors`); present exactly when `errors` is",
    )
    errors: list[FieldError] | None = Field(
        default=None,
        description="Every field at fault, each with its own message; present exactly when `field` is",
    )
    current_position: int | None = Field(
        default=None,
        description="On 409 `wrong_expected_position` only: the stream's last position now (0: empty)",
    )
