"""
llmedge's configuration: defaults < TOML file < environment < command line,
and the one-line L{ConfigError} an operator sees for a bad setting.
"""

import pytest
from twisted.internet.endpoints import quoteStringArgument, serverFromString
from twisted.internet.protocol import Factory
from twisted.internet.testing import MemoryReactor

from llmedge.config import ConfigError, ProviderConfig, RoutePolicy, Target, load


def config_error(environ=None, path=None, listen=()) -> str:
    """
    The text of the ConfigError that loading these settings raises.
    """
    with pytest.raises(ConfigError) as caught:
        load(environ or {}, path, listen)
    return str(caught.value)


# Defaults


@pytest.mark.parametrize(
    "name,default",
    [
        ("server.address", ("0.0.0.0", 8080)),
        ("server.listen", ()),
        ("server.timeout_seconds", 30.0),
        ("server.max_request_size", 10485760),
        ("auth.enabled", True),
        ("auth.api_keys", ()),
        ("auth.health_check", False),
        ("rate_limit.enabled", True),
        ("rate_limit.rpm", 1000),
        ("rate_limit.burst", 100),
        ("rate_limit.backend", "memory"),
        ("rate_limit.redis_url", "redis://127.0.0.1:6379/0"),
        ("rate_limit.redis_timeout", 0.25),
        ("rate_limit.redis_failure", "fail-open"),
        ("log.level", "info"),
        ("tracing.enabled", True),
        ("metrics.enabled", True),
        ("tls.enabled", False),
        ("tls.cert_path", ""),
        ("tls.key_path", ""),
    ],
)
def test_default_value_of_each_setting(name, default):
    assert load({}, None, [])[name] == default


def test_default_listener_is_tcp_8080_on_all_ipv4_interfaces():
    assert load({}, None, []).listen == ("tcp:8080:interface=0.0.0.0",)


def test_timeout_and_body_limit_properties_read_the_settings():
    config = load({}, None, [])
    assert (config.timeout_seconds, config.max_request_size) == (30.0, 10485760)


def test_without_a_file_there_are_no_named_keys_and_no_source():
    config = load({}, None, [])
    assert (config.auth_keys, config.source) == ((), None)


def test_default_provider_is_the_mock():
    assert dict(load({}, None, []).providers) == {"mock": ProviderConfig("mock", "mock")}


def test_default_model_mock_is_served_by_the_mock_provider():
    assert dict(load({}, None, []).models) == {"mock": (Target("mock", "mock"),)}


# Precedence


def test_file_overrides_default(toml):
    path = toml("[server]\ntimeout_seconds = 5\n")
    config = load({}, path, [])
    assert config.timeout_seconds == 5.0
    assert config.source == path


def test_environment_overrides_file(toml):
    path = toml("[server]\ntimeout_seconds = 5\n")
    assert load({"SERVER_TIMEOUT_SECONDS": "7"}, path, []).timeout_seconds == 7.0


def test_settings_the_file_does_not_name_keep_their_defaults(toml):
    config = load({}, toml("[server]\ntimeout_seconds = 5\n"), [])
    assert config.max_request_size == 10485760


def test_listen_option_overrides_server_address_and_file_listen(toml):
    path = toml('[server]\nlisten = ["tcp:7001"]\n')
    config = load({"SERVER_ADDRESS": "127.0.0.1:7002"}, path, ["tcp:7003", "unix:/s"])
    assert config.listen == ("tcp:7003", "unix:/s")


def test_file_listen_overrides_default_address(toml):
    config = load({}, toml('[server]\nlisten = ["tcp:7001", "tcp:7002"]\n'), [])
    assert config.listen == ("tcp:7001", "tcp:7002")


def test_file_listen_overrides_file_address(toml):
    path = toml('[server]\naddress = "127.0.0.1:7002"\nlisten = ["tcp:7001"]\n')
    assert load({}, path, []).listen == ("tcp:7001",)


def test_server_address_from_environment_overrides_file_listen(toml):
    path = toml('[server]\nlisten = ["tcp:7001"]\n')
    config = load({"SERVER_ADDRESS": "127.0.0.1:7002"}, path, [])
    assert config.listen == ("tcp:7002:interface=127.0.0.1",)


def test_server_address_from_file_is_used_without_listen(toml):
    config = load({}, toml('[server]\naddress = "127.0.0.1:7002"\n'), [])
    assert config.listen == ("tcp:7002:interface=127.0.0.1",)


# Addresses and endpoints


