"""
The resource tree as a client sees it over HTTP/1.1: health, routing,
methods, bodies and the /v1 endpoints answered by the mock provider.
"""

import pytest

from tests.unit.support import Harness


@pytest.fixture
def edge():
    return Harness()


def assert_openai_error(response, status, type_="invalid_request_error", code=None):
    assert response.status == status
    assert response.header("content-type") == "application/json"
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == type_
    if code is not None:
        assert error["code"] == code
    return error


def test_health_reports_status_version_and_clock_time(edge):
    response = edge.request("GET", "/health")
    assert response.status == 200
    body = response.json()
    assert body["status"] == "healthy"
    assert body["version"]
    assert body["timestamp"] == "2027-01-15T08:00:00Z"


@pytest.mark.parametrize("path,status", [("/health/live", "alive"), ("/health/ready", "ready")])
def test_liveness_and_readiness(edge, path, status):
    response = edge.request("GET", path)
    assert response.status == 200
    assert response.json() == {"status": status}


def test_head_is_answered_like_get_without_a_body(edge):
    response = edge.request("HEAD", "/health")
    assert response.status == 200
    assert response.body == b""


@pytest.mark.parametrize("path", ["/", "/nope", "/v1", "/v1/nope", "/v1/chat", "/health/x",
                                  "/v1/chat/completions/extra", "/v2/chat/completions"])
def test_unknown_path_is_openai_404(edge, path):
    error = assert_openai_error(edge.request("GET", path), 404, code="unknown_url")
    assert path in error["message"]


@pytest.mark.parametrize(
    "method,path,allow",
    [
        ("GET", "/v1/chat/completions", "POST"),
        ("PUT", "/v1/completions", "POST"),
        ("DELETE", "/v1/embeddings", "POST"),
        ("POST", "/v1/models", "GET, HEAD"),
        ("POST", "/health", "GET, HEAD"),
    ],
)
def test_wrong_method_is_405_with_allow(edge, method, path, allow):
    response = edge.request(method, path, body=b"" if method != "GET" else None)
    assert_openai_error(response, 405, code="method_not_allowed")
    assert response.header("allow") == allow


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
def test_body_not_declared_json_is_415(edge, content_type):
    headers = {"Content-Type": content_type} if content_type else {}
    response = edge.request("POST", "/v1/chat/completions", body=b"{}", headers=headers)
    assert_openai_error(response, 415, code="unsupported_media_type")


def test_json_content_type_may_carry_a_charset(edge):
    response = edge.request(
        "POST", "/v1/chat/completions",
        body=b'{"model":"mock","messages":[{"role":"user","content":"x"}]}',
        headers={"Content-Type": "Application/JSON; charset=utf-8"},
    )
    assert response.status == 200


@pytest.mark.parametrize(
    "body",
    [b"{", b"", b"nul", b'{"a": NaN}', b"\xff\xfe", b"[" * 100_000 + b"]" * 100_000],
)
def test_unparseable_json_is_400(edge, body):
    response = edge.request(
        "POST", "/v1/chat/completions", body=body,
        headers={"Content-Type": "application/json"},
    )
    error = assert_openai_error(response, 400)
    assert "parse the JSON body" in error["message"]


@pytest.mark.parametrize("body", [b"[]", b'"text"', b"3", b"null", b"true"])
def test_json_that_is_not_an_object_is_400(edge, body):
    response = edge.request(
        "POST", "/v1/embeddings", body=body, headers={"Content-Type": "application/json"}
    )
    error = assert_openai_error(response, 400)
    assert "JSON object" in error["message"]


def test_validation_error_names_the_field(edge):
    response = edge.request(
        "POST", "/v1/chat/completions",
        body={"model": "mock", "messages": [{"role": "user", "content": "x"}], "temperature": 3},
    )
    assert assert_openai_error(response, 400)["param"] == "temperature"


def test_unknown_model_is_404_model_not_found(edge):
    response = edge.request(
        "POST", "/v1/chat/completions",
        body={"model": "gpt-9", "messages": [{"role": "user", "content": "x"}]},
    )
    error = assert_openai_error(response, 404, code="model_not_found")
    assert error["param"] == "model"


def test_chat_completion_from_the_mock(edge):
    response = edge.request(
        "POST", "/v1/chat/completions",
        body={"model": "mock", "messages": [{"role": "user", "content": "hello edge"}],
              "some_new_field": {"kept": True}},
    )
    assert response.status == 200
    body = response.json()
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"]["content"] == "You said: hello edge"
    assert body["usage"]["total_tokens"] == (
        body["usage"]["prompt_tokens"] + body["usage"]["completion_tokens"]
    )


def test_legacy_completion_from_the_mock(edge):
    response = edge.request("POST", "/v1/completions", body={"model": "mock", "prompt": "Say"})
    assert response.status == 200
    assert response.json()["object"] == "text_completion"


def test_embeddings_from_the_mock(edge):
    response = edge.request(
        "POST", "/v1/embeddings", body={"model": "mock", "input": ["a", "b"], "dimensions": 8}
    )
    assert response.status == 200
    data = response.json()["data"]
    assert [d["index"] for d in data] == [0, 1]
    assert all(len(d["embedding"]) == 8 for d in data)


def test_models_lists_the_configured_public_names(edge):
    body = edge.request("GET", "/v1/models").json()
    assert body["object"] == "list"
    assert [m["id"] for m in body["data"]] == ["mock"]


def test_one_model_is_described(edge):
    body = edge.request("GET", "/v1/models/mock").json()
    assert body == {"id": "mock", "object": "model", "created": 1_800_000_000, "owned_by": "mock",
                    "type": "model", "display_name": "mock", "created_at": "2027-01-15T08:00:00Z"}


def test_describing_an_unknown_model_is_404(edge):
    assert_openai_error(edge.request("GET", "/v1/models/org/none"), 404, code="model_not_found")


def test_models_with_slashes_are_served(tmp_path):
    config = tmp_path / "llmedge.toml"
    config.write_text('[models."org/model-1"]\ntargets = [{provider = "mock", model = "m"}]\n')
    edge = Harness(config_path=str(config))
    assert edge.request("GET", "/v1/models/org/model-1").json()["id"] == "org/model-1"
    response = edge.request(
        "POST", "/v1/chat/completions",
        body={"model": "org/model-1", "messages": [{"role": "user", "content": "x"}]},
    )
    assert response.json()["model"] == "m"


def test_every_response_has_a_request_id(edge):
    for path in ("/health", "/nope", "/v1/models"):
        assert edge.request("GET", path).header("x-request-id").startswith("req_")
