"""
Upstream TLS is verified: an upstream whose certificate the system does
not trust is refused, and trusted with the CA given in
UPSTREAM_CA_BUNDLE.
"""

import openai
import pytest

from llmedge.testing import Daemon, FakeUpstream
from llmedge.testing.certs import make_pki

KEY = "sk-tls-client"


@pytest.fixture(scope="module")
def tls_upstream(tmp_path_factory):
    pki = make_pki(tmp_path_factory.mktemp("pki"))
    listen = f"ssl:0:interface=127.0.0.1:privateKey={pki.key}:certKey={pki.cert}"
    with FakeUpstream(listen=listen) as running:
        port = running.base_url.rsplit(":", 1)[1]
        yield pki, f"https://localhost:{port}/v1"


def proxy(tmp_path, base_url, env):
    config = tmp_path / "llmedge.toml"
    config.write_text(
        f'[providers.up]\nkind = "openai"\nbase_url = "{base_url}"\n'
        '[models."m"]\ntargets = [{ provider = "up", model = "fake" }]\n')
    return Daemon(["--listen", "tcp:0:interface=127.0.0.1", "--config", str(config)],
                  env={"API_KEYS": KEY, **env})


def ask(daemon):
    client = openai.OpenAI(base_url=daemon.base_url + "/v1", api_key=KEY, max_retries=0)
    return client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])


def test_untrusted_upstream_certificate_is_refused(tls_upstream, tmp_path):
    _, base_url = tls_upstream
    with proxy(tmp_path, base_url, {}) as daemon:
        with pytest.raises(openai.APIStatusError) as caught:
            ask(daemon)
    assert caught.value.status_code == 502
    assert caught.value.code == "upstream_unreachable"
    assert "TLS" in caught.value.message


def test_upstream_is_trusted_with_the_configured_ca_bundle(tls_upstream, tmp_path):
    pki, base_url = tls_upstream
    with proxy(tmp_path, base_url, {"UPSTREAM_CA_BUNDLE": str(pki.ca_cert)}) as daemon:
        assert ask(daemon).choices[0].message.content.startswith("chunk0")


def test_unreadable_ca_bundle_stops_start_up(tls_upstream, tmp_path):
    _, base_url = tls_upstream
    daemon = proxy(tmp_path, base_url, {"UPSTREAM_CA_BUNDLE": str(tmp_path / "none.pem")})
    with pytest.raises(Exception) as caught:
        daemon.start()
    assert "UPSTREAM_CA_BUNDLE" in str(caught.value)
