"""Small helpers shared by the BLE decoders: length checks and 'not available' sentinels."""

from __future__ import annotations

from protocols.ble.errors import AdvertError, AdvertErrorReason

__all__ = ["format_mac", "require_length", "scaled"]


def require_length(data: bytes, expected: int, format: str) -> None:
    """Raise unless ``data`` is exactly ``expected`` bytes long (short and long told apart)."""
    if len(data) < expected:
        raise AdvertError(
            AdvertErrorReason.TOO_SHORT,
            f"needs {expected} bytes, got {len(data)}",
            format=format,
        )
    if len(data) > expected:
        raise AdvertError(
            AdvertErrorReason.BAD_LENGTH,
            f"needs {expected} bytes, got {len(data)}",
            format=format,
        )


def scaled(raw: int, sentinel: int | None, scale: float, digits: int) -> float | None:
    """``raw * scale`` rounded to the field's resolution, or None for the 'not available' value.

    Rounding to the resolution keeps the JSON free of binary-float noise (163.835, not
    163.83499999999998) without losing information.
    """
    if raw == sentinel:
        return None
    return round(raw * scale, digits)


def format_mac(raw: bytes) -> str | None:
    """``AA:BB:CC:DD:EE:FF`` upper case, or None for the all-ones 'not available' address."""
    if raw == b"\xff" * len(raw):
        return None
    return raw.hex(":").upper()
