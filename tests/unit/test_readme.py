"""
The README is part of the product: every setting and endpoint is in it.
"""

from pathlib import Path

import pytest

from llmedge.settings import KEY_FIELDS, PROVIDER_KINDS, SETTINGS

README = (Path(__file__).parents[2] / "README.md").read_text()


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: s.name)
def test_every_setting_is_documented(setting):
    assert f"`{setting.name}`" in README
    if setting.env:
        assert f"`{setting.env}`" in README


@pytest.mark.parametrize(
    "option", [o for kind in PROVIDER_KINDS.values() for o in kind] + list(KEY_FIELDS)
)
def test_every_table_key_is_documented(option):
    assert f"`{option}`" in README


@pytest.mark.parametrize(
    "path",
    ["/health", "/health/live", "/health/ready", "/v1/chat/completions",
     "/v1/completions", "/v1/embeddings", "/v1/models", "/v1/models/{model}",
     "/v1/responses", "/v1/messages", "/v1/messages/count_tokens"],
)
def test_every_endpoint_is_documented(path):
    assert f"`{path}`" in README


@pytest.mark.parametrize("command", ["make run", "make test"])
def test_the_two_commands_are_documented(command):
    assert command in README
