# -*- test-case-name: tests.unit.test_tls -*-
"""
TLS listeners whose certificate and key can be replaced while they run.

Operators renew certificates (every 60–90 days with ACME) without wanting a
restart to drop established connections and streams. A listener given as
an C{ssl:} endpoint string is built as Twisted builds it, and served
through L{ReloadableTLS}: new connections take the TLS settings current
when they arrive, established ones keep theirs. L{ReloadableTLS.reload}
builds fresh settings from the same endpoint string (re-reading the
files), and keeps the old ones if the new files are bad.

Twisted's C{ssl:} endpoints already require TLS 1.2 or newer with a modern
cipher list, and offer C{h2} and C{http/1.1} over ALPN when the site can
speak HTTP/2; nothing here changes that.
"""

from __future__ import annotations

from twisted.internet.endpoints import SSL4ServerEndpoint, serverFromString
from twisted.internet.interfaces import IOpenSSLServerConnectionCreator
from zope.interface import implementer


class TLSSettingsError(Exception):
    """
    The certificate or key of a TLS listener cannot be used; the message
    names the endpoint and the cause on one line.
    """


#: The first pyOpenSSL that refuses to change a context once a connection
#: was made with it, which is how Twisted releases before the new-style
#: server options (C{OpenSSLCertificateOptions.serverConnectionForTLS})
#: set up ALPN on every TLS connection: that pair fails every handshake.
_PYOPENSSL_STRICT = (26, 2)


def _compatible(options, description: str, pyopenssl: str | None = None) -> None:
    """
    Refuse, with one line, a Twisted and pyOpenSSL pair that cannot serve
    TLS at all, rather than start and fail each handshake with a traceback.

    @param pyopenssl: the pyOpenSSL version (default: the one installed).
    """
    if hasattr(options, "serverConnectionForTLS"):
        return
    import OpenSSL
    import twisted

    pyopenssl = pyopenssl or OpenSSL.__version__
    version = tuple(int(part) for part in pyopenssl.split(".")[:2] if part.isdigit())
    if version >= _PYOPENSSL_STRICT:
        raise TLSSettingsError(
            f"{description}: Twisted {twisted.__version__} cannot serve TLS with pyOpenSSL "
            f"{pyopenssl}: install pyOpenSSL older than 26.2, or Twisted 26.4 or newer")


def _build(reactor, description: str) -> SSL4ServerEndpoint:
    """
    Twisted's endpoint for C{description}, its certificate and key loaded
    and checked against each other now rather than at the first client.
    """
    try:
        endpoint = serverFromString(reactor, description)
        _compatible(endpoint._sslContextFactory, description)
        endpoint._sslContextFactory.getContext()
    except TLSSettingsError:
        raise
    except Exception as e:
        cause = " ".join(str(e).split()) or type(e).__name__
        raise TLSSettingsError(f"{description}: {cause[:300]}") from None
    return endpoint


@implementer(IOpenSSLServerConnectionCreator)
class ReloadableTLS:
    """
    The TLS settings of one C{ssl:} listener, replaceable at run time.
    """

    def __init__(self, reactor, description: str) -> None:
        self._reactor = reactor
        self.description = description
        self._parsed = _build(reactor, description)
        self._options = self._parsed._sslContextFactory

    def endpoint(self) -> SSL4ServerEndpoint:
        """
        An endpoint listening as C{description} says, with these settings.
        """
        parsed = self._parsed
        # Twisted keeps these as private attributes of the endpoint it
        # parsed; tests/unit/test_tls.py fails loudly if that changes.
        return SSL4ServerEndpoint(
            self._reactor, parsed._port, self, parsed._backlog, parsed._interface
        )

    def reload(self) -> None:
        """
        Use the files named by the endpoint string as they are now.

        @raise TLSSettingsError: the new files are unusable; the settings
            in use are kept.
        """
        self._options = _build(self._reactor, self.description)._sslContextFactory

    def serverConnectionForTLS(self, protocol):
        make = getattr(self._options, "serverConnectionForTLS", None)
        if make is None:
            # Twisted before 25 has options that only make contexts (its
            # TLS layer adapts them the same way).
            from OpenSSL.SSL import Connection

            return Connection(self._options.getContext(), None)
        return make(protocol)

    def getContext(self):
        return self._options.getContext()
