"""The EPCIS 2.0 / CBV 2.0 vocabulary tagrelay speaks: event types, actions, business steps,
dispositions, business transaction and party types, sensor measurement types and the UN/CEFACT
(Recommendation 20) units they are reported in.

Values are the bare CBV words the EPCIS JSON-LD context defines (``"bizStep": "accepting"``),
never the old ``urn:epcglobal:cbv:...`` URNs.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from gateway.events import Quantity

__all__ = [
    "CBV_BIZ_STEP_URI",
    "CBV_BTT_URI",
    "CBV_DISPOSITION_URI",
    "CBV_SDT_URI",
    "EPCIS_CONTEXT_URI",
    "GS1_VOC_URI",
    "SENSOR_TYPES",
    "Action",
    "BizStep",
    "BizTransactionType",
    "Disposition",
    "EpcisEventType",
    "SensorException",
    "SensorType",
    "SourceDestType",
]

#: The normative JSON-LD context of EPCIS 2.0 (every document names it first).
EPCIS_CONTEXT_URI: Final = "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"
#: Where the bare CBV words expand to (CBV 2.0 web vocabulary); the event hash uses these.
CBV_BIZ_STEP_URI: Final = "https://ref.gs1.org/cbv/BizStep-"
CBV_DISPOSITION_URI: Final = "https://ref.gs1.org/cbv/Disp-"
CBV_BTT_URI: Final = "https://ref.gs1.org/cbv/BTT-"
CBV_SDT_URI: Final = "https://ref.gs1.org/cbv/SDT-"
#: Where sensor measurement types and exceptions expand to (the GS1 web vocabulary).
GS1_VOC_URI: Final = "https://gs1.org/voc/"


class EpcisEventType(enum.StrEnum):
    OBJECT = "ObjectEvent"
    AGGREGATION = "AggregationEvent"
    ASSOCIATION = "AssociationEvent"


class Action(enum.StrEnum):
    OBSERVE = "OBSERVE"
    ADD = "ADD"
    DELETE = "DELETE"


class BizStep(enum.StrEnum):
    """The CBV 2.0 business steps tagrelay uses (a subset of the standard's list)."""

    #: An object changes possession and/or ownership (a handoff between two parties).
    ACCEPTING = "accepting"
    #: An object arrives at a location (a door, a dock zone).
    ARRIVING = "arriving"
    #: An object leaves a location.
    DEPARTING = "departing"
    #: An object is unloaded from a vehicle (a parcel leaving the van at a stop).
    UNLOADING = "unloading"
    #: Objects are loaded into a vehicle (the load of a van as it leaves the depot).
    LOADING = "loading"
    #: Objects are combined (a tag attached to the asset it reports for).
    ASSEMBLING = "assembling"
    #: Objects are separated (a tag taken off its asset).
    DISASSEMBLING = "disassembling"
    #: An event whose purpose is to report sensor data.
    SENSOR_REPORTING = "sensor_reporting"


class Disposition(enum.StrEnum):
    """The CBV 2.0 dispositions tagrelay uses."""

    #: Shipped and on its way to its destination (still in the carriers' custody).
    IN_TRANSIT = "in_transit"


class BizTransactionType(enum.StrEnum):
    """CBV 2.0 business transaction types (the whole list)."""

    BOL = "bol"
    CERT = "cert"
    DESADV = "desadv"
    INV = "inv"
    PEDIGREE = "pedigree"
    PO = "po"
    POC = "poc"
    PRODORDER = "prodorder"
    RECADV = "recadv"
    RMA = "rma"
    TESTPRD = "testprd"
    TESTRES = "testres"
    UPEVT = "upevt"


class SourceDestType(enum.StrEnum):
    OWNING_PARTY = "owning_party"
    POSSESSING_PARTY = "possessing_party"
    LOCATION = "location"


class SensorException(enum.StrEnum):
    """GS1 web vocabulary ``SensorAlertType``."""

    ALARM_CONDITION = "ALARM_CONDITION"
    ERROR_CONDITION = "ERROR_CONDITION"


@dataclass(frozen=True, slots=True)
class SensorType:
    """How one of tagrelay's quantities is reported in a ``sensorReport``."""

    #: The GS1 web vocabulary ``MeasurementType`` (bare word, e.g. ``Temperature``).
    type: str
    #: The UN/CEFACT Recommendation 20 unit code of the value, None for a plain count.
    uom: str | None


#: Every quantity that has a GS1 measurement type, with its unit. Indices without a physical
#: unit (VOC, NOx) have none and are not reported.
SENSOR_TYPES: Final = MappingProxyType(
    {
        Quantity.TEMPERATURE_C: SensorType("Temperature", "CEL"),
        # P1 is "percent"; relative humidity is a percentage, not a mass per volume (A93).
        Quantity.HUMIDITY_PCT: SensorType("RelativeHumidity", "P1"),
        Quantity.PRESSURE_PA: SensorType("Pressure", "PAL"),
        # K40 is the standard acceleration of free fall (g), the unit the labels measure in.
        Quantity.ACC_X_G: SensorType("Acceleration", "K40"),
        Quantity.ACC_Y_G: SensorType("Acceleration", "K40"),
        Quantity.ACC_Z_G: SensorType("Acceleration", "K40"),
        Quantity.SHOCK_G: SensorType("Acceleration", "K40"),
        # 2Z is millivolt.
        Quantity.BATTERY_MV: SensorType("Voltage", "2Z"),
        Quantity.MOVEMENT_COUNT: SensorType("Count", None),
        # 59 is "part per million".
        Quantity.CO2_PPM: SensorType("Dimensionless", "59"),
        # GQ is microgram per cubic metre.
        Quantity.PM1_0_UGM3: SensorType("MassConcentration", "GQ"),
        Quantity.PM2_5_UGM3: SensorType("MassConcentration", "GQ"),
        Quantity.PM4_0_UGM3: SensorType("MassConcentration", "GQ"),
        Quantity.PM10_0_UGM3: SensorType("MassConcentration", "GQ"),
        Quantity.LUMINOSITY_LUX: SensorType("Illuminance", "LUX"),
    }
)
