"""Hypothesis strategies for SmartLabel messages, within each field's wire range.

Scaled values are drawn as wire integers and divided by the wire scale, so every generated
float is exactly what decoding the wire integer yields and ``decode(build(m)) == m`` holds.
Sentinel codes ("not available") are excluded from the integers and drawn as ``None``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from hypothesis import strategies as st

from protocols.smartlabel import (
    HISTORY_MAX_READINGS,
    Ack,
    Environment,
    GpsFix,
    Heartbeat,
    HistoryBatch,
    HistoryReading,
    LabelConfig,
    Message,
    Nack,
    NackReason,
    Shock,
    Status,
    TimeSource,
    TimeSync,
)
from protocols.smartlabel.messages import GATEWAY_TO_LABEL

T = TypeVar("T")

U8 = st.integers(0, 0xFF)
U16 = st.integers(0, 0xFFFF)
U32 = st.integers(0, 0xFFFF_FFFF)
U64 = st.integers(0, 0xFFFF_FFFF_FFFF_FFFF)
I16 = st.integers(-0x8000, 0x7FFF)
I32 = st.integers(-0x8000_0000, 0x7FFF_FFFF)


def optional(s: st.SearchStrategy[T]) -> st.SearchStrategy[T | None]:
    return st.none() | s


def scaled(lo: int, hi: int, scale: int) -> st.SearchStrategy[float]:
    """Wire integers lo..hi (sentinels excluded by the caller) as engineering values."""
    return st.integers(lo, hi).map(lambda raw: raw / scale)


CENTI_I16 = scaled(-0x7FFF, 0x7FFF, 100)  # 0x8000 is the sentinel
CENTI_U16 = scaled(0, 0xFFFE, 100)  # 0xFFFF is the sentinel


#: A label's own id: anything but the broadcast id, which only a gateway -> label message has.
LABEL_IDS = st.integers(0, 0xFFFF_FFFF_FFFF_FFFE)


def _header(cls: Callable[..., T], **payload: st.SearchStrategy[object]) -> st.SearchStrategy[T]:
    label_ids = U64 if cls in GATEWAY_TO_LABEL else LABEL_IDS
    return st.builds(cls, label_id=label_ids, seq=U32, label_time=U32, **payload)


gps_fixes = _header(
    GpsFix,
    lat=scaled(-900_000_000, 900_000_000, 10_000_000),
    lon=scaled(-1_800_000_000, 1_800_000_000, 10_000_000),
    alt_m=optional(scaled(-0x7FFF_FFFF, 0x7FFF_FFFF, 100)),
    speed_mps=optional(CENTI_U16),
    heading_deg=optional(scaled(0, 35_999, 100)),
    hdop=optional(CENTI_U16),
    num_sats=optional(st.integers(0, 0xFE)),
    fix_time=U32,
)
environments = _header(
    Environment, temperature_c=optional(CENTI_I16), humidity_pct=optional(CENTI_U16)
)
shocks = _header(
    Shock,
    peak_x_mg=I32,
    peak_y_mg=I32,
    peak_z_mg=I32,
    duration_ms=U16,
    threshold_mg=U16,
)
statuses = _header(
    Status,
    battery_mv=optional(st.integers(0, 0xFFFE)),
    firmware_version=st.tuples(U8, U8, U8).map(lambda v: f"{v[0]}.{v[1]}.{v[2]}"),
    flags=U16,
    config_id=U16,
    uptime_s=U32,
)
history_readings = st.builds(
    HistoryReading,
    time=U32,
    temperature_c=optional(CENTI_I16),
    humidity_pct=optional(CENTI_U16),
)
history_batches = _header(
    HistoryBatch,
    readings=st.lists(history_readings, min_size=1, max_size=HISTORY_MAX_READINGS).map(tuple),
)
heartbeats = _header(Heartbeat)
acks = _header(Ack, acked_seq=U32)
nacks = _header(Nack, nacked_seq=U32, reason=st.sampled_from(NackReason))
time_syncs = _header(TimeSync, utc_time_ms=U64, time_source=st.sampled_from(TimeSource))
#: Alarm limits a configuration may carry: low at or below high when both are set.
_alarm_limits = st.tuples(optional(CENTI_I16), optional(CENTI_I16)).map(
    lambda t: t if None in t else (min(t), max(t))  # type: ignore[type-var]
)
label_configs = _alarm_limits.flatmap(
    lambda limits: _header(
        LabelConfig,
        config_id=U16,
        report_interval_s=st.integers(1, 0xFFFF),
        heartbeat_interval_s=st.integers(1, 0xFFFF),
        temp_low_c=st.just(limits[0]),
        temp_high_c=st.just(limits[1]),
        humidity_high_pct=optional(scaled(0, 10_000, 100)),
        shock_threshold_mg=optional(st.integers(0, 0xFFFE)),
    )
)

STRATEGIES: dict[type[Message], st.SearchStrategy[Message]] = {
    GpsFix: gps_fixes,
    Environment: environments,
    Shock: shocks,
    Status: statuses,
    HistoryBatch: history_batches,
    Heartbeat: heartbeats,
    Ack: acks,
    Nack: nacks,
    TimeSync: time_syncs,
    LabelConfig: label_configs,
}
"""One strategy per message class; a test asserts that every class has one."""

messages: st.SearchStrategy[Message] = st.one_of(*STRATEGIES.values())
