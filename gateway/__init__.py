"""The gateway: pipeline, domain logic, outbox, uplink, configuration, supervision and the CLI.

It receives typed messages from ``drivers`` (decoded by ``protocols``), turns them into events,
keeps them durable in the SQLite outbox, and forwards them over MQTT.
"""

from gateway.errors import GatewayError

__all__ = ["GatewayError"]
