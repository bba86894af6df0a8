"""
Authentication: keys in either header, stored as hashes, 401s that never
repeat the key, and public paths.
"""

import pytest
from twisted.web.resource import Resource
from twisted.web.test.requesthelper import DummyRequest

from llmedge.keys import ApiKey, KeyRing
from llmedge.web.auth import Authenticated

from llmedge.keys import hash_key
from tests.unit.support import Harness

KEY = "sk-test-alpha"
CHAT = {"model": "mock", "messages": [{"role": "user", "content": "x"}]}


@pytest.fixture
def edge():
    return Harness({"AUTH_ENABLED": "true", "API_KEYS": f"{hash_key(KEY)},sk-plain-beta"})


def assert_401(response, code):
    assert response.status == 401
    assert response.header("www-authenticate").startswith("Bearer")
    error = response.json()["error"]
    assert error["type"] == "authentication_error"
    assert error["code"] == code
    return error


def test_bearer_key_is_accepted(edge):
    response = edge.request("GET", "/v1/models", headers={"Authorization": f"Bearer {KEY}"})
    assert response.status == 200


def test_x_api_key_is_accepted(edge):
    assert edge.request("GET", "/v1/models", headers={"x-api-key": KEY}).status == 200


def test_plain_configured_key_is_accepted(edge):
    response = edge.request("GET", "/v1/models", headers={"x-api-key": "sk-plain-beta"})
    assert response.status == 200


def test_bearer_scheme_is_case_insensitive(edge):
    response = edge.request("GET", "/v1/models", headers={"Authorization": f"bearer {KEY}"})
    assert response.status == 200


def test_missing_key_is_401_missing_api_key(edge):
    assert_401(edge.request("GET", "/v1/models"), "missing_api_key")


def test_empty_bearer_is_a_missing_key(edge):
    assert_401(edge.request("GET", "/v1/models", headers={"Authorization": "Bearer "}),
               "missing_api_key")


def test_wrong_key_is_401_invalid_api_key_without_echoing_it(edge):
    response = edge.request("GET", "/v1/models", headers={"x-api-key": "sk-wrong-secret"})
    assert_401(response, "invalid_api_key")
    assert b"sk-wrong-secret" not in response.body


def test_stored_hash_presented_as_a_key_is_refused(edge):
    response = edge.request("GET", "/v1/models", headers={"x-api-key": hash_key(KEY)})
    assert_401(response, "invalid_api_key")


def test_two_headers_naming_different_keys_are_refused(edge):
    response = edge.request("GET", "/v1/models", headers={
        "x-api-key": KEY, "Authorization": "Bearer sk-plain-beta"})
    error = assert_401(response, "invalid_api_key")
    assert KEY not in error["message"]


def test_two_headers_naming_the_same_key_are_fine(edge):
    response = edge.request("GET", "/v1/models", headers={
        "x-api-key": KEY, "Authorization": f"Bearer {KEY}"})
    assert response.status == 200


def test_basic_auth_alone_is_refused_with_a_hint(edge):
    response = edge.request("GET", "/v1/models", headers={"Authorization": "Basic eDp5"})
    assert "Bearer" in assert_401(response, "invalid_api_key")["message"]


@pytest.mark.parametrize("path", ["/health", "/health/live", "/health/ready"])
def test_health_is_public_by_default(edge, path):
    assert edge.request("GET", path).status == 200


def test_public_prefix_is_matched_by_segment(edge):
    assert_401(edge.request("GET", "/healthz"), "missing_api_key")


def test_unknown_paths_need_a_key_too(edge):
    assert_401(edge.request("GET", "/admin"), "missing_api_key")


def test_health_check_setting_protects_health():
    edge = Harness({"AUTH_ENABLED": "true", "API_KEYS": KEY, "AUTH_HEALTH_CHECK": "true"})
    assert_401(edge.request("GET", "/health"), "missing_api_key")
    assert edge.request("GET", "/health", headers={"x-api-key": KEY}).status == 200


