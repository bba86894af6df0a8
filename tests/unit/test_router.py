"""
The router: which providers answer a public model name, and the model
list that C{/v1/models} shows.
"""

import pytest
from twisted.internet.task import Clock

from llmedge.config import Target, load
from llmedge.errors import APIError
from llmedge.providers.mock import MockProvider
from llmedge.routing.router import Router, build_router


class NamedProvider:
    def __init__(self, name):
        self.name = name


@pytest.fixture
def providers():
    return {"primary": NamedProvider("primary"), "backup": NamedProvider("backup")}


@pytest.fixture
def router(providers):
    return Router(
        {
            "gpt-4o": (Target("primary", "gpt-4o-2024"), Target("backup", "gpt-4o")),
            "embed": (Target("backup", "text-embedding-3-small"),),
        },
        providers,
        created=1_700_000_000,
    )


def test_route_returns_targets_first_choice_first(router, providers):
    route = router.route("gpt-4o")
    assert [(t.provider, t.model) for t in route.targets] == [
        (providers["primary"], "gpt-4o-2024"),
        (providers["backup"], "gpt-4o"),
    ]
    assert (route.strategy, route.max_attempts) == ("ordered", 2)


def test_unknown_model_is_404_model_not_found(router):
    with pytest.raises(APIError) as caught:
        router.route("gpt-5")
    error = caught.value
    assert (error.status, error.code, error.param) == (404, "model_not_found", "model")
    assert "gpt-5" in error.message


def test_model_names_are_case_sensitive(router):
    with pytest.raises(APIError):
        router.route("GPT-4o")


def test_list_models_is_sorted_by_name(router):
    listing = router.list_models()
    assert listing["object"] == "list"
    assert [model["id"] for model in listing["data"]] == ["embed", "gpt-4o"]


def test_each_listed_model_has_openais_and_anthropics_fields(router):
    for model in router.list_models()["data"]:
        assert set(model) == {"id", "object", "created", "owned_by",
                              "type", "display_name", "created_at"}
        assert model["object"] == model["type"] == "model"


def test_the_list_is_also_an_anthropic_page(router):
    listed = router.list_models()
    names = [model["id"] for model in listed["data"]]
    assert listed["has_more"] is False
    assert (listed["first_id"], listed["last_id"]) == (names[0], names[-1])


def test_describe_is_owned_by_the_first_choice_provider(router):
    assert router.describe("gpt-4o") == {
        "id": "gpt-4o",
        "object": "model",
        "created": 1_700_000_000,
        "owned_by": "primary",
        "type": "model",
        "display_name": "gpt-4o",
        "created_at": "2023-11-14T22:13:20Z",
    }


def test_describe_unknown_model_is_model_not_found(router):
    with pytest.raises(APIError) as caught:
        router.describe("nope")
    assert caught.value.code == "model_not_found"


def test_default_configuration_serves_mock_with_the_mock_provider():
    router = build_router(load({}, None, ["tcp:0"]), Clock())
    [target] = router.route("mock").targets
    assert isinstance(target.provider, MockProvider)
    assert (target.provider.name, target.model) == ("mock", "mock")


def test_built_router_reports_the_clock_time_as_created():
    clock = Clock()
    clock.advance(1234.9)
    router = build_router(load({}, None, ["tcp:0"]), clock)
    assert router.describe("mock")["created"] == 1234


def test_built_router_gives_configured_providers_their_names(tmp_path):
    path = tmp_path / "llmedge.toml"
    path.write_text(
        '[providers.fast]\nkind = "mock"\n'
        '[models."m"]\ntargets = [{ provider = "fast", model = "tiny" }]\n'
    )
    router = build_router(load({}, str(path), ["tcp:0"]), Clock())
    assert [m["id"] for m in router.list_models()["data"]] == ["m"]
    assert router.describe("m")["owned_by"] == "fast"


def test_health_is_kept_across_a_rebuild_for_deployments_still_configured(tmp_path):
    clock = Clock()
    first = build_router(load({}, None, ["tcp:0"]), clock)
    first.health.deployment("mock", "mock").breaker.trip()
    again = build_router(load({"UPSTREAM_COOLDOWN_SECONDS": "30"}, None, ["tcp:0"]), clock,
                         health=first.health)
    health = again.route("mock").targets[0].health
    assert health is first.health.deployment("mock", "mock")
    assert health.breaker.state == "open" and health.breaker.cooldown == 30
