"""
API keys as the daemon holds them: SHA-256 digests, looked up by the digest
of what a client presents, never kept or shown in plain.
"""

import hashlib

import pytest

from llmedge.config import ConfigError, load
from llmedge.keys import ApiKey, KeyRing, generate_key, hash_key, parse_stored_key

TEST_HEX = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
TEST_STORED = "sha256:" + TEST_HEX
TEST_DIGEST = bytes.fromhex(TEST_HEX)


def config_error(config) -> str:
    with pytest.raises(ConfigError) as caught:
        KeyRing.from_config(config)
    return str(caught.value)


# hash_key and generate_key


def test_hash_key_is_prefixed_sha256_hex_of_the_key():
    assert hash_key("test") == TEST_STORED


def test_hash_key_hashes_utf8():
    assert hash_key("clé") == "sha256:" + hashlib.sha256("clé".encode()).hexdigest()


def test_generated_key_is_prefixed_unpadded_urlsafe_base64_of_32_random_bytes():
    assert generate_key(lambda n: b"\xff" * n) == "sk-llmedge-" + "_" * 42 + "8"


def test_generate_key_asks_for_32_bytes():
    asked = []
    generate_key(lambda n: asked.append(n) or bytes(n))
    assert asked == [32]


def test_generated_keys_differ():
    assert generate_key() != generate_key()


# parse_stored_key


def test_stored_form_gives_its_digest():
    assert parse_stored_key(TEST_STORED) == TEST_DIGEST


def test_stored_form_hex_is_case_insensitive():
    assert parse_stored_key("sha256:" + TEST_HEX.upper()) == TEST_DIGEST


def test_plain_key_gives_its_sha256():
    assert parse_stored_key("test") == TEST_DIGEST


def test_plain_and_stored_forms_of_a_key_give_the_same_digest():
    key = generate_key()
    assert parse_stored_key(key) == parse_stored_key(hash_key(key))


def test_empty_key_is_refused():
    with pytest.raises(ValueError, match="^empty key$"):
        parse_stored_key("")


@pytest.mark.parametrize(
    "text",
    [
        "sha256:",
        "sha256:" + TEST_HEX[:-1],
        "sha256:" + TEST_HEX + "0",
        "sha256:" + TEST_HEX[:-1] + "g",
        "sha256:" + TEST_HEX + "\n",
        "sha256: " + TEST_HEX[1:],
        "SHA256:sk-secret-not-a-digest",
    ],
)
def test_malformed_stored_form_is_refused_without_echoing_it(text):
    with pytest.raises(ValueError) as caught:
        parse_stored_key(text)
    assert str(caught.value) == "sha256: must be followed by 64 hexadecimal digits"


# ApiKey


def test_id_is_the_name_when_named():
    assert ApiKey.from_text("test", name="ci").id == "ci"


def test_id_of_an_unnamed_key_is_its_digest_prefix():
    assert ApiKey.from_text("test").id == "key-9f86d081"


def test_plain_and_stored_forms_give_the_same_id():
    assert ApiKey.from_text("test").id == ApiKey.from_text(TEST_STORED).id


def test_repr_shows_the_id_and_not_the_digest():
    text = repr(ApiKey.from_text("test", name="ci", rpm=5))
    assert text == "ApiKey(id='ci')"


# KeyRing


def test_lookup_finds_a_key_by_its_plain_text():
    key = ApiKey.from_text(TEST_STORED, name="ci")
    assert KeyRing([key]).lookup("test") is key


def test_lookup_finds_a_key_configured_in_plain():
    key = ApiKey.from_text("test")
    assert KeyRing([key]).lookup("test") is key


def test_presenting_the_stored_form_does_not_authenticate():
    ring = KeyRing([ApiKey.from_text(TEST_STORED)])
    assert ring.lookup(TEST_STORED) is None


def test_lookup_of_an_unknown_key_is_none():
    assert KeyRing([ApiKey.from_text("test")]).lookup("tess") is None


def test_lookup_of_an_empty_key_is_none():
    assert KeyRing([ApiKey.from_text("test")]).lookup("") is None


def test_lookup_of_unencodable_text_is_none():
    assert KeyRing([ApiKey.from_text("test")]).lookup("\ud800") is None


def test_ring_counts_its_keys():
    ring = KeyRing([ApiKey.from_text("a"), ApiKey.from_text("b")])
    assert (len(ring), bool(ring)) == (2, True)


def test_empty_ring_is_false():
    assert (len(KeyRing()), bool(KeyRing())) == (0, False)


def test_ring_iterates_in_the_order_given():
    keys = [ApiKey.from_text("b"), ApiKey.from_text("a")]
    assert list(KeyRing(keys)) == keys


def test_ring_refuses_the_same_digest_twice():
    with pytest.raises(ValueError):
        KeyRing([ApiKey.from_text("test"), ApiKey.from_text(TEST_STORED, name="ci")])


def test_ring_repr_hides_digests():
    assert TEST_HEX[:8] not in repr(KeyRing([ApiKey.from_text("test", name="ci")]))


# KeyRing.from_config


