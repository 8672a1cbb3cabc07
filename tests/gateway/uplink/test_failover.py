"""Several broker endpoints (``fallback_brokers``): parsing, and rotation against real brokers.

A refused endpoint moves the next attempt to the next one; a lost connection does too, and the
rotation goes round to the first again. One endpoint behaves as before (no switches).
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import pytest
from pydantic import ValidationError

from gateway.uplink import ConnectionState, Uplink, UplinkConfig
from gateway.uplink.config import BrokerEndpoint, parse_endpoint
from tests.fixtures.mosquitto import Broker, BrokerFactory, free_port
from tests.gateway.test_config_preflight import tagrelay_in_process
from tests.gateway.uplink.helpers import (
    GATEWAY_ID,
    Deliveries,
    event,
    open_outbox,
    open_uplink,
    plain_config,
    subscribe,
)

EVENTS = f"tagrelay/v1/{GATEWAY_ID}/events/#"


def _where(broker: Broker) -> str:
    return f"{broker.host}:{broker.port}"


async def _connected_to(uplink: Uplink, endpoint: str, timeout_s: float = 20.0) -> None:
    """Until the uplink is connected to ``endpoint``."""
    async with asyncio.timeout(timeout_s):
        while not (uplink.state == ConnectionState.CONNECTED and uplink.state_detail == endpoint):
            if uplink.state == ConnectionState.CONNECTED:
                await uplink.wait_state(ConnectionState.DISCONNECTED)
            else:
                await uplink.wait_state(ConnectionState.CONNECTED)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("node-2", BrokerEndpoint("node-2", 8883)),
        ("node-2:1883", BrokerEndpoint("node-2", 1883)),
        (" 10.0.0.7:8884 ", BrokerEndpoint("10.0.0.7", 8884)),
        ("[fd00::7]", BrokerEndpoint("fd00::7", 8883)),
        ("[fd00::7]:1883", BrokerEndpoint("fd00::7", 1883)),
    ],
)
def test_endpoint_forms(text: str, expected: BrokerEndpoint) -> None:
    assert parse_endpoint(text, 8883) == expected


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "not a host"),
        ("node-2:", "port must be"),
        ("node-2:0", "port must be"),
        ("node-2:65536", "port must be"),
        ("node-2:mqtt", "port must be"),
        ("fd00::7", "in brackets"),
        ("[fd00::7", "is written"),
        ("[fd00::7]1883", "is written"),
        ("tcp://node-2", "not a URL"),
        ("node 2", "not a host"),
    ],
)
def test_bad_endpoints_are_refused_with_the_reason(text: str, says: str) -> None:
    with pytest.raises(ValidationError, match=says):
        UplinkConfig(host="node-1", fallback_brokers=(text,))


def test_config_check_and_show_name_every_broker(tmp_path: Path) -> None:
    config = tmp_path / "tagrelay.toml"
    config.write_text(
        'gateway_id = "gw-1"\nstate_dir = "state"\n[uplink]\nhost = "node-1"\nport = 8883\n'
        'transport = "tls"\nfallback_brokers = ["node-2", "node-3:8884"]\n'
    )
    done = tagrelay_in_process("config", "check", str(config))
    assert done.returncode == 0, done.stderr
    assert "broker       node-1:8883 (then node-2:8883, node-3:8884), MQTT 5" in done.stdout
    shown = json.loads(tagrelay_in_process("config", "show", str(config)).stdout)
    assert shown["uplink"]["fallback_brokers"] == ["node-2", "node-3:8884"]
    config.write_text(config.read_text().replace('"node-2"', '"node-2:88833"'))
    done = tagrelay_in_process("config", "check", str(config))
    assert done.returncode == 1
    assert "uplink.fallback_brokers" in done.stderr
    assert "'node-2:88833': the port must be a number from 1 to 65535" in done.stderr


def test_endpoints_in_order_and_no_repeats() -> None:
    config = UplinkConfig(host="node-1", port=1883, fallback_brokers=("node-2", "node-3:1884"))
    assert [str(e) for e in config.endpoints()] == ["node-1:1883", "node-2:1883", "node-3:1884"]
    with pytest.raises(ValidationError, match="repeats a broker"):
        UplinkConfig(host="node-1", port=1883, fallback_brokers=("node-1:1883",))
    with pytest.raises(ValidationError, match="repeats a broker"):
        UplinkConfig(host="node-1", fallback_brokers=("node-2", "node-2:8883"))
    with pytest.raises(ValidationError, match="at most 16"):
        UplinkConfig(host="node-1", fallback_brokers=tuple(f"n{i}" for i in range(17)))


@pytest.mark.timeout(60)
async def test_refused_endpoints_are_skipped_until_one_answers(
    mosquitto: Broker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.uplink")
    dead_1, dead_2 = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    host, port = dead_1.split(":")
    config = plain_config(
        mosquitto, host=host, port=int(port), fallback_brokers=(dead_2, _where(mosquitto))
    )
    n = 20
    async with open_outbox(tmp_path) as outbox, subscribe(mosquitto, EVENTS) as sub:
        await outbox.accept([event(i) for i in range(n)])
        deliveries = Deliveries()
        async with open_uplink(config, outbox, on_delivery=deliveries) as uplink:
            await deliveries.wait_acked(n)
            stats = uplink.stats()
            assert uplink.state_detail == stats.broker == _where(mosquitto)
            assert stats.broker_switches == 2
        await sub.wait_until(lambda m: len(m) >= n)
    assert sorted(e["seq"] for e in sub.events()) == list(range(n))
    messages = [r.getMessage() for r in caplog.records]
    # An outage of several nodes is one line per reason, not one per node per attempt.
    assert sum(m.startswith("uplink not connected") for m in messages) == 1
    assert f"uplink connected: {_where(mosquitto)}" in messages


@pytest.mark.timeout(60)
async def test_a_lost_connection_moves_on_and_the_rotation_goes_round(
    mosquitto_factory: BrokerFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.uplink")
    first, second = mosquitto_factory("plain"), mosquitto_factory("plain")
    config = plain_config(first, fallback_brokers=(_where(second),))
    async with open_outbox(tmp_path) as outbox:
        deliveries = Deliveries()
        async with open_uplink(config, outbox, on_delivery=deliveries) as uplink:
            await _connected_to(uplink, _where(first))
            first.kill()
            await _connected_to(uplink, _where(second))
            await outbox.accept([event(i) for i in range(10)])
            await deliveries.wait_acked(10)
            first.start()  # same port
            second.kill()
            await _connected_to(uplink, _where(first))
            await outbox.accept([event(i) for i in range(10, 20)])
            await deliveries.wait_acked(20)
            assert uplink.stats().broker_switches >= 2
    messages = [r.getMessage() for r in caplog.records]
    assert any(
        m.startswith(f"uplink: lost {_where(first)}, next attempt on {_where(second)} (broker 2")
        for m in messages
    )
    assert any(
        m.startswith(f"uplink: lost {_where(second)}, next attempt on {_where(first)} (broker 1")
        for m in messages
    )


@pytest.mark.timeout(60)
async def test_one_endpoint_stays_on_it(mosquitto: Broker, tmp_path: Path) -> None:
    async with open_outbox(tmp_path) as outbox, open_uplink(plain_config(mosquitto), outbox) as up:
        await _connected_to(up, _where(mosquitto))
        mosquitto.kill()
        await up.wait_state(ConnectionState.DISCONNECTED)
        mosquitto.start()
        await _connected_to(up, _where(mosquitto))
        stats = up.stats()
        assert (stats.broker, stats.broker_switches) == (_where(mosquitto), 0)
