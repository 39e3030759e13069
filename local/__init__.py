"""The local stack, never deployed: the template reader, the embedded AWS (moto's server and the
rules and faults it adds) and the local API Gateway. Installed as the top-level ``local`` package
(dev tooling only); the ``tenantry`` command that starts it lives in ``tenantry_cli``."""

import os

# Lambda's Python runtime has no awscrt, so botocore signs there with its pure-Python SigV4. The
# dev tools pull awscrt in (sam's dependency), which would make the local stack's handlers sign
# another way (and more slowly, per request body). Set before botocore is first imported.
os.environ.setdefault("BOTO_DISABLE_CRT", "true")