def test_ipv6_address_becomes_a_parseable_escaped_interface():
    config = load({"SERVER_ADDRESS": "[::1]:9000"}, None, [])
    assert config["server.address"] == ("::1", 9000)
    reactor = MemoryReactor()
    serverFromString(reactor, config.listen[0]).listen(Factory())
    [(port, _, _, interface)] = reactor.tcpServers
    assert (port, interface) == (9000, "::1")


def test_address_without_host_listens_on_every_interface():
    assert load({"SERVER_ADDRESS": ":8081"}, None, []).listen == ("tcp:8081",)


def test_tls_makes_an_ssl_endpoint_with_quoted_paths():
    cert, key = "/etc/llmedge/c:1.pem", "C:\\keys\\k.pem"
    config = load(
        {"ENABLE_TLS": "true", "TLS_CERT_PATH": cert, "TLS_KEY_PATH": key}, None, []
    )
    assert config.listen == (
        "ssl:8080:interface=0.0.0.0"
        f":privateKey={quoteStringArgument(key)}:certKey={quoteStringArgument(cert)}",
    )


def test_tls_endpoint_paths_containing_colons_reach_the_endpoint_parser(tmp_path):
    directory = tmp_path / "a:b"
    directory.mkdir()
    write_self_signed_pair(directory / "cert.pem", directory / "key.pem")
    config = load(
        {
            "ENABLE_TLS": "1",
            "TLS_CERT_PATH": str(directory / "cert.pem"),
            "TLS_KEY_PATH": str(directory / "key.pem"),
        },
        None,
        [],
    )
    reactor = MemoryReactor()
    serverFromString(reactor, config.listen[0]).listen(Factory())
    [(port, _, _, _, interface)] = reactor.sslServers
    assert (port, interface) == (8080, "0.0.0.0")


def write_self_signed_pair(cert_path, key_path):
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


@pytest.mark.parametrize("missing", ["TLS_CERT_PATH", "TLS_KEY_PATH"])
def test_tls_without_a_path_names_the_missing_setting(missing):
    environ = {"ENABLE_TLS": "true", "TLS_CERT_PATH": "c.pem", "TLS_KEY_PATH": "k.pem"}
    del environ[missing]
    assert missing in config_error(environ)


# Booleans


@pytest.mark.parametrize(
    "text", ["true", "TRUE", "True", "1", "yes", "YES", "on", "On", " true "]
)
def test_boolean_true_spellings(text):
    assert load({"AUTH_HEALTH_CHECK": text}, None, [])["auth.health_check"] is True


@pytest.mark.parametrize("text", ["false", "FALSE", "False", "0", "no", "No", "off", "OFF"])
def test_boolean_false_spellings(text):
    assert load({"AUTH_ENABLED": text}, None, [])["auth.enabled"] is False


def test_choices_are_case_insensitive():
    assert load({"LOG_LEVEL": "DEBUG"}, None, [])["log.level"] == "debug"


def test_api_keys_from_environment_are_comma_separated_and_trimmed():
    config = load({"API_KEYS": " sk-a, sk-b ,,"}, None, [])
    assert config["auth.api_keys"] == ("sk-a", "sk-b")


# Bad values: one line naming the setting and showing the value


@pytest.mark.parametrize(
    "variable,value",
    [
        ("SERVER_ADDRESS", "0.0.0.0:99999"),
        ("SERVER_ADDRESS", "nonsense"),
        ("SERVER_ADDRESS", "host:"),
        ("MAX_REQUEST_SIZE", "abc"),
        ("MAX_REQUEST_SIZE", "0"),
        ("SERVER_TIMEOUT_SECONDS", "-1"),
        ("SERVER_TIMEOUT_SECONDS", "0"),
        ("SERVER_TIMEOUT_SECONDS", "nan"),
        ("SERVER_TIMEOUT_SECONDS", "inf"),
        ("AUTH_ENABLED", "maybe"),
        ("LOG_LEVEL", "loud"),
        ("RATE_LIMIT_BACKEND", "etcd"),
        ("REDIS_TIMEOUT_SECONDS", "0"),
        ("REDIS_FAILURE_POLICY", "maybe"),
        ("RATE_LIMIT_RPM", "1.5"),
        ("RATE_LIMIT_BURST", "0"),
    ],
)
def test_bad_environment_value_is_one_line_naming_setting_and_value(variable, value):
    text = config_error({variable: value})
    assert "\n" not in text
    assert variable in text
    assert repr(value) in text


