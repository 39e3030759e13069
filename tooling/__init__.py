"""Build and test tooling, never deployed and not part of the local stack: the SAM transform run
offline (``sam_translate``), the IAM policy evaluator of the IAM test tier (``iam_policy``) and the
OpenAPI generator (``openapi``)."""
