"""Developer tooling that is never deployed: the template reader, the embedded DynamoDB, the local
gateway and the ``tenantry`` CLI. Installed as the top-level ``local`` package (dev tooling only)."""
