"""CloudWatch Logs subscription of the stage's access log → per-tenant usage. Logic: tenantry.metering."""

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from tenantry import deadline, metering
from tenantry.observability import logger, metrics, tracer


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, int]:
    batch_id, lines = metering.decode_subscription(event)
    with deadline.budget(context):
        result = metering.ingest_lines(lines, batch_id=batch_id)
    logger.info("access-log batch metered", extra=result)
    metrics.add_metric(name="MeteredLines", unit=MetricUnit.Count, value=result["metered"])
    # Published only when there are some: a metric is billed for the hours it is sent in, and the
    # stage's own lines are never malformed unless its format and the parser part ways.
    if result["skipped_malformed"]:
        metrics.add_metric(name="MalformedLines", unit=MetricUnit.Count, value=result["skipped_malformed"])
    return result
