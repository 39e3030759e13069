"""The embedded DynamoDB's shortcuts around moto (local/fastlane.py) answer exactly as moto does:
expression text cached, names, values and items still resolved per request."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from local.embedded import EmbeddedAws
from local.template import REPO_ROOT, local_table_name

TABLE = local_table_name("UsageTable")


@pytest.fixture(scope="module")
def dynamodb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with EmbeddedAws(tmp_path_factory.mktemp("fastlane-home")) as server:
        yield server.client("dynamodb")


def _key(sort: str) -> dict[str, Any]:
    return {"tenant_id": {"S": "fastlane"}, "period": {"S": sort}}


def _item(dynamodb: Any, sort: str) -> dict[str, Any]:
    item: dict[str, Any] = dynamodb.get_item(TableName=TABLE, Key=_key(sort), ConsistentRead=True)["Item"]
    return {name: value for name, value in item.items() if name not in ("tenant_id", "period")}


def _error(call: Any, **kwargs: Any) -> str:
    with pytest.raises(ClientError) as raised:
        call(**kwargs)
    return str(raised.value.response["Error"]["Code"])


def test_one_condition_text_with_other_values_is_judged_on_each_requests_values(dynamodb: Any) -> None:
    # Given an item whose counter is 1
    dynamodb.put_item(TableName=TABLE, Item={**_key("head"), "last": {"N": "1"}})

    def advance(expected: int) -> None:
        dynamodb.update_item(
            TableName=TABLE,
            Key=_key("head"),
            UpdateExpression="SET #last = :new",
            ConditionExpression="#last = :expected",
            ExpressionAttributeNames={"#last": "last"},
            ExpressionAttributeValues={":new": {"N": str(expected + 1)}, ":expected": {"N": str(expected)}},
        )

    # When the same condition text is sent with the right value, then with a stale one, then right
    advance(1)
    stale = _error(advance, expected=1)
    advance(2)
    # Then each request was judged on its own values
    assert stale == "ConditionalCheckFailedException"
    assert _item(dynamodb, "head") == {"last": {"N": "3"}}
    # And the same text naming another attribute reads that attribute
    refused = _error(
        dynamodb.put_item,
        TableName=TABLE,
        Item={**_key("head"), "last": {"N": "9"}},
        ConditionExpression="attribute_not_exists(#p)",
        ExpressionAttributeNames={"#p": "period"},
    )
    assert refused == "ConditionalCheckFailedException"
    dynamodb.put_item(
        TableName=TABLE,
        Item={**_key("head"), "last": {"N": "9"}},
        ConditionExpression="attribute_not_exists(#p)",
        ExpressionAttributeNames={"#p": "no_such_attribute"},
    )
    assert _item(dynamodb, "head") == {"last": {"N": "9"}}


def test_one_update_text_applies_each_requests_names_values_and_item(dynamodb: Any) -> None:
    def add(sort: str, names: dict[str, str], values: tuple[int, int]) -> None:
        dynamodb.update_item(
            TableName=TABLE,
            Key=_key(sort),
            UpdateExpression="ADD #c0 :c0, #c1 :c1",
            ExpressionAttributeNames={"#c0": names["c0"], "#c1": names["c1"]},
            ExpressionAttributeValues={":c0": {"N": str(values[0])}, ":c1": {"N": str(values[1])}},
        )

    # When one update text adds to different attributes of different items, and again to the first
    add("x", {"c0": "a", "c1": "b"}, (1, 2))
    add("y", {"c0": "b", "c1": "c"}, (5, 7))
    add("x", {"c0": "a", "c1": "b"}, (10, 20))
    # Then each item holds exactly its own sums
    assert _item(dynamodb, "x") == {"a": {"N": "11"}, "b": {"N": "22"}}
    assert _item(dynamodb, "y") == {"b": {"N": "5"}, "c": {"N": "7"}}


def test_a_malformed_expression_is_refused_every_time(dynamodb: Any) -> None:
    for _ in range(2):
        assert (
            _error(
                dynamodb.update_item,
                TableName=TABLE,
                Key=_key("bad"),
                UpdateExpression="SET #a = ",
                ExpressionAttributeNames={"#a": "a"},
            )
            == "ValidationException"
        )


def test_the_user_agent_is_the_one_botocore_builds(dynamodb: Any) -> None:
    # Given the in-process transport installed (the fixture's embedded AWS) and botocore's own
    # sanitizer, unwrapped
    from botocore import useragent

    cached = useragent.sanitize_user_agent_string_component
    original = getattr(cached, "__wrapped__")  # noqa: B009 - lru_cache's, untyped
    # Then the memoized sanitizer answers what botocore's does, for allowed and replaced characters
    for text in ("Boto3/1.43", "md/arch#x86_64", "a b(c)", "é€", "lang/python#3.13.0"):
        for allow_hash in (True, False):
            assert cached(text, allow_hash) == original(text, allow_hash)
    # And the stack's process signs the way Lambda's runtime does (it has no awscrt)
    probe = "import tenantry_cli.main, botocore.compat; print(botocore.compat.HAS_CRT)"
    env = {name: value for name, value in os.environ.items() if name != "BOTO_DISABLE_CRT"}
    answer = subprocess.run(  # noqa: S603 - this interpreter, a fixed probe
        [sys.executable, "-c", probe], cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=True
    )
    assert answer.stdout.strip() == "False"


def test_an_update_with_functions_nested_paths_and_removal_runs_as_moto_runs_it(dynamodb: Any) -> None:
    # Given an item with a map, and one attribute to remove
    dynamodb.put_item(
        TableName=TABLE,
        Item={**_key("nested"), "m": {"M": {"k": {"N": "5"}}}, "gone": {"S": "x"}},
    )
    update = {
        "TableName": TABLE,
        "Key": _key("nested"),
        "UpdateExpression": (
            "SET #m.#k = if_not_exists(#m.#k, :zero) + :one, "
            "#l = list_append(if_not_exists(#l, :empty), :items) REMOVE #gone"
        ),
        "ExpressionAttributeNames": {"#m": "m", "#k": "k", "#l": "l", "#gone": "gone"},
        "ExpressionAttributeValues": {
            ":zero": {"N": "0"},
            ":one": {"N": "1"},
            ":empty": {"L": []},
            ":items": {"L": [{"S": "a"}]},
        },
    }
    # When the same update runs twice (the second from the cached syntax tree)
    dynamodb.update_item(**update)
    dynamodb.update_item(**update)
    # Then each run resolved the item as it was then
    assert _item(dynamodb, "nested") == {
        "m": {"M": {"k": {"N": "7"}}},
        "l": {"L": [{"S": "a"}, {"S": "a"}]},
    }


def test_an_update_shape_moto_refuses_is_refused_every_time_even_after_it_passed(dynamodb: Any) -> None:
    def update(names: dict[str, str], expression: str = "SET #a = :x, #b = :y") -> None:
        dynamodb.update_item(
            TableName=TABLE,
            Key=_key("shape"),
            UpdateExpression=expression,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues={":x": {"N": "1"}, ":y": {"N": "2"}},
        )

    # Given one update text that passed moto's checks with two distinct attributes
    update({"#a": "left", "#b": "right"})
    # When the same text names one attribute twice, and a text has two ADD clauses, each twice
    for _ in range(2):
        overlapping = _error(update, names={"#a": "same", "#b": "same"})
        two_clauses = _error(update, names={"#a": "left", "#b": "right"}, expression="ADD #a :x ADD #b :y")
        # Then each is refused as moto refuses it, every time
        assert overlapping == two_clauses == "ValidationException"
    # And the passing shape still applies
    update({"#a": "left", "#b": "right"})
    assert _item(dynamodb, "shape") == {"left": {"N": "1"}, "right": {"N": "2"}}
