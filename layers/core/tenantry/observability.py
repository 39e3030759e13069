"""Powertools Logger, Tracer and Metrics, configured once for every function.

Logger lines are JSON and carry tenant_id, tier and the correlation id once :func:`bind_caller`
ran. Keys, key hashes and message bodies are never logged. Metrics carry one dimension, the tier
(each distinct dimension set is a billed custom metric); per-route and per-tenant numbers come from
the access log and live in the Usage table.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer

# The service name comes from POWERTOOLS_SERVICE_NAME, which the template sets per function.
logger = Logger(use_rfc3339=True)
tracer = Tracer()
# No service: Powertools would add it as a dimension; the tier is the only one (http.run).
metrics = Metrics(namespace="Tenantry", service="")