def test_api_keys_plain_and_stored_are_accepted():
    ring = KeyRing.from_config(load({"API_KEYS": f"sk-a, {TEST_STORED}"}))
    assert [ring.lookup("sk-a") is not None, ring.lookup("test") is not None] == [True, True]


def test_api_keys_have_no_name_or_limits():
    (key,) = KeyRing.from_config(load({"API_KEYS": "test"}))
    assert (key.id, key.rpm, key.burst) == ("key-9f86d081", None, None)


def test_named_keys_keep_their_name_and_limits(toml):
    path = toml(
        f'[[auth.keys]]\nname = "ci"\nkey = "{TEST_STORED}"\nrpm = 10\nburst = 3\n'
        '[[auth.keys]]\nkey = "sk-b"\n'
    )
    ring = KeyRing.from_config(load({}, path))
    assert [(k.id, k.rpm, k.burst) for k in ring] == [
        ("ci", 10, 3),
        ("key-" + hashlib.sha256(b"sk-b").hexdigest()[:8], None, None),
    ]


def test_no_keys_configured_is_an_empty_ring():
    assert not KeyRing.from_config(load({}))


def test_malformed_api_key_is_named_by_position_without_its_text():
    secret = "sha256:sk-secret-typo"
    error = config_error(load({"API_KEYS": f"sk-a,sk-b,{secret}"}))
    assert error == "API_KEYS[2]: sha256: must be followed by 64 hexadecimal digits"


def test_malformed_named_key_is_named_with_its_file_without_its_text(toml):
    path = toml('[[auth.keys]]\nkey = "sha256:sk-secret-typo"\n')
    error = config_error(load({}, path))
    assert error == (
        f"auth.keys[0].key in {path}: sha256: must be followed by 64 hexadecimal digits"
    )


def test_empty_named_key_is_refused(toml):
    assert config_error(load({}, toml('[[auth.keys]]\nkey = ""\n'))).endswith(": empty key")


def test_same_key_twice_in_api_keys_is_refused_naming_both_places():
    error = config_error(load({"API_KEYS": "sk-secret-a,sk-secret-a"}))
    assert error == "API_KEYS[1]: the same key as API_KEYS[0]"


def test_same_key_plain_and_stored_is_refused_without_echoing_it(toml):
    path = toml(f'[[auth.keys]]\nname = "ci"\nkey = "{TEST_STORED}"\n')
    error = config_error(load({"API_KEYS": "test"}, path))
    assert error == "auth.keys[0]: the same key as API_KEYS[0]"


def test_two_named_keys_with_one_name_are_refused(toml):
    path = toml(
        '[[auth.keys]]\nname = "ci"\nkey = "sk-a"\n'
        '[[auth.keys]]\nname = "ci"\nkey = "sk-b"\n'
    )
    error = config_error(load({}, path))
    assert error == f"auth.keys[1].name='ci' in {path}: already the name of auth.keys[0]"


def test_empty_name_is_refused(toml):
    path = toml('[[auth.keys]]\nname = ""\nkey = "sk-a"\n')
    assert config_error(load({}, path)) == f"auth.keys[0].name in {path}: must not be empty"


def test_name_that_is_another_keys_id_is_refused_naming_the_setting(toml):
    taken = "key-" + hashlib.sha256(b"sk-a").hexdigest()[:8]
    path = toml(f'[[auth.keys]]\nname = "ci"\nkey = "sk-c"\n'
                f'[[auth.keys]]\nname = "{taken}"\nkey = "sk-b"\n')
    error = config_error(load({"API_KEYS": "sk-a"}, path))
    assert error == (
        f"auth.keys[1].name='{taken}' in {path}: is the id of another key (API_KEYS[0])")


def test_name_that_is_the_id_of_a_later_unnamed_key_is_refused(toml):
    taken = "key-" + hashlib.sha256(b"sk-a").hexdigest()[:8]
    path = toml(f'[[auth.keys]]\nname = "{taken}"\nkey = "sk-b"\n'
                '[[auth.keys]]\nkey = "sk-a"\n')
    error = config_error(load({}, path))
    assert error == (
        f"auth.keys[0].name='{taken}' in {path}: is the id of another key (auth.keys[1])")


def test_name_that_is_its_own_keys_id_is_accepted(toml):
    own = "key-" + hashlib.sha256(b"sk-a").hexdigest()[:8]
    path = toml(f'[[auth.keys]]\nname = "{own}"\nkey = "sk-a"\n')
    assert [key.id for key in KeyRing.from_config(load({}, path))] == [own]


def test_same_key_under_two_names_is_refused(toml):
    path = toml('[[auth.keys]]\nname = "a"\nkey = "sk-secret-x"\n'
                '[[auth.keys]]\nname = "b"\nkey = "sk-secret-x"\n')
    error = config_error(load({}, path))
    assert error == "auth.keys[1]: the same key as auth.keys[0]"
    assert "sk-secret-x" not in error


def test_ring_refuses_two_keys_with_one_id():
    with pytest.raises(ValueError):
        KeyRing([ApiKey.from_text("sk-a", name="ci"), ApiKey.from_text("sk-b", name="ci")])
