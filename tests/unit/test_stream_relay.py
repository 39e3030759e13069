"""The local gateway's relay of a streamed invocation (local/gateway/integration.py's StreamRelay):
the prelude API Gateway reads first, then API Gateway's limits on a stream (its integration
timeout, its idle timeout), and the end of the stream with the function's."""

from __future__ import annotations

import json
import time

from local.gateway.exchange import new_exchange
from local.gateway.integration import MAX_PRELUDE_BYTES, STREAM_DELIMITER, StreamRelay
from local.gateway.sandbox import FunctionError, Streamed
from local.gateway.server import ResponseStream

PRELUDE = json.dumps({"statusCode": 201, "headers": {"Content-Type": "text/event-stream"}}).encode()


def relay(idle_seconds: float = 300.0) -> StreamRelay:
    return StreamRelay(new_exchange("POST", "/chat"), idle_seconds=idle_seconds)


def test_the_prelude_gives_the_status_and_headers_and_the_rest_is_the_body() -> None:
    # Given the prelude arrives in two pieces, the delimiter and a first piece of body with the second
    streamed = relay()
    assert streamed.chunk(PRELUDE[:10])
    assert streamed.answer() is None and not streamed.ready.is_set()
    assert streamed.chunk(PRELUDE[10:] + STREAM_DELIMITER + b"event: start\n")
    # Then the answer has the prelude's status and headers, and a stream holding the body so far
    answer = streamed.answer()
    assert answer is not None and answer.status == 201
    assert ("Content-Type", "text/event-stream") in answer.headers
    assert any(name == "x-amzn-RequestId" for name, _ in answer.headers)
    assert isinstance(answer.body, ResponseStream)
    assert answer.body._take() == ([b"event: start\n"], False)
    # And the stream ends when the function does
    streamed.function_ended(None, Streamed(), "ChatFunction")
    assert answer.body._take() == ([], True)
    assert not answer.body.aborted


def test_no_prelude_within_16_kb_is_no_answer() -> None:
    streamed = relay()
    assert not streamed.chunk(b"x" * (MAX_PRELUDE_BYTES + 1))
    assert streamed.ready.is_set() and streamed.answer() is None
    assert "16384" in streamed.problem


def test_a_malformed_prelude_is_no_answer() -> None:
    streamed = relay()
    assert not streamed.chunk(b"{not json" + STREAM_DELIMITER)
    assert streamed.answer() is None
    assert streamed.problem.startswith("malformed prelude")


def test_a_stream_silent_past_the_idle_limit_is_cut() -> None:
    streamed = relay(idle_seconds=0.1)
    streamed.chunk(PRELUDE + STREAM_DELIMITER)
    answer = streamed.answer()
    assert answer is not None and isinstance(answer.body, ResponseStream)
    assert streamed.tick()  # not silent long enough yet
    time.sleep(0.2)
    streamed.tick()
    assert answer.body.aborted


def test_a_stream_past_the_integration_timeout_is_cut() -> None:
    streamed = relay()
    streamed.start_clock(0.1)
    streamed.chunk(PRELUDE + STREAM_DELIMITER)
    answer = streamed.answer()
    assert answer is not None and isinstance(answer.body, ResponseStream)
    time.sleep(0.2)
    streamed.chunk(b"late")
    streamed.tick()
    assert answer.body.aborted


def test_a_function_that_fails_mid_stream_cuts_it_off() -> None:
    streamed = relay()
    streamed.chunk(PRELUDE + STREAM_DELIMITER + b"partial")
    answer = streamed.answer()
    assert answer is not None and isinstance(answer.body, ResponseStream)
    streamed.function_ended(FunctionError({"errorType": "RuntimeError"}), None, "ChatFunction")
    assert answer.body.aborted


def test_a_function_that_answers_buffered_on_a_stream_route_has_no_prelude() -> None:
    streamed = relay()
    streamed.function_ended(None, {"statusCode": 200, "body": "{}"}, "ChatFunction")
    assert streamed.ready.is_set() and streamed.answer() is None
    assert streamed.problem == "a buffered answer"
