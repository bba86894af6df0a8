"""
L{ReloadableTLS}: TLS settings built as Twisted builds them, checked at
once, and replaceable.
"""

import shutil

import pytest
from twisted.internet.testing import MemoryReactor

from llmedge.testing.certs import make_pki
from llmedge.tls import ReloadableTLS, TLSSettingsError


@pytest.fixture
def live(tmp_path):
    pki = make_pki(tmp_path)
    directory = tmp_path / "live"
    directory.mkdir()
    shutil.copy(pki.cert, directory / "cert.pem")
    shutil.copy(pki.key, directory / "key.pem")
    return directory


def description(directory, port=8443):
    return (f"ssl:{port}:interface=127.0.0.1:privateKey={directory}/key.pem"
            f":certKey={directory}/cert.pem")


def test_endpoint_listens_where_the_string_says_with_these_settings(live):
    tls = ReloadableTLS(MemoryReactor(), description(live))
    endpoint = tls.endpoint()
    reactor = endpoint._reactor
    endpoint.listen(object())
    port, _, context, _, interface = reactor.sslServers[0]
    assert (port, interface) == (8443, "127.0.0.1")
    assert context is tls


def test_reload_takes_the_files_as_they_are_now(live, tmp_path):
    tls = ReloadableTLS(MemoryReactor(), description(live))
    before = tls._options
    (tmp_path / "other").mkdir()
    other = make_pki(tmp_path / "other")
    shutil.copy(other.cert, live / "cert.pem")
    shutil.copy(other.key, live / "key.pem")
    tls.reload()
    assert tls._options is not before


def test_broken_files_are_refused_and_the_old_settings_kept(live):
    tls = ReloadableTLS(MemoryReactor(), description(live))
    before = tls._options
    (live / "cert.pem").write_text("garbage")
    with pytest.raises(TLSSettingsError) as caught:
        tls.reload()
    assert str(caught.value).startswith("ssl:8443:")
    assert "\n" not in str(caught.value)
    assert tls._options is before


def test_mismatched_key_is_refused_at_once(live, tmp_path):
    other_dir = tmp_path / "other"
    other_dir.mkdir()
    other = make_pki(other_dir)
    shutil.copy(other.key, live / "key.pem")
    with pytest.raises(TLSSettingsError):
        ReloadableTLS(MemoryReactor(), description(live))


class _OldOptions:
    """
    Server options as Twisted before 26.4 made them: contexts only.
    """

    def getContext(self):
        return None


def test_an_old_twisted_with_a_strict_pyopenssl_is_refused_in_one_line():
    from llmedge.tls import _compatible

    with pytest.raises(TLSSettingsError) as caught:
        _compatible(_OldOptions(), "ssl:8443", pyopenssl="26.2.0")
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("ssl:8443: Twisted ") and "older than 26.2" in message


@pytest.mark.parametrize("version", ["24.2.1", "26.1.0"])
def test_an_old_twisted_with_an_older_pyopenssl_is_fine(version):
    from llmedge.tls import _compatible

    _compatible(_OldOptions(), "ssl:8443", pyopenssl=version)