def test_public_paths_are_configurable():
    edge = Harness({"AUTH_ENABLED": "true", "API_KEYS": KEY,
                    "AUTH_PUBLIC_PATHS": "/health,/v1/models"})
    assert edge.request("GET", "/v1/models").status == 200
    assert_401(edge.request("POST", "/v1/chat/completions", CHAT), "missing_api_key")


def test_authenticated_request_carries_its_key():
    keys = KeyRing([ApiKey.from_text(KEY, name="team-a")])
    wrapper = Authenticated(Resource(), keys)
    request = DummyRequest([b"v1"])
    request.path = b"/v1"
    request.requestHeaders.setRawHeaders(b"x-api-key", [KEY.encode()])
    assert wrapper.check(request) is None
    assert request.api_key.id == "team-a"


def test_key_ids_never_contain_the_key(edge):
    ids = [key.id for key in edge.service.keys]
    assert all(KEY not in i and "sk-plain-beta" not in i for i in ids)
    assert all(i.startswith("key-") and len(i) == 12 for i in ids)


# -- every value of both headers counts ------------------------------------------------


def send_raw(edge, *header_lines: str):
    """
    GET /v1/models with C{header_lines} as given, repeated names and all
    (a dict of headers could not repeat one).
    """
    connection = edge.connect()
    head = "GET /v1/models HTTP/1.1\r\nHost: llmedge.test\r\n"
    connection.send((head + "".join(f"{line}\r\n" for line in header_lines) + "\r\n").encode())
    return connection.response()


@pytest.mark.parametrize(
    "lines",
    [
        (f"Authorization: Bearer {KEY}", "Authorization: Bearer sk-plain-beta"),
        ("Authorization: Bearer sk-plain-beta", f"Authorization: Bearer {KEY}"),
        (f"x-api-key: {KEY}", "x-api-key: sk-plain-beta"),
        (f"x-api-key: {KEY}", "x-api-key: sk-unknown"),
        (f"Authorization: Bearer {KEY}", f"x-api-key: {KEY}", "x-api-key: sk-plain-beta"),
    ],
    ids=["authorization-good-last", "authorization-good-first", "x-api-key",
         "x-api-key-unknown-last", "both-then-another"],
)
def test_two_values_naming_different_keys_are_refused(edge, lines):
    response = send_raw(edge, *lines)
    error = assert_401(response, "invalid_api_key")
    assert "different keys" in error["message"]
    assert KEY not in error["message"] and "sk-plain-beta" not in error["message"]


@pytest.mark.parametrize(
    "lines",
    [
        (f"Authorization: Bearer {KEY}", f"Authorization: Bearer {KEY}"),
        (f"x-api-key: {KEY}", f"x-api-key:  {KEY} "),
        (f"Authorization: Bearer {KEY}", "Authorization: Bearer ", f"x-api-key: {KEY}"),
    ],
    ids=["authorization-twice", "x-api-key-twice", "with-a-blank-one"],
)
def test_the_same_key_sent_twice_is_one_key(edge, lines):
    assert send_raw(edge, *lines).status == 200


def test_a_second_authorization_of_another_scheme_is_refused_without_x_api_key(edge):
    response = send_raw(edge, f"Authorization: Bearer {KEY}", "Authorization: Basic eDp5")
    assert "Bearer" in assert_401(response, "invalid_api_key")["message"]


def test_wrapper_reads_every_value_not_the_last():
    keys = KeyRing([ApiKey.from_text(KEY, name="team-a"), ApiKey.from_text("sk-b", name="b")])
    wrapper = Authenticated(Resource(), keys)
    request = DummyRequest([b"v1"])
    request.path = b"/v1"
    request.requestHeaders.setRawHeaders(b"authorization",
                                         [b"Bearer sk-other", f"Bearer {KEY}".encode()])
    assert wrapper.check(request).code == "invalid_api_key"
    assert getattr(request, "api_key", None) is None
