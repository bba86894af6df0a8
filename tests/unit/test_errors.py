"""
Errors in OpenAI's shape: the constructors, the mapping from failures, and
the two ways an error reaches the client.
"""

import http.client
import io
import json

import pytest
from twisted.internet.defer import CancelledError
from twisted.logger import capturedLogs
from twisted.python.failure import Failure
from twisted.web.test.requesthelper import DummyRequest

from llmedge import errors
from llmedge.errors import APIError, error_from_failure, raw_response, reason_phrase, write_error


def test_body_is_exactly_openais_error_object():
    error = APIError(400, "bad", param="messages", code="invalid_value")
    assert json.loads(error.body()) == {
        "error": {
            "message": "bad",
            "type": "invalid_request_error",
            "param": "messages",
            "code": "invalid_value",
        }
    }


def test_body_has_null_param_and_code_when_absent():
    error = json.loads(APIError(400, "bad").body())["error"]
    assert (error["param"], error["code"]) == (None, None)


@pytest.mark.parametrize(
    "error,status,type_,code",
    [
        (errors.invalid_request("x", param="p", code="c"), 400, "invalid_request_error", "c"),
        (errors.not_found("x"), 404, "invalid_request_error", None),
        (errors.unknown_url(b"GET", b"/x"), 404, "invalid_request_error", "unknown_url"),
        (errors.model_not_found("m"), 404, "invalid_request_error", "model_not_found"),
        (errors.method_not_allowed(b"PUT", [b"GET"]), 405, "invalid_request_error",
         "method_not_allowed"),
        (errors.unsupported_media_type(None), 415, "invalid_request_error",
         "unsupported_media_type"),
        (errors.request_too_large(10), 413, "invalid_request_error", "request_too_large"),
        (errors.internal_error(), 500, "server_error", "internal_error"),
    ],
)
def test_constructor_status_type_and_code(error, status, type_, code):
    assert (error.status, error.type, error.code) == (status, type_, code)


def test_invalid_request_carries_its_param():
    assert errors.invalid_request("x", param="temperature").param == "temperature"


def test_unknown_url_is_worded_as_openai_words_it():
    assert errors.unknown_url(b"GET", b"/x").message == "Invalid URL (GET /x)"


def test_model_not_found_names_the_model_and_param():
    error = errors.model_not_found("gpt-5")
    assert "`gpt-5`" in error.message
    assert error.param == "model"


def test_method_not_allowed_sends_allow_header():
    error = errors.method_not_allowed(b"PUT", [b"GET", b"POST"])
    assert error.headers == ((b"Allow", b"GET, POST"),)
    assert "PUT" in error.message


@pytest.mark.parametrize(
    "got,shown", [(None, "no Content-Type"), ("text/plain", "Content-Type 'text/plain'")]
)
def test_unsupported_media_type_says_what_was_sent(got, shown):
    assert shown in errors.unsupported_media_type(got).message


def test_request_too_large_states_the_limit():
    assert "1024 bytes" in errors.request_too_large(1024).message


def test_error_from_failure_passes_api_errors_through():
    error = errors.invalid_request("x")
    assert error_from_failure(Failure(error)) is error


def test_unexpected_failure_is_a_bare_500():
    with capturedLogs():
        error = error_from_failure(Failure(RuntimeError("db password is hunter2")))
    assert (error.status, error.type) == (500, "server_error")
    assert "hunter2" not in error.message
    assert b"hunter2" not in error.body()


def test_unexpected_failure_is_logged_with_its_traceback():
    with capturedLogs() as events:
        error_from_failure(Failure(RuntimeError("boom")))
    assert [e["log_failure"].value.args for e in events if "log_failure" in e] == [("boom",)]


def test_cancellation_is_a_500_without_a_log_entry():
    with capturedLogs() as events:
        error = error_from_failure(Failure(CancelledError()))
    assert error.status == 500
    assert [e for e in events if "log_failure" in e] == []


class _Socket:
    def __init__(self, data: bytes) -> None:
        self._file = io.BytesIO(data)

    def makefile(self, *args, **kwargs):
        return self._file


def parse_raw(data: bytes) -> http.client.HTTPResponse:
    response = http.client.HTTPResponse(_Socket(data))
    response.begin()
    return response


def test_raw_response_is_a_parseable_http11_response():
    error = errors.request_too_large(10)
    response = parse_raw(raw_response(error))
    assert (response.version, response.status, response.reason) == (11, 413, "Request Entity Too Large")
    assert response.getheader("Content-Type") == "application/json"
    body = response.read()
    assert int(response.getheader("Content-Length")) == len(body)
    assert json.loads(body) == json.loads(error.body())


def test_raw_response_closes_the_connection():
    response = parse_raw(raw_response(errors.request_too_large(10)))
    assert response.getheader("Connection") == "close"


def test_raw_response_carries_error_and_extra_headers():
    error = errors.method_not_allowed(b"PUT", [b"POST"])
    response = parse_raw(raw_response(error, [(b"X-Request-Id", b"req_1")]))
    assert response.getheader("Allow") == "POST"
    assert response.getheader("X-Request-Id") == "req_1"


def fresh_request() -> DummyRequest:
    request = DummyRequest([b"v1"])
    request.startedWriting = 0  # as twisted.web.server.Request has
    return request


def test_write_error_sends_status_json_and_body():
    request = fresh_request()
    error = errors.method_not_allowed(b"PUT", [b"POST"])
    write_error(request, error)
    assert request.responseCode == 405
    headers = request.responseHeaders
    assert headers.getRawHeaders(b"Content-Type") == [b"application/json"]
    assert headers.getRawHeaders(b"Allow") == [b"POST"]
    body = b"".join(request.written)
    assert headers.getRawHeaders(b"Content-Length") == [b"%d" % len(body)]
    assert json.loads(body) == json.loads(error.body())
    assert request.finished == 1


def test_write_error_leaves_a_finished_request_alone():
    request = fresh_request()
    request.finish()
    write_error(request, errors.internal_error())
    assert (request.finished, request.written, request.responseCode) == (1, [], None)


def test_write_error_leaves_a_disconnected_request_alone():
    request = fresh_request()
    request._disconnected = True
    write_error(request, errors.internal_error())
    assert (request.finished, request.written, request.responseCode) == (0, [], None)


def test_write_error_after_writing_began_only_finishes():
    request = fresh_request()
    request.write(b"data: {}\n\n")
    request.startedWriting = 1
    write_error(request, errors.internal_error())
    assert request.written == [b"data: {}\n\n"]
    assert request.responseCode is None
    assert request.finished == 1


@pytest.mark.parametrize("status,phrase", [
    (200, b"OK"), (404, b"Not Found"), (429, b"Too Many Requests"),
    (431, b"Request Header Fields Too Large"), (599, b"Error"),
])
def test_every_status_has_its_standard_reason_phrase(status, phrase):
    assert reason_phrase(status) == phrase


def test_a_raw_429_names_its_reason():
    assert raw_response(APIError(429, "slow down")).startswith(b"HTTP/1.1 429 Too Many Requests\r\n")
