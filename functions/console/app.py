"""GET /console: the operator console (a static page, its script and stylesheet); no key needed.

The page asks the operator for the admin key and calls the admin API from the browser, so serving
it needs no key and no table: this function reads its own files and nothing else.
"""

from pathlib import Path
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path as PathParam
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from tenantry import console, http
from tenantry.observability import logger, metrics, tracer

app = http.create_resolver()
CONSOLE = console.load(Path(__file__).parent / "static")


def _answer(static: console.StaticFile) -> Response[str]:
    return Response(
        status_code=200, content_type=static.content_type, body=static.body, headers=static.headers
    )


def _html(description: str) -> dict[int, Any]:
    return {200: {"description": description, "content": {console.PAGE_TYPE: {"schema": {"type": "string"}}}}}


@app.get(
    "/console",
    tags=["console"],
    responses=_html("The operator console (HTML)"),
    summary="Open the operator console",
    description=(
        "The operator console's HTML page; it asks for an admin key in the browser and calls the admin "
        "API with it."
    ),
)
def page() -> Response[str]:
    return _answer(CONSOLE.page)


@app.get(
    "/console/<asset>",
    tags=["console"],
    responses={
        200: {
            "description": "The console's script, stylesheet or icon",
            "content": {
                media_type: {"schema": {"type": "string"}} for media_type in console.ASSET_TYPES.values()
            },
        }
    },
    summary="Fetch a console asset",
    description="The console's script, stylesheet or icon (SVG).",
)
def asset(asset: Annotated[str, PathParam(pattern=r"^(console\.(js|css)|favicon\.svg)$")]) -> Response[str]:
    return _answer(CONSOLE.asset(asset))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any] | None:
    return http.run(app, event, context)
