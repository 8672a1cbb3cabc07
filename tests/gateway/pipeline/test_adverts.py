"""BLE adverts through decode, identity, presence and telemetry, pure, on simulator payloads."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

from drivers.ble import RawAdvert
from gateway.pipeline.adverts import AdvertProcessor, Reading
from gateway.pipeline.config import TelemetryConfig
from gateway.pipeline.telemetry import TelemetryLimiter
from gateway.presence import PresenceChange, PresenceConfig, PresenceTracker
from simulator.world.adverts import advert_for
from simulator.world.model import IBeaconTag, RuuviTag

WHEN = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
IBEACON = IBeaconTag(uuid=UUID("f7826da6-4fa2-4e98-8024-bc5b71e0893e"), major=300, minor=2)
RUUVI_MAC = "CB:B8:33:4C:88:4F"
RUUVI = RuuviTag(address=RUUVI_MAC)


def raw(tag: IBeaconTag | RuuviTag, address: str, rssi: int, t: float, seq: int = 0) -> RawAdvert:
    payload = advert_for(tag, address, {"temperature_c": 4.0, "humidity_pct": 80.0}, seq)
    return RawAdvert(
        address,
        rssi,
        payload.manufacturer_data,
        payload.service_data,
        (),
        None,
        None,
        "hci0",
        t,
        WHEN,
    )


def make() -> tuple[AdvertProcessor, PresenceTracker]:
    presence = PresenceTracker(PresenceConfig())
    limiter = TelemetryLimiter(TelemetryConfig())
    return AdvertProcessor({"hci0": "door-3"}, presence, limiter), presence


def test_a_close_tag_enters_its_zone_once() -> None:
    proc, presence = make()
    changes: list[PresenceChange] = []
    readings: list[Reading] = []
    for i in range(30):
        proc.process(raw(IBEACON, "11:22:33:44:55:66", -60, i * 0.5), changes, readings)
    tag = "ibeacon:f7826da6-4fa2-4e98-8024-bc5b71e0893e:300:2"
    assert [(c.kind, c.tag, c.zone, c.scanner) for c in changes] == [
        ("enter", tag, "door-3", "hci0")
    ]
    assert presence.state(tag, "door-3") == "present"
    assert readings == []  # an iBeacon carries no sensor values


def test_sensor_values_are_rate_limited_per_tag() -> None:
    proc, _ = make()
    changes: list[PresenceChange] = []
    readings: list[Reading] = []
    for i in range(600):  # one minute at 10 Hz, a new Ruuvi payload every time
        proc.process(raw(RUUVI, RUUVI_MAC, -90, i / 10, seq=i), changes, readings)
    assert len(readings) == 1
    (reading,) = readings
    assert reading.tag == "ruuvi:CB:B8:33:4C:88:4F"
    assert reading.values["temperature_c"] == 4.0
    assert reading.format == "ruuvi-5"


def test_untracked_and_broken_adverts_leave_no_state_and_are_counted() -> None:
    proc, presence = make()
    changes: list[PresenceChange] = []
    readings: list[Reading] = []
    phone = RawAdvert(
        "AA:AA:AA:AA:AA:01", -50, {0x0006: b"\x01\x09\x20"}, {}, (), None, None, "hci0", 1.0, WHEN
    )
    broken = RawAdvert(
        "AA:AA:AA:AA:AA:02", -50, {0x004C: b"\x02\x15\x00"}, {}, (), None, None, "hci0", 1.0, WHEN
    )
    for _ in range(1_000):
        proc.process(phone, changes, readings)
        proc.process(broken, changes, readings)
    assert proc.untracked == 2_000
    assert sum(proc.decode_errors.values()) == 1  # decoded once, then known to be broken
    assert presence.stats.tracked == 0
    assert (changes, readings) == ([], [])
