"""``tagrelay decode``: the field engineer's decoder, and the contract that checks run against.

``tagrelay decode ble --mfr HEX | --service-data UUID16:HEX | --adv HEX``,
``tagrelay decode serial HEX`` and ``tagrelay decode gps TEXT_OR_HEX`` run the gateway's own
pure decoders on bytes captured in the field. ``-`` reads stdin, one input per line. Every
decoded message is one JSON object per line on stdout (:mod:`protocols.jsonform`); an input that
cannot be decoded prints ``error: <reason> (<detail>)`` on stderr and the command goes on; the
exit status is 1 if any input failed, else 0.
"""

from __future__ import annotations

import argparse
import enum
import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Final

from gateway.cli._pipe import detach_stdout
from protocols import to_jsonable
from protocols.ble import (
    AdvertError,
    AdvertErrorReason,
    decode_adv_payload,
    decode_manufacturer,
    decode_service_data,
)
from protocols.errors import ProtocolError
from protocols.gps import GpsRejected, GpsRejectReason, GpsStreamDecoder
from protocols.smartlabel import FrameRejected, StreamDecoder

__all__ = ["EXIT_ALL_DECODED", "EXIT_SOME_FAILED", "DecodeFailure", "InputProblem", "register"]

EXIT_ALL_DECODED: Final = 0
EXIT_SOME_FAILED: Final = 1
_STDIN: Final = "-"
_FRAME_DELIMITER: Final = b"\x00"
_HELP: Final = """\
Decode bytes captured in the field with the gateway's own decoders.

  tagrelay decode ble --mfr 4c000215...          manufacturer data, company id little-endian
  tagrelay decode ble --service-data feaa:10f8...  service data for a service UUID
  tagrelay decode ble --adv 0201061aff4c00...     a whole advertising payload (as btmon)
  tagrelay decode serial 0701024d...00           SmartLabel serial link bytes (docs/protocol.md)
  tagrelay decode gps '$GPGGA,...*5B'            an NMEA sentence, or NMEA / UBX bytes in hex

Give - instead of the input to read stdin, one input per line. Each decoded message is printed
as one JSON object per line on stdout; an input that cannot be decoded prints
'error: <reason> (<detail>)' on stderr and decoding goes on. Exit status: 0 when everything
decoded, 1 otherwise.
"""


class InputProblem(enum.StrEnum):
    """Reasons of this command's own, for input that never reached a decoder whole."""

    BAD_HEX = "bad_hex"
    """The input is not hexadecimal bytes."""
    BAD_INPUT = "bad_input"
    """The input does not have the shape the option asks for (``UUID16:HEX``)."""
    TRUNCATED = "truncated"
    """The bytes end before a complete frame or message."""
    NO_MESSAGE = "no_message"
    """Nothing in the bytes looks like an NMEA sentence or a UBX frame."""


@dataclass(frozen=True, slots=True)
class DecodeFailure:
    """One input (or one message inside it) that did not decode: printed as ``error: ...``."""

    reason: str
    detail: str


_Decoder = Callable[[str], list[Any | DecodeFailure]]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "decode",
        help="decode captured BLE adverts, serial frames or GPS sentences to JSON",
        description=_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    kinds = parser.add_subparsers(dest="decode_kind", metavar="KIND", required=True)

    ble = kinds.add_parser(
        "ble",
        help="BLE advertisement data",
        description="Decode BLE advertisement data. Each option takes one input, or - for stdin.",
    )
    source = ble.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--mfr",
        metavar="HEX",
        help="manufacturer-specific data: company id little-endian, then the data",
    )
    source.add_argument(
        "--service-data",
        metavar="UUID16:HEX",
        help="service data: the service UUID (16-bit or full), a colon, then the data",
    )
    source.add_argument(
        "--adv", metavar="HEX", help="a whole advertising payload of AD structures (as btmon)"
    )
    ble.set_defaults(func=_run_ble)

    serial = kinds.add_parser(
        "serial",
        help="SmartLabel serial link bytes",
        description="Decode SmartLabel serial link bytes as on the wire (one or more frames).",
    )
    serial.add_argument("data", metavar="HEX", help="wire bytes in hex, or - for stdin")
    serial.set_defaults(func=_run_serial)

    gps = kinds.add_parser(
        "gps",
        help="NMEA sentences or UBX bytes",
        description="Decode an NMEA sentence (text) or NMEA / UBX bytes (hex).",
    )
    gps.add_argument("data", metavar="TEXT_OR_HEX", help="a sentence, hex bytes, or - for stdin")
    gps.set_defaults(func=_run_gps)

    from gateway.cli.samples import run_samples

    samples = kinds.add_parser(
        "samples",
        help="built-in sample frames, adverts and sentences (and a corrupt one of each kind)",
        description="Build sample SmartLabel frames, BLE adverts and GPS sentences (plus a "
        "corrupted one of each kind), run them through the decoders, and print what comes out.",
    )
    samples.set_defaults(func=run_samples)


