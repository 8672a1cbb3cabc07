"""TLS against a real mosquitto with generated certificates: mutual TLS works, a wrong CA or a
wrong host name refuses to connect and says why, and nothing falls back to plaintext."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from gateway.uplink import ConnectionState, TlsConfig
from tests.fixtures.mosquitto import BrokerFactory, Certificates
from tests.gateway.uplink.helpers import Deliveries, event, open_outbox, open_uplink, plain_config


def tls_config(port: int, host: str, ca: Path, certs: Certificates) -> dict[str, object]:
    return {
        "host": host,
        "port": port,
        "transport": "tls",
        "tls": TlsConfig(ca_file=ca, cert_file=certs.client_cert, key_file=certs.client_key),
    }


async def test_mutual_tls_delivers(
    mosquitto_factory: BrokerFactory, certificates: Certificates, tmp_path: Path
) -> None:
    broker = mosquitto_factory("tls")
    config = plain_config(
        broker, **tls_config(broker.port, "localhost", certificates.ca_cert, certificates)
    )
    async with open_outbox(tmp_path) as outbox:
        await outbox.accept([event(i) for i in range(50)])
        deliveries = Deliveries()
        async with open_uplink(config, outbox, on_delivery=deliveries) as uplink:
            await deliveries.wait_acked(50)
        assert uplink.stats().connects == 1
        await outbox.flush()
        assert (await outbox.stats()).depth == 0


@pytest.mark.parametrize(
    ("host", "use_other_ca", "expected_text"),
    [
        ("localhost", True, "self-signed certificate in certificate chain"),
        ("127.0.0.1", False, "IP address mismatch"),
    ],
    ids=["wrong-ca", "wrong-host"],
)
async def test_verification_failure_refuses_and_says_why(
    mosquitto_factory: BrokerFactory,
    certificates: Certificates,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    host: str,
    use_other_ca: bool,
    expected_text: str,
) -> None:
    broker = mosquitto_factory("tls")
    ca = certificates.other_ca_cert if use_other_ca else certificates.ca_cert
    config = plain_config(broker, **tls_config(broker.port, host, ca, certificates))
    caplog.set_level(logging.ERROR, logger="gateway.uplink")
    async with open_outbox(tmp_path) as outbox, open_uplink(config, outbox) as uplink:
        await uplink.wait_state(ConnectionState.DISCONNECTED)
        assert uplink.state_detail == "tls_verify"
        assert uplink.stats().connects == 0
    messages = [r.getMessage() for r in caplog.records if "cannot connect" in r.getMessage()]
    assert len(messages) == 1  # once per reason, not once per attempt
    assert expected_text in messages[0]


async def test_tls_client_against_plain_broker_never_falls_back(
    mosquitto_factory: BrokerFactory, certificates: Certificates, tmp_path: Path
) -> None:
    broker = mosquitto_factory("plain")
    config = plain_config(
        broker, **tls_config(broker.port, "localhost", certificates.ca_cert, certificates)
    )
    async with open_outbox(tmp_path) as outbox:
        await outbox.accept([event(1)])
        async with open_uplink(config, outbox) as uplink:
            await uplink.wait_state(ConnectionState.DISCONNECTED)
            assert uplink.state_detail in {"tls_handshake", "connect_failed"}
        assert uplink.stats().messages_published == 0
        assert (await outbox.stats()).depth == 1


def test_plaintext_only_when_asked() -> None:
    from gateway.uplink import UplinkConfig

    assert UplinkConfig().transport == "tls"
    with pytest.raises(ValueError, match="plaintext"):
        UplinkConfig(transport="tcp", tls=TlsConfig(ca_file=Path("ca.pem")))
