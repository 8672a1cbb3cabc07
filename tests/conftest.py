"""Shared test configuration. Fixture plugins that start real components live in tests/fixtures/."""

pytest_plugins: list[str] = [
    "tests.fixtures.mosquitto",
    "tests.fixtures.nats",
    "tests.fixtures.bluez",
    "tests.fixtures.gpsd",
    "tests.fixtures.clock",
]
