"""The operator and developer command ``tenantry``: drives the admin API of a local or deployed
stack (tenants, keys, usage, logs, metering replay, admin keys) and starts the local stack
(``tenantry dev``, ``tenantry invoke``), which lives in ``local/``."""

# Imported first so its BOTO_DISABLE_CRT setting is in place before any command loads botocore.
import local  # noqa: F401
