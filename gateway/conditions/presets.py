"""The condition profiles tagrelay ships, as data, each with where its numbers come from.

A range comes from a published standard (named in ``source`` and in the comment); where the
standard sets no alarm timing, the rules are tagrelay's defaults and say so. The config and the
``profiles.set`` command may replace any of them by name. docs/conditions.md lists them.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Final

from gateway.conditions.profiles import (
    Direction,
    Limit,
    Profile,
    Rule,
    RuleKind,
    ShockLimit,
)

__all__ = ["PRESETS"]

_INSTANT: Final = Rule(kind=RuleKind.INSTANT)


def _consecutive(seconds: float) -> Rule:
    return Rule(kind=RuleKind.CONSECUTIVE, duration_s=seconds)


def _cumulative(seconds: float) -> Rule:
    return Rule(kind=RuleKind.CUMULATIVE, duration_s=seconds)


_PROFILES: Final = (
    # Range: USP <659> "Refrigerator: a cold place ... maintained thermostatically between 2°
    # and 8 °C"; the usual label claim in EU GDP (2013/C 343/01) transport. Rules: tagrelay's
    # shipping default, an instant alarm on either side (the driver can still act) and a
    # cumulative hour above 8 °C; 0.3 °C of hysteresis, above a label's ±0.2 °C noise.
    Profile(
        name="pharma-2-8",
        description="Refrigerated pharmaceuticals and chilled goods, 2..8 °C",
        source="USP <659> refrigerator range; rules: tagrelay default",
        temperature_c=(
            Limit(
                name="high",
                direction=Direction.ABOVE,
                threshold=8.0,
                rules=(_INSTANT, _cumulative(3600.0)),
                hysteresis=0.3,
            ),
            Limit(
                name="low",
                direction=Direction.BELOW,
                threshold=2.0,
                rules=(_INSTANT,),
                hysteresis=0.3,
            ),
        ),
    ),
    # WHO PQS category E006, 30-day electronic refrigerator temperature loggers ("30-DTR",
    # e.g. Fridge-tag class), as in WHO/IVB/15.04 "How to monitor temperatures in the vaccine
    # supply chain": heat alarm after 10 h continuously above +8 °C, freeze alarm after 60 min
    # at or below -0.5 °C (the threshold itself is beyond for the freeze alarm).
    Profile(
        name="who-pqs-refrigerator",
        description="Vaccine refrigerator, WHO PQS 30-day logger alarm rules",
        source="WHO PQS E006 30-day temperature logger alarms (WHO/IVB/15.04)",
        temperature_c=(
            Limit(
                name="heat",
                direction=Direction.ABOVE,
                threshold=8.0,
                rules=(_consecutive(10 * 3600.0),),
            ),
            Limit(
                name="freeze",
                direction=Direction.BELOW,
                threshold=-0.5,
                beyond_at_threshold=True,
                rules=(_consecutive(3600.0),),
            ),
        ),
    ),
    # WHO/PQS/E006/TR07, electronic shipping indicators, type 1 (international shipment of
    # freeze-sensitive vaccines): 45 °C or above for 1 h (single event), 30 °C or above for 10 h
    # in total (cumulative), -0.5 °C or below for 1 h. The spec counts the thresholds as beyond.
    Profile(
        name="who-pqs-shipping-type1",
        description="International vaccine shipment, WHO PQS shipping indicator type 1",
        source="WHO/PQS/E006/TR07 electronic shipping indicator, type 1 alarm settings",
        temperature_c=(
            Limit(
                name="heat",
                direction=Direction.ABOVE,
                threshold=45.0,
                beyond_at_threshold=True,
                rules=(_consecutive(3600.0),),
            ),
            Limit(
                name="warm",
                direction=Direction.ABOVE,
                threshold=30.0,
                beyond_at_threshold=True,
                rules=(_cumulative(10 * 3600.0),),
            ),
            Limit(
                name="freeze",
                direction=Direction.BELOW,
                threshold=-0.5,
                beyond_at_threshold=True,
                rules=(_consecutive(3600.0),),
            ),
        ),
    ),
    # Range: ICH Q1A(R2) long-term storage "in a freezer: -20 °C ± 5 °C", i.e. -25..-15 °C.
    # Rules: tagrelay default; a door opening warms the air for minutes, so the high side alarms
    # after 15 min in a row or 1 h in total; 0.5 °C of hysteresis.
    Profile(
        name="frozen",
        description="Frozen goods, -25..-15 °C",
        source="ICH Q1A(R2) freezer condition -20 ± 5 °C; rules: tagrelay default",
        temperature_c=(
            Limit(
                name="high",
                direction=Direction.ABOVE,
                threshold=-15.0,
                rules=(_consecutive(900.0), _cumulative(3600.0)),
                hysteresis=0.5,
            ),
            Limit(
                name="low",
                direction=Direction.BELOW,
                threshold=-25.0,
                rules=(_consecutive(3600.0),),
                hysteresis=0.5,
            ),
        ),
    ),
    # Range: WHO TRS 908 Annex 9 (good storage practices), "normal storage conditions: dry,
    # well-ventilated premises at 15-25 °C". Rules: tagrelay default, 30 min in a row or 4 h
    # in total beyond either side (ambient goods tolerate a warm loading bay).
    Profile(
        name="ambient-15-25",
        description="Controlled ambient goods, 15..25 °C",
        source="WHO TRS 908 Annex 9 normal storage 15-25 °C; rules: tagrelay default",
        temperature_c=(
            Limit(
                name="high",
                direction=Direction.ABOVE,
                threshold=25.0,
                rules=(_consecutive(1800.0), _cumulative(4 * 3600.0)),
                hysteresis=0.5,
            ),
            Limit(
                name="low",
                direction=Direction.BELOW,
                threshold=15.0,
                rules=(_consecutive(1800.0), _cumulative(4 * 3600.0)),
                hysteresis=0.5,
            ),
        ),
    ),
    # Parcels: shock only. tagrelay default: a sorter's knocks are ~10 g for 1-2 ms (recorded,
    # never alarmed); a fall from a conveyor or a drop on concrete is tens of g for several ms.
    Profile(
        name="parcel",
        description="General parcels: shock monitoring only",
        source="tagrelay default",
        shock=ShockLimit(alarm_g=25.0, min_duration_ms=3.0, record_g=10.0),
        warning=None,
    ),
)

#: Preset profiles by name (read-only).
PRESETS: Final = MappingProxyType({p.name: p for p in _PROFILES})