@pytest.mark.parametrize(
    "line,shown",
    [
        ('timeout_seconds = "fast"', "'fast'"),
        ("timeout_seconds = true", "True"),
        ("max_request_size = true", "True"),
        ("max_request_size = 1.5", "1.5"),
        ('listen = "tcp:8080"', "'tcp:8080'"),
        ("listen = []", "[]"),
    ],
)
def test_wrong_type_in_file_names_setting_and_file(toml, line, shown):
    path = toml(f"[server]\n{line}\n")
    text = config_error(path=path)
    assert "\n" not in text
    assert f"server.{line.split()[0]}={shown} in {path}:" in text


def test_unknown_section_is_named(toml):
    path = toml("[bogus]\nx = 1\n")
    assert config_error(path=path) == f"{path}: unknown section [bogus]"


def test_unknown_key_is_named_with_its_section(toml):
    path = toml("[server]\nbogus = 1\n")
    assert config_error(path=path) == f"{path}: unknown setting server.bogus"


def test_missing_file_names_the_path(tmp_path):
    path = str(tmp_path / "absent.toml")
    text = config_error(path=path)
    assert "\n" not in text
    assert path in text
    assert "cannot read" in text


def test_unreadable_file_names_the_path(tmp_path):
    text = config_error(path=str(tmp_path))  # a directory cannot be read as a file
    assert "\n" not in text
    assert str(tmp_path) in text


def test_invalid_toml_names_the_path_and_the_position(toml):
    path = toml("[server\n")
    text = config_error(path=path)
    assert "\n" not in text
    assert path in text
    assert "not valid TOML" in text
    assert "line 1" in text


# Providers


def test_provider_option_is_kept_with_its_kind(toml):
    path = toml('[providers.mock]\nkind = "mock"\nstream_interval = 0.5\n')
    assert load({}, path, []).providers["mock"] == ProviderConfig(
        "mock", "mock", {"stream_interval": 0.5}
    )


def test_new_provider_is_added_beside_the_default_mock(toml):
    path = toml('[providers.fast]\nkind = "mock"\nlatency = 0\n')
    providers = load({}, path, []).providers
    assert set(providers) == {"mock", "fast"}
    assert providers["fast"].options == {"latency": 0.0}


def test_provider_with_unknown_kind_is_named(toml):
    path = toml('[providers.x]\nkind = "openai-ng"\n')
    text = config_error(path=path)
    assert "\n" not in text
    assert "providers.x.kind='openai-ng'" in text


def test_provider_without_kind_is_refused(toml):
    path = toml("[providers.mock]\nstream_interval = 0.5\n")
    assert "providers.mock.kind=None" in config_error(path=path)


def test_provider_with_unknown_option_is_named(toml):
    path = toml('[providers.x]\nkind = "mock"\nbogus = 1\n')
    assert config_error(path=path) == f"{path}: unknown setting providers.x.bogus"


@pytest.mark.parametrize("value", ["0", "16385", '"many"', "true"])
def test_bad_embedding_dimensions_is_named_with_value(toml, value):
    path = toml(f'[providers.x]\nkind = "mock"\nembedding_dimensions = {value}\n')
    text = config_error(path=path)
    assert "\n" not in text
    assert "providers.x.embedding_dimensions=" in text


# Models


def test_model_targets_keep_their_order(toml):
    path = toml(
        '[providers.backup]\nkind = "mock"\n'
        '[models."gpt-4o"]\ntargets = [\n'
        '  { provider = "mock", model = "first" },\n'
        '  { provider = "backup", model = "second" },\n]\n'
    )
    assert dict(load({}, path, []).models) == {
        "gpt-4o": (Target("mock", "first"), Target("backup", "second"))
    }


def test_model_target_naming_unknown_provider_is_refused(toml):
    path = toml('[models."m"]\ntargets = [{ provider = "nobody", model = "x" }]\n')
    text = config_error(path=path)
    assert "\n" not in text
    assert "models.\"m\".targets[0].provider='nobody'" in text


@pytest.mark.parametrize(
    "body",
    [
        "",  # no targets
        "targets = []",
        'targets = [{ provider = "mock", model = "x" }]\nweight = 1',
        'targets = "mock"',
    ],
)
def test_model_without_a_proper_targets_list_is_refused(toml, body):
    text = config_error(path=toml(f'[models."m"]\n{body}\n'))
    assert "\n" not in text
    assert 'models."m"' in text


@pytest.mark.parametrize(
    "target",
    [
        '{ provider = "mock" }',
        '{ provider = "mock", model = "" }',
        '{ provider = "mock", model = "x", colour = 2 }',
        '{ provider = "mock", model = "x", weight = 0 }',
        '{ provider = "mock", model = "x", weight = "heavy" }',
        '"mock"',
    ],
)
def test_malformed_model_target_is_refused(toml, target):
    text = config_error(path=toml(f'[models."m"]\ntargets = [{target}]\n'))
    assert 'models."m".targets[0]' in text


