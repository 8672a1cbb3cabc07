"""The one place the uplink leans on paho's private names fails loudly when paho changes.

paho has no public hook for an inbound PUBLISH whose properties it cannot parse, so
``gateway.uplink._mqtt._Client`` overrides a private method and reads private state (the
fix that keeps such a command from dropping the connection). Every private name it uses is
checked by ``paho_internals_problem``; if a paho release moves one, this test names it.
The TLS socket is no longer wrapped through paho's private ``_ssl_wrap_socket`` /
``_ssl_context`` / ``_host``: the context's public ``sslsocket_class`` closes a socket whose
handshake failed."""

from __future__ import annotations

import ssl

import paho.mqtt.client as paho

from gateway.uplink._mqtt import _Client, _ClosingSSLSocket, _tls_context, paho_internals_problem
from gateway.uplink.config import UplinkConfig


def test_paho_still_has_the_private_names_the_malformed_publish_fix_uses() -> None:
    assert paho_internals_problem() is None


def test_the_fix_overrides_paho_and_nothing_tls_private() -> None:
    assert "_handle_publish" in vars(_Client)
    for private in ("_ssl_wrap_socket", "_create_socket", "_ssl_context", "_host"):
        assert private not in vars(_Client), f"{private} is overridden again"
    # paho still offers the public way in that the TLS fix relies on.
    assert callable(getattr(paho.Client, "tls_set_context", None))


def test_tls_sockets_close_themselves_when_the_handshake_fails() -> None:
    ctx = _tls_context(UplinkConfig())
    assert ctx.sslsocket_class is _ClosingSSLSocket
    assert issubclass(_ClosingSSLSocket, ssl.SSLSocket)
