"""The broker fixtures themselves: each kind starts, accepts clients as configured, and stops."""

import socket

from tests.fixtures.mosquitto import Broker, BrokerFactory


def test_plain_broker_listens_and_stops(mosquitto_factory: BrokerFactory) -> None:
    broker = mosquitto_factory("plain")
    with socket.create_connection((broker.host, broker.port), timeout=2):
        pass
    broker.stop()
    assert broker.proc is None
    broker.start()
    assert len(broker.history) == 2


def test_tls_and_auth_brokers_start(mosquitto_factory: BrokerFactory) -> None:
    for kind in ("tls", "auth"):
        broker: Broker = mosquitto_factory(kind)
        assert broker.proc is not None
        assert broker.proc.poll() is None, broker.log()
