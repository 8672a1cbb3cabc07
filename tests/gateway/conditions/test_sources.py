"""From decoded frames and adverts to readings: SmartLabel environment, history, shock, Ruuvi."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gateway.conditions import (
    ConditionMonitor,
    ExcursionPhase,
    Quantity,
    Reading,
    ShockResult,
    advert_acceleration_g,
    advert_readings,
    feed,
    smartlabel_readings,
    smartlabel_shock,
)
from protocols.ble import Ruuvi5, SmartLabelAdv, SmartLabelAdvFlags, decode_manufacturer
from protocols.ble.samples import RUUVI5_MFR
from protocols.smartlabel import Environment, HistoryBatch, HistoryReading, Shock, build_body
from protocols.smartlabel.codec import decode
from tests.gateway.conditions.helpers import excursions

LABEL = 0x5A01020304050607
#: The reader's time sync put this label's clock 2 s behind the gateway.
OFFSET = timedelta(seconds=2)


def to_utc(label_time: int) -> datetime:
    return datetime.fromtimestamp(label_time, UTC) + OFFSET


def _wire(message: Environment | HistoryBatch | Shock) -> Environment | HistoryBatch | Shock:
    """Through the real codec: the message as the gateway decodes it from a frame body."""
    decoded = decode(build_body(message))
    assert isinstance(decoded, Environment | HistoryBatch | Shock)
    return decoded


def test_environment_and_history_frames_become_readings_at_their_own_times() -> None:
    env = _wire(Environment(LABEL, 7, 1767225900, 9.02, None))
    assert isinstance(env, Environment)
    assert smartlabel_readings(env, to_utc) == [
        Reading(Quantity.TEMPERATURE_C, 9.02, to_utc(1767225900))
    ]
    history = _wire(
        HistoryBatch(
            LABEL,
            8,
            1767225960,
            (
                HistoryReading(1767224700, 5.5, 80.0),
                HistoryReading(1767225000, 9.02, 79.5),
                HistoryReading(1767225300, None, None),
            ),
        )
    )
    assert isinstance(history, HistoryBatch)
    readings = smartlabel_readings(history, to_utc)
    assert [(r.quantity, r.value, r.at) for r in readings] == [
        (Quantity.TEMPERATURE_C, 5.5, to_utc(1767224700)),
        (Quantity.HUMIDITY_PCT, 80.0, to_utc(1767224700)),
        (Quantity.TEMPERATURE_C, 9.02, to_utc(1767225000)),
        (Quantity.HUMIDITY_PCT, 79.5, to_utc(1767225000)),
    ]


def test_a_history_batch_after_a_live_frame_is_merged_through_feed() -> None:
    m = ConditionMonitor(assignments={"pal": "pharma-2-8"})
    t0 = 1767222000
    # In range, then the label is out of reader range for 40 min; it comes back warm.
    for k in range(10):
        feed(m, "pal", smartlabel_readings(Environment(LABEL, k, t0 + 60 * k, 5.0, 80.0), to_utc))
    live = feed(m, "pal", smartlabel_readings(Environment(LABEL, 10, t0 + 3000, 9.0, 80.0), to_utc))
    (early,) = excursions(live, ExcursionPhase.OPEN)
    logged = tuple(
        HistoryReading(t0 + 600 + 60 * k, 5.0 if k < 10 else 9.0, 80.0) for k in range(40)
    )
    merged = feed(m, "pal", smartlabel_readings(HistoryBatch(LABEL, 11, t0 + 3010, logged), to_utc))
    (corrected,) = excursions(merged, ExcursionPhase.OPEN)
    # 5 °C at +1140 s, 9 °C at +1200 s: above 8 °C from +1185 s, label time, plus the offset.
    assert corrected.start == to_utc(t0 + 1185)
    assert early.excursion_id != corrected.excursion_id
    assert m.counters["late_merged"] == 2 * 40  # temperature and humidity series


def test_shock_frames_in_g_and_ms() -> None:
    shock = _wire(Shock(LABEL, 9, 1767225900, 4500, -3000, 60000, 8, 2000))
    assert isinstance(shock, Shock)
    assert smartlabel_shock(shock) == ((4.5, -3.0, 60.0), 8.0)
    m = ConditionMonitor(assignments={"parcel-7": "parcel"})
    peak, duration = smartlabel_shock(shock)
    (result,) = m.observe_shock("parcel-7", to_utc(shock.label_time), peak, duration)
    assert isinstance(result, ShockResult)
    assert result.alarm


def test_ruuvi_and_smartlabel_adverts() -> None:
    # The RAWv2 example of the Ruuvi documentation: 24.3 °C, 53.49 %RH, acc 0.004/-0.004/1.036 g.
    ruuvi = decode_manufacturer(0x0499, RUUVI5_MFR)
    heard = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
    assert isinstance(ruuvi, Ruuvi5)
    assert [(r.quantity, r.value) for r in advert_readings(ruuvi, heard)] == [
        (Quantity.TEMPERATURE_C, 24.3),
        (Quantity.HUMIDITY_PCT, 53.49),
    ]
    assert advert_acceleration_g(ruuvi) == pytest.approx((0.004, -0.004, 1.036))
    label = SmartLabelAdv(LABEL, 3000, -18.5, SmartLabelAdvFlags(0), 3)
    assert advert_readings(label, heard) == [Reading(Quantity.TEMPERATURE_C, -18.5, heard)]
    assert advert_acceleration_g(label) is None
    m = ConditionMonitor(assignments={"pal": "frozen"})
    assert feed(m, "pal", advert_readings(label, heard)) == []
    assert m.counters["readings"] == 1