# Named keys ([[auth.keys]])


def test_named_keys_are_kept(toml):
    path = toml('[[auth.keys]]\nname = "ci"\nkey = "sk-ci"\nrpm = 10\n')
    assert [dict(k) for k in load({}, path, []).auth_keys] == [
        {"name": "ci", "key": "sk-ci", "rpm": 10}
    ]


def test_named_key_without_key_is_refused(toml):
    path = toml('[[auth.keys]]\nname = "ci"\n')
    assert "auth.keys[0]" in config_error(path=path)


def test_named_key_with_unknown_field_is_named(toml):
    path = toml('[[auth.keys]]\nkey = "sk-ci"\nscope = "all"\n')
    assert config_error(path=path) == f"{path}: unknown setting auth.keys[0].scope"


def test_named_key_with_bad_rpm_shows_the_rpm(toml):
    path = toml('[[auth.keys]]\nkey = "sk-ci"\nrpm = 0\n')
    assert "auth.keys[0].rpm=0" in config_error(path=path)


# Secrets never appear in errors


def test_api_keys_as_a_string_in_file_is_one_key(toml):
    path = toml('[auth]\napi_keys = "sk-secret-1"\n')
    assert load({}, path, [])["auth.api_keys"] == ("sk-secret-1",)


@pytest.mark.parametrize(
    "text,setting,secret",
    [
        ('[auth]\napi_keys = ["sk-secret-1", 2]\n', "auth.api_keys", "sk-secret-1"),
        ("[[auth.keys]]\nkey = 123456789\n", "auth.keys[0].key", "123456789"),
        ('[[auth.keys]]\nkey = "sk-secret-2"\nrpm = "lots"\n', "auth.keys[0].rpm", "sk-secret-2"),
        ('[auth]\nkeys = "sk-secret-3"\n', "auth.keys", "sk-secret-3"),
    ],
)
def test_errors_about_keys_do_not_echo_them(toml, text, setting, secret):
    error = config_error(path=toml(text))
    assert setting in error
    assert secret not in error


def test_other_error_beside_api_keys_does_not_echo_them(toml):
    path = toml('[auth]\napi_keys = ["sk-secret-4"]\nenabled = "perhaps"\n')
    text = config_error({"API_KEYS": "sk-secret-5"}, path)
    assert "auth.enabled" in text
    assert "sk-secret-4" not in text and "sk-secret-5" not in text


# Edge cases of the file's own syntax and types.


def test_provider_kind_of_wrong_type_is_a_config_error(toml):
    config_error(path=toml('[providers.x]\nkind = ["mock"]\n'))


def test_file_that_is_not_utf8_is_a_config_error(tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes(b"# caf\xe9\n[server]\n")
    assert str(path) in config_error(path=str(path))


def test_unknown_key_with_a_newline_in_its_name_is_still_one_line(toml):
    assert "\n" not in config_error(path=toml('[server]\n"bo\\ngus" = 1\n'))


def test_provider_interval_rejects_a_boolean(toml):
    config_error(path=toml('[providers.x]\nkind = "mock"\nstream_interval = false\n'))


def test_a_model_may_say_its_strategy_attempts_and_weights(toml):
    config = load({}, toml(
        '[models."m"]\nstrategy = "weighted"\nmax_attempts = 4\n'
        'targets = [ { provider = "mock", model = "a", weight = 3 },'
        ' { provider = "mock", model = "b" } ]\n'))
    assert config.models["m"] == (Target("mock", "a", 3.0), Target("mock", "b", 1.0))
    assert config.policies["m"] == RoutePolicy("weighted", 4)


def test_a_model_may_be_kept_out_of_the_cache(toml):
    config = load({}, toml(
        '[models."m"]\ncache = false\ntargets = [ { provider = "mock", model = "a" } ]\n'))
    assert config.policies["m"] == RoutePolicy("ordered", None, cache=False)


@pytest.mark.parametrize("line,words", [
    ('strategy = "random"', "must be one of ordered, weighted, least-busy, latency"),
    ("max_attempts = 0", "must be a whole number from 1 to 20"),
    ("max_attempts = 21", "must be a whole number from 1 to 20"),
    ("colour = 1", "must be a table of 'targets'"),
    ('cache = "no"', "cache='no'"),
    ("cache = 0", "must be true or false"),
])
def test_a_bad_routing_setting_is_refused_in_one_line(toml, line, words):
    text = config_error(path=toml(
        f'[models."m"]\n{line}\ntargets = [ {{ provider = "mock", model = "a" }} ]\n'))
    assert "\n" not in text and 'models."m"' in text and words in text
