"""Developer tooling that is never deployed: the template reader, the embedded DynamoDB, the local
gateway and the ``tenantry`` CLI. Installed as the top-level ``local`` package (dev tooling only)."""

import os

# Lambda's Python runtime has no awscrt, so botocore signs there with its pure-Python SigV4. The
# dev tools pull awscrt in (sam's dependency), which would make the local stack's handlers sign
# another way (and more slowly, per request body). Set before botocore is first imported.
os.environ.setdefault("BOTO_DISABLE_CRT", "true")
