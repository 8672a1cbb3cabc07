"""The EPCIS output profile: tagrelay's native events rendered as GS1 EPCIS 2.0 JSON-LD
events with CBV 2.0 vocabulary and event-hash ids (docs/epcis.md). Pure: no I/O, no clock."""

from gateway.epcis.hashing import HASH_VERSION, JsonValue, event_hash, pre_hash
from gateway.epcis.render import (
    EXTENSION_NAMESPACE,
    EXTENSION_PREFIX,
    EpcisError,
    Rendering,
    Skip,
    SkipReason,
    document,
    epc_uri,
    location_uri,
    party_uri,
    render,
    sgln_uri,
)
from gateway.epcis.vocab import (
    EPCIS_CONTEXT_URI,
    SENSOR_TYPES,
    Action,
    BizStep,
    BizTransactionType,
    Disposition,
    EpcisEventType,
    SensorException,
    SensorType,
    SourceDestType,
)

__all__ = [
    "EPCIS_CONTEXT_URI",
    "EXTENSION_NAMESPACE",
    "EXTENSION_PREFIX",
    "HASH_VERSION",
    "SENSOR_TYPES",
    "Action",
    "BizStep",
    "BizTransactionType",
    "Disposition",
    "EpcisError",
    "EpcisEventType",
    "JsonValue",
    "Rendering",
    "SensorException",
    "SensorType",
    "Skip",
    "SkipReason",
    "SourceDestType",
    "document",
    "epc_uri",
    "event_hash",
    "location_uri",
    "party_uri",
    "pre_hash",
    "render",
    "sgln_uri",
]
