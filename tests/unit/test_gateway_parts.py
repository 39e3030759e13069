"""The local gateway's parts in isolation: policies, caches, buckets, quotas, parsing, intrinsics."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from local.gateway.accesslog import MAX_FLUSH_SECONDS, METERING_SHARE, next_flush_wait, render
from local.gateway.api import Route, TemplateError, _preflights, check_parameters, load_api
from local.gateway.auth import AuthorizerCache, AuthorizerFailedError, AuthorizerResult
from local.gateway.intrinsics import LocalNames, Resolver, UnsupportedIntrinsicError
from local.gateway.plans import KeyBinding, UsagePlans

STAGE = "arn:aws:execute-api:us-east-1:123456789012:api0000000/v1"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _result(*statements: dict[str, Any]) -> AuthorizerResult:
    return AuthorizerResult.parse(
        {"principalId": "acme", "policyDocument": {"Version": "2012-10-17", "Statement": list(statements)}}
    )


# ------------------------------------------------------------------------------ authorizer answers


@pytest.mark.parametrize(
    "answer",
    [
        None,
        {"principalId": "x"},
        {"principalId": "x", "policyDocument": {"Statement": "nope"}},
        {"policyDocument": {"Statement": []}},
        {"principalId": "x", "policyDocument": {"Statement": []}, "context": {"nested": {"a": 1}}},
        {"principalId": "x", "policyDocument": {"Statement": []}, "context": ["list"]},
    ],
)
def test_unusable_authorizer_answers_are_failures(answer: Any) -> None:
    with pytest.raises(AuthorizerFailedError):
        AuthorizerResult.parse(answer)


def test_context_values_become_strings() -> None:
    result = AuthorizerResult.parse(
        {
            "principalId": "acme",
            "policyDocument": {"Statement": []},
            "context": {"flag": True, "count": 3},
            "usageIdentifierKey": "k" * 30,
        }
    )
    assert result.context == {"flag": "true", "count": "3"}
    assert result.usage_identifier_key == "k" * 30


def test_explicit_deny_beats_allow() -> None:
    result = _result(
        {"Effect": "Allow", "Action": "execute-api:Invoke", "Resource": [f"{STAGE}/*/*"]},
        {"Effect": "Deny", "Action": "execute-api:Invoke", "Resource": [f"{STAGE}/*/tenants/*"]},
    )
    assert result.decide(f"{STAGE}/GET/me") == "allow"
    assert result.decide(f"{STAGE}/DELETE/tenants/acme") == "explicit_deny"
    assert result.decide(f"{STAGE}/GET/tenants") == "allow"  # no "/*" after tenants: not matched


def test_no_matching_allow_is_an_implicit_deny() -> None:
    result = _result({"Effect": "Allow", "Action": "execute-api:*", "Resource": f"{STAGE}/GET/m?"})
    assert result.decide(f"{STAGE}/GET/me") == "allow"
    assert result.decide(f"{STAGE}/GET/mee") == "implicit_deny"
    assert result.decide(f"{STAGE}/POST/me") == "implicit_deny"


def test_a_statement_for_another_action_is_ignored() -> None:
    result = _result({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"})
    assert result.decide(f"{STAGE}/GET/me") == "implicit_deny"


def test_cache_entries_expire_at_their_ttl_and_flush() -> None:
    clock = FakeClock()
    cache = AuthorizerCache(clock)
    result = _result()
    cache.put("auth", ("key",), result, ttl=300)
    cache.put("auth", ("off",), result, ttl=0)
    assert cache.get("auth", ("key",)) is result
    assert cache.get("auth", ("off",)) is None  # ReauthorizeEvery 0 disables caching
    clock.now += 299
    assert cache.get("auth", ("key",)) is result
    clock.now += 1
    assert cache.get("auth", ("key",)) is None
    cache.put("auth", ("key",), result, ttl=300)
    assert cache.flush() == 1
    assert cache.get("auth", ("key",)) is None


# ------------------------------------------------------------------------------ usage plans


def _binding(**changes: Any) -> KeyBinding:
    values: dict[str, Any] = {
        "key_id": "k1",
        "enabled": True,
        "plan_id": "basic",
        "rate_per_second": 0.5,
        "burst": 2,
        "quota_limit": 100,
        "quota_period": "MONTH",
    }
    values.update(changes)
    return KeyBinding(**values)


def test_bucket_allows_the_burst_then_refills_at_the_rate() -> None:
    clock = FakeClock()
    plans = UsagePlans(lambda: {"value": _binding()}, clock=clock)
    assert [plans.admit("value")[0] for _ in range(3)] == ["ok", "ok", "throttled"]
    clock.now += 1.0  # half a token at 0.5/s
    assert plans.admit("value")[0] == "throttled"
    clock.now += 1.0
    assert plans.admit("value")[0] == "ok"


def test_quota_is_per_period_and_resets_with_the_next_one(tmp_path: Path) -> None:
    moment = [datetime(2026, 11, 30, 23, 0, tzinfo=UTC)]
    state = tmp_path / "quota.json"
    plans = UsagePlans(
        lambda: {"value": _binding(quota_limit=2, burst=100, rate_per_second=100.0)},
        state_file=state,
        calendar=lambda: moment[0],
    )
    assert [plans.admit("value")[0] for _ in range(3)] == ["ok", "ok", "quota_exceeded"]
    # The counters survive a restart
    plans.save()
    restarted = UsagePlans(
        lambda: {"value": _binding(quota_limit=2, burst=100, rate_per_second=100.0)},
        state_file=state,
        calendar=lambda: moment[0],
    )
    assert restarted.admit("value")[0] == "quota_exceeded"
    moment[0] = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)
    assert restarted.admit("value")[0] == "ok"


@pytest.mark.parametrize(
    "bindings", [{}, {"value": _binding(enabled=False)}, {"value": _binding(plan_id=None)}]
)
def test_unknown_disabled_or_planless_keys_are_forbidden(bindings: dict[str, KeyBinding]) -> None:
    plans = UsagePlans(lambda: bindings)
    assert plans.admit("value")[0] == "forbidden"
    assert plans.admit(None)[0] == "forbidden"


def test_invalidate_reloads_the_bindings() -> None:
    current = {"value": _binding(enabled=False)}
    plans = UsagePlans(lambda: dict(current))
    assert plans.admit("value")[0] == "forbidden"
    current["value"] = _binding()
    assert plans.admit("value")[0] == "forbidden"  # cached view until told
    plans.invalidate()
    assert plans.admit("value")[0] == "ok"


# ------------------------------------------------------------------------------ access log


def test_access_log_renders_dashes_and_escapes_values() -> None:
    line = render(
        '{"a":"$context.requestId","b":"$context.authorizer.tenant_id","c":"$context.error.responseType"}',
        {"requestId": 'r"1', "authorizer.tenant_id": "acme"},
    )
    assert line == '{"a":"r\\"1","b":"acme","c":"-"}'


def test_request_time_is_api_gateways_clf_text_in_the_log_and_the_event() -> None:
    # Given a request received at 2026-03-05 07:08:09.250 UTC
    from local.gateway.accesslog import context_values
    from local.gateway.exchange import new_exchange

    exchange = new_exchange("GET", "/me")
    exchange.epoch_ms = 1_772_694_489_250
    # When the access log's $context.requestTime is rendered
    line = render('{"t":"$context.requestTime"}', context_values(exchange, 200, "v1"))
    # Then it is CLF-formatted in UTC, as API Gateway writes it (and the proxy event's is the same)
    assert line == '{"t":"05/Mar/2026:07:08:09 +0000"}'
    assert exchange.request_time == "05/Mar/2026:07:08:09 +0000"


# ------------------------------------------------------------------------------ HTTP parsing


def test_metering_flushes_are_spaced_by_what_the_last_one_cost() -> None:
    # A quiet stack flushes at its interval; a flush that cost more is followed by a longer wait,
    # proportionally, up to the cap
    assert next_flush_wait(0.001, 0.5) == 0.5
    assert next_flush_wait(0.05, 0.5) == pytest.approx(0.05 * METERING_SHARE)
    assert next_flush_wait(0.05 * METERING_SHARE, 0.5) == MAX_FLUSH_SECONDS


# ------------------------------------------------------------------------------ template


def test_intrinsics_resolve_to_local_names() -> None:
    template = {
        "Parameters": {"Mode": {"Type": "String", "Default": "PER_TENANT"}},
        "Conditions": {"Isolated": {"Fn::Equals": [{"Ref": "Mode"}, "PER_TENANT"]}},
        "Mappings": {"Tiers": {"basic": {"BurstLimit": 10}}},
        "Resources": {
            "Table": {"Type": "AWS::DynamoDB::Table"},
            "Fn": {"Type": "AWS::Serverless::Function"},
        },
    }
    resolver = Resolver(template, LocalNames(stack_name="s", api_id="api1"))
    assert resolver.env_value({"Ref": "Table"}) == "s-Table"
    assert resolver.env_value({"Fn::Sub": "${AWS::StackName}-${Table.Arn}"}) == (
        "s-arn:aws:dynamodb:us-east-1:123456789012:table/s-Table"
    )
    assert resolver.env_value({"Fn::FindInMap": ["Tiers", "basic", "BurstLimit"]}) == "10"
    assert resolver.env_value({"Fn::Join": ["-", ["a", {"Ref": "AWS::Region"}]]}) == "a-us-east-1"
    assert resolver.env_value({"Fn::GetAtt": ["Fn", "Arn"]}).endswith(":function:s-Fn")
    # Conditions evaluate with the parameters' defaults; an If's NoValue branch resolves to nothing
    assert resolver.env_value({"Fn::If": ["Isolated", "yes", "no"]}) == "yes"
    assert resolver.resolve({"Fn::Not": [{"Condition": "Isolated"}]}) is False
    assert resolver.resolve({"Fn::If": ["Isolated", {"Ref": "AWS::NoValue"}, "b"]}) is None
    with pytest.raises(UnsupportedIntrinsicError, match="Fn::Base64"):
        resolver.env_value({"Fn::Base64": "a"})
    with pytest.raises(UnsupportedIntrinsicError, match="condition c"):
        resolver.env_value({"Fn::If": ["c", "a", "b"]})
    with pytest.raises(UnsupportedIntrinsicError, match="Missing"):
        resolver.env_value({"Ref": "Missing"})


def test_routes_come_from_the_template_and_literals_beat_parameters() -> None:
    api = load_api()
    matched = api.match("GET", "/tenants/acme/keys")
    assert matched is not None
    route, params = matched
    assert (route.path, params) == ("/tenants/{tenant_id}/keys", {"tenant_id": "acme"})
    me = api.match("GET", "/me")
    assert me is not None and me[0].authorizer == "ApiKeyAuthorizer" and me[0].api_key_required
    health = api.match("GET", "/health")
    assert health is not None and health[0].authorizer is None
    assert api.match("GET", "/nowhere") is None
    assert api.authorizers["ApiKeyAuthorizer"].ttl_seconds == 300
    assert api.authorizers["ApiKeyAuthorizer"].identity_headers == ("X-API-Key",)
    assert api.api_key_source == "AUTHORIZER"
    assert api.functions["TenantsFunction"].env["TENANTS_TABLE"] == "tenantry-local-TenantsTable"


# ------------------------------------------------------------------------------ CORS (SAM's Cors)


def test_the_preflight_headers_follow_the_origin_parameter() -> None:
    # Given the template with CorsAllowOrigin empty (the default), then set
    default = load_api()
    configured = load_api(names=LocalNames(parameters={"CorsAllowOrigin": "http://localhost:5173"}))
    # Then OPTIONS on any resource is API Gateway's own preflight, before the authorizer
    for api in (default, configured):
        for path in ("/me", "/events/7", "/tenants/acme/keys/k1"):
            matched = api.match("OPTIONS", path)
            assert matched is not None and matched[0].preflight is not None, path
            assert matched[0].authorizer is None and not matched[0].api_key_required
        assert api.match("OPTIONS", "/nowhere") is None
    # And with the default it carries no CORS header, with the origin set it carries SAM's four
    assert default.match("OPTIONS", "/me")[0].preflight == ()  # type: ignore[index]
    assert dict(configured.match("OPTIONS", "/me")[0].preflight or ()) == {  # type: ignore[index]
        "Access-Control-Allow-Origin": "http://localhost:5173",
        "Access-Control-Allow-Headers": "Content-Type,X-API-Key,Idempotency-Key,X-User-Id",
        "Access-Control-Allow-Methods": "DELETE,GET,OPTIONS,PATCH,POST,PUT",
        "Access-Control-Max-Age": "600",
    }

    # And every gateway response carries the origin only when it is set (beside its own static
    # headers: THROTTLED's Retry-After)
    def origins(api: Any) -> list[str | None]:
        specs = api.gateway_responses.values()
        return [dict(spec.headers).get("Access-Control-Allow-Origin") for spec in specs]

    assert set(origins(default)) == {None}
    assert set(origins(configured)) == {"http://localhost:5173"}


def test_sam_cors_without_allow_methods_lists_each_resources_methods() -> None:
    # Given routes on two resources, one with ANY and one with its own OPTIONS, and a bare origin
    resolver = Resolver({}, LocalNames())
    routes = [
        Route("GET", "/a", "F", None, False, None, (), (2,)),
        Route("POST", "/a", "F", None, False, None, (), (2,)),
        Route("ANY", "/b", "F", None, False, None, (), (2,)),
        Route("OPTIONS", "/c", "F", None, False, None, (), (2,)),
        Route("GET", "/c", "F", None, False, None, (), (2,)),
    ]
    preflights = {route.path: dict(route.preflight or ()) for route in _preflights(resolver, "'*'", routes)}
    # Then, as SAM generates them: the resource's methods plus OPTIONS, every method under ANY,
    # and a resource's own OPTIONS method left alone
    assert preflights == {
        "/a": {"Access-Control-Allow-Origin": "*", "Access-Control-Allow-Methods": "GET,OPTIONS,POST"},
        "/b": {
            "Access-Control-Allow-Origin": "*",
            "Access-Control-Allow-Methods": "DELETE,GET,HEAD,OPTIONS,PATCH,POST,PUT",
        },
    }
    # And a value API Gateway would not take as static (unquoted) is refused at load
    with pytest.raises(TemplateError, match="AllowOrigin"):
        _preflights(resolver, {"AllowOrigin": "https://x.example"}, routes)


@pytest.mark.parametrize(
    ("assignment", "message"),
    [
        ("CorsAllowOrigin", "expected NAME=VALUE"),
        ("NoSuchParameter=1", "NoSuchParameter is not a parameter of template.yaml"),
        ("Tracing=Sometimes", "expected one of Active, PassThrough"),
        ("CorsAllowOrigin=app.example.com", "does not match"),
        ("CorsAllowOrigin=https://app.example.com/", "does not match"),
    ],
)
def test_parameters_are_checked_like_cloudformation_does(assignment: str, message: str) -> None:
    with pytest.raises(TemplateError, match=message):
        check_parameters([assignment])


def test_parameters_the_template_accepts() -> None:
    assert check_parameters(["CorsAllowOrigin=*", "Tracing=PassThrough"]) == {
        "CorsAllowOrigin": "*",
        "Tracing": "PassThrough",
    }
    assert check_parameters(["CorsAllowOrigin=http://localhost:5173"]) == {
        "CorsAllowOrigin": "http://localhost:5173"
    }