def _run_ble(args: argparse.Namespace) -> int:
    if args.mfr is not None:
        return _run(args.mfr, _decode_mfr)
    if args.service_data is not None:
        return _run(args.service_data, _decode_service_data)
    return _run(args.adv, _decode_adv)


def _run_serial(args: argparse.Namespace) -> int:
    return _run(args.data, _decode_serial)


def _run_gps(args: argparse.Namespace) -> int:
    return _run(args.data, _decode_gps)


def _run(value: str, decoder: _Decoder) -> int:
    """Decode each input, print results as they come, and return the exit status."""
    try:
        return _decode_all(value, decoder)
    except BrokenPipeError:
        detach_stdout()  # piped into head or a closed pager: stop quietly
        return EXIT_ALL_DECODED


def _decode_all(value: str, decoder: _Decoder) -> int:
    status = EXIT_ALL_DECODED
    for number, text in _inputs(value):
        try:
            results = decoder(text)
        except ProtocolError as exc:
            reason = getattr(exc, "reason", None)
            results = [
                DecodeFailure(
                    str(reason) if reason is not None else type(exc).__name__,
                    getattr(exc, "detail", str(exc)),
                )
            ]
        for result in results:
            if isinstance(result, DecodeFailure):
                status = EXIT_SOME_FAILED
                where = f"input {number}: " if value == _STDIN else ""
                print(f"error: {result.reason} ({where}{result.detail})", file=sys.stderr)
            else:
                print(json.dumps(to_jsonable(result), ensure_ascii=False), flush=True)
    return status


def _inputs(value: str) -> Iterator[tuple[int, str]]:
    if value != _STDIN:
        yield 1, value
        return
    number = 0
    for line in sys.stdin:
        text = line.strip()
        if text:
            number += 1
            yield number, text


def _hex(text: str) -> bytes:
    cleaned = text.strip()
    if cleaned[:2].lower() == "0x":
        cleaned = cleaned[2:]
    cleaned = cleaned.replace(":", "").replace(" ", "")
    try:
        return bytes.fromhex(cleaned)
    except ValueError as exc:
        raise _InputError(InputProblem.BAD_HEX, f"not hex: {text[:40]!r}") from exc


class _InputError(ProtocolError):
    """Input the command line could not even turn into bytes."""

    def __init__(self, reason: InputProblem, detail: str) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason} ({detail})")


def _decode_mfr(text: str) -> list[Any | DecodeFailure]:
    raw = _hex(text)
    if len(raw) < 2:
        raise AdvertError(AdvertErrorReason.TOO_SHORT, "no company id")
    return [decode_manufacturer(int.from_bytes(raw[:2], "little"), raw[2:])]


def _decode_service_data(text: str) -> list[Any | DecodeFailure]:
    uuid, colon, data = text.partition(":")
    if not colon:
        raise _InputError(InputProblem.BAD_INPUT, "expected UUID16:HEX, e.g. feaa:10f8...")
    return [decode_service_data(uuid, _hex(data))]


def _decode_adv(text: str) -> list[Any | DecodeFailure]:
    adverts = decode_adv_payload(_hex(text))
    if not adverts:
        raise AdvertError(AdvertErrorReason.UNKNOWN_FORMAT, "no recognised advert in the payload")
    return list(adverts)


def _decode_serial(text: str) -> list[Any | DecodeFailure]:
    data = _hex(text)
    decoder = StreamDecoder()
    items = decoder.feed(data)
    if decoder.buffered:
        # The last frame came without its 0x00 delimiter (easy to leave off when copying
        # bytes by hand): close it, so that it decodes or fails with a real reason.
        items += decoder.feed(_FRAME_DELIMITER)
    results: list[Any | DecodeFailure] = [
        DecodeFailure(item.reason, item.detail) if isinstance(item, FrameRejected) else item
        for item in items
    ]
    if not results:
        results.append(DecodeFailure(InputProblem.TRUNCATED, "no frame in the input"))
    return results


def _decode_gps(text: str) -> list[Any | DecodeFailure]:
    stripped = text.strip()
    data = stripped.encode("ascii", "replace") + b"\r\n" if stripped.startswith("$") else None
    decoder = GpsStreamDecoder()
    items = decoder.feed(data if data is not None else _hex(stripped))
    results: list[Any | DecodeFailure] = [
        DecodeFailure(item.reason, item.detail) if isinstance(item, GpsRejected) else item
        for item in items
    ]
    for kind, count in decoder.unsupported.items():
        results.append(DecodeFailure(GpsRejectReason.UNSUPPORTED_MESSAGE, f"{kind} x{count}"))
    if decoder.pending:
        results.append(
            DecodeFailure(
                InputProblem.TRUNCATED, f"{len(decoder.pending)} bytes without a complete message"
            )
        )
    elif not results:
        results.append(
            DecodeFailure(InputProblem.NO_MESSAGE, "no NMEA sentence or UBX frame found")
        )
    return results
