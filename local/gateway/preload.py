"""Imported by the sandboxes' fork server only (``runtime.PRELOAD``): what every sandbox would load
on its own first call, loaded once and shared by every sandbox forked afterwards.

Creating a boto3 client reads the service's model, the endpoint rules and the partitions from
botocore's data files into the default session's loader; a function does it on its first call,
inside its Timeout. Eight sandboxes doing it at once on two cores took seconds each (an authorizer
passed its 5 s Timeout). A client is created here for each service the functions call, with throw-
away credentials and no network call, so the default session each sandbox inherits has it all
loaded; its credentials and region are still resolved from the sandbox's own env on first use.
"""

from __future__ import annotations

import boto3

SERVICES = ("dynamodb", "sts", "apigateway", "ssm", "sqs", "scheduler", "logs")

_NOWHERE = {
    "region_name": "us-east-1",
    "endpoint_url": "http://127.0.0.1:9",
    "aws_access_key_id": "preload",
    "aws_secret_access_key": "preload",  # never sent anywhere
}
for _service in SERVICES:
    boto3.client(_service, **_NOWHERE)  # type: ignore[call-overload]
boto3.resource("dynamodb", **_NOWHERE)  # type: ignore[call-overload]
