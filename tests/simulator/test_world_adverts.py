"""Simulated tag adverts decode with the gateway's own decoders to the values the world holds."""

from __future__ import annotations

from uuid import UUID

import pytest

from protocols.ble import (
    EddystoneUid,
    IBeacon,
    Ruuvi5,
    SmartLabelAdv,
    SmartLabelAdvFlags,
    decode_advertisement,
)
from simulator.world import SmartLabelTag, World, advert_for, load_scenario
from simulator.world.model import EddystoneUidTag, IBeaconTag, RuuviTag
from tests.protocols.ble_vectors import vectors

UUID_ = UUID("f7826da6-4fa2-4e98-8024-bc5b71e0893e")


def test_ibeacon() -> None:
    tag = IBeaconTag(uuid=UUID_, major=300, minor=7, tx_power_1m_dbm=-61.4)
    p = advert_for(tag, "C0:00:00:00:00:01", {}, 0)
    (adv,) = decode_advertisement(p.manufacturer_data, p.service_data)
    assert isinstance(adv, IBeacon)
    assert (adv.major, adv.minor) == (300, 7)
    assert str(UUID_) in str(adv.uuid).lower()
    assert adv.measured_power_dbm == -61


def test_eddystone_uid() -> None:
    tag = EddystoneUidTag(namespace="edd1ebeac04e5defa017", instance="0000000000a3")
    p = advert_for(tag, "C0:00:00:00:00:02", {}, 0)
    (adv,) = decode_advertisement(p.manufacturer_data, p.service_data)
    assert isinstance(adv, EddystoneUid)
    assert adv.namespace == bytes.fromhex("edd1ebeac04e5defa017")
    assert adv.instance == bytes.fromhex("0000000000a3")
    assert adv.tx_power_dbm == -59 + 41


def test_smartlabel_carries_temperature_and_shock_flag() -> None:
    tag = SmartLabelTag(label_id=0x5A4C000000011000, battery_mv=2950)
    p = advert_for(tag, "C0:00:00:00:00:03", {"temperature_c": 9.87}, 41, shock_latched=True)
    (adv,) = decode_advertisement(p.manufacturer_data, p.service_data)
    assert isinstance(adv, SmartLabelAdv)
    assert (adv.label_id, adv.battery_mv, adv.sequence) == (0x5A4C000000011000, 2950, 41)
    assert adv.temperature_c == pytest.approx(9.87)
    assert adv.flags & SmartLabelAdvFlags.SHOCK_LATCHED


def test_ruuvi_df5_matches_the_published_vector() -> None:
    # The published "valid data" vector: 24.3 °C, 53.49 %RH; the simulator always sends 1 g on z
    # and standard pressure, so compare the fields it models.
    tag = RuuviTag()
    p = advert_for(tag, "CB:B8:33:4C:88:4F", {"temperature_c": 24.3, "humidity_pct": 53.49}, 205)
    (adv,) = decode_advertisement(p.manufacturer_data, p.service_data)
    assert isinstance(adv, Ruuvi5)
    assert adv.temperature_c == pytest.approx(24.3)
    assert adv.humidity_pct == pytest.approx(53.49)
    assert adv.mac == "CB:B8:33:4C:88:4F"
    assert adv.measurement_sequence == 205
    assert adv.acc_z_g == pytest.approx(1.0)
    (published,) = [v["hex"] for v in vectors("ruuvi_df5_rawv2") if v["name"] == "valid data"]
    ours = p.manufacturer_data[0x0499].hex().upper()
    assert ours[2:10] == published[2:10]  # temperature and humidity bytes
    assert ours[-12:] == published[-12:]  # MAC


def test_every_tag_in_the_shipped_scenarios_builds_a_decodable_advert() -> None:
    for name in ("cross-dock", "delivery-route"):
        world = World(load_scenario(name))
        state = world.snapshot(600)
        for ref in world.tags:
            p = advert_for(ref.tag, ref.address, state.items[ref.item].sensors, 1)
            adverts = decode_advertisement(p.manufacturer_data, p.service_data)
            assert len(adverts) == 1, (name, ref)
