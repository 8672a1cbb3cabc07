"""GPS decoders: NMEA 0183 and u-blox UBX from the vehicle receiver, as one typed position fix.

The GPS driver feeds raw serial bytes to :class:`GpsStreamDecoder` (or single sentences to
:func:`decode_nmea` / frames to :func:`decode_ubx`) and merges NMEA sentences per epoch with
:class:`FixAssembler`. Parsing and checksums are pynmeagps's and pyubx2's; the builders give the
simulator the same bytes a receiver sends.
"""

from protocols.gps.assembler import ASSEMBLED_FORMAT, FixAssembler
from protocols.gps.errors import GpsError, GpsRejectReason
from protocols.gps.fix import FixQuality, PositionFix, SatelliteInView
from protocols.gps.nmea import NMEA_FORMATS, build_nmea_fix, decode_nmea
from protocols.gps.stream import (
    MAX_NMEA_LINE_BYTES,
    MAX_UBX_PAYLOAD_BYTES,
    GpsRejected,
    GpsStreamDecoder,
)
from protocols.gps.ubx import build_ubx_nav_pvt, decode_ubx

__all__ = [
    "ASSEMBLED_FORMAT",
    "MAX_NMEA_LINE_BYTES",
    "MAX_UBX_PAYLOAD_BYTES",
    "NMEA_FORMATS",
    "FixAssembler",
    "FixQuality",
    "GpsError",
    "GpsRejectReason",
    "GpsRejected",
    "GpsStreamDecoder",
    "PositionFix",
    "SatelliteInView",
    "build_nmea_fix",
    "build_ubx_nav_pvt",
    "decode_nmea",
    "decode_ubx",
]
