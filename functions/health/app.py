"""GET /health and GET /ready: no authentication. Logic: tenantry.health."""

from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel

from tenantry import health, http
from tenantry.observability import logger, metrics, tracer

app = http.create_resolver()


class Health(BaseModel):
    status: str
    components: dict[str, dict[str, Any]]


class Ready(BaseModel):
    ready: bool


@app.get(
    "/health",
    tags=["health"],
    responses=http.healthy_or_not(Health),
    summary="Check health",
    description=(
        "Whether the API reaches DynamoDB, with the probe's latency; 503 when it does not. Needs no key."
    ),
)
def get_health() -> Response[Health]:
    dynamodb = health.check_dynamodb()
    healthy = dynamodb["status"] == "healthy"
    body = Health(status="healthy" if healthy else "unhealthy", components={"dynamodb": dynamodb})
    return Response(status_code=200 if healthy else 503, content_type=http.JSON, body=body)


@app.get(
    "/ready",
    tags=["health"],
    responses=http.healthy_or_not(Ready),
    summary="Check readiness",
    description="Whether the API is ready to serve requests; 503 when it is not. Needs no key.",
)
def get_ready() -> Response[Ready]:
    ready = health.check_dynamodb()["status"] == "healthy"
    return Response(status_code=200 if ready else 503, content_type=http.JSON, body=Ready(ready=ready))


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any] | None:
    return http.run(app, event, context)
