"""The C reference code in docs/protocol.md compiles and agrees with the gateway's CRC and COBS.

Firmware engineers copy that appendix; it is compiled here into a shared library and called
through ctypes on the same inputs as ``protocols.smartlabel``.
"""

from __future__ import annotations

import ctypes
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from cobs import cobs
from hypothesis import example, given, settings
from hypothesis import strategies as st

from protocols.smartlabel.wire import CRC_CHECK_VALUE, MAX_BODY_BYTES, crc16

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> ctypes.CDLL:
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.skip("no C compiler to build the reference code with")
    blocks = re.findall(r"^```c\n(.*?)^```$", DOC.read_text(encoding="utf-8"), re.M | re.S)
    assert len(blocks) == 2  # the CRC, then COBS
    workdir = tmp_path_factory.mktemp("c-reference")
    source = workdir / "reference.c"
    source.write_text("\n".join(blocks), encoding="utf-8")
    library = workdir / "libreference.so"
    subprocess.run(
        [compiler, "-std=c99", "-Wall", "-Werror", "-shared", "-fPIC", "-o", library, source],
        check=True,
        capture_output=True,
        timeout=60,
    )
    lib = ctypes.CDLL(str(library))
    lib.crc16_ibm3740.restype = ctypes.c_uint16
    lib.crc16_ibm3740.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
    lib.cobs_encode.restype = ctypes.c_size_t
    lib.cobs_encode.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p]
    lib.cobs_decode.restype = ctypes.c_long
    lib.cobs_decode.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p]
    return lib


def _encode(lib: ctypes.CDLL, data: bytes) -> bytes:
    out = ctypes.create_string_buffer(len(data) + len(data) // 254 + 1)
    n = lib.cobs_encode(data, len(data), out)
    return out.raw[:n]


def _decode(lib: ctypes.CDLL, data: bytes) -> bytes | None:
    out = ctypes.create_string_buffer(max(1, len(data)))
    n = lib.cobs_decode(data, len(data), out)
    return None if n < 0 else out.raw[:n]


def test_crc_check_value(reference: ctypes.CDLL) -> None:
    assert reference.crc16_ibm3740(b"123456789", 9) == CRC_CHECK_VALUE


#: Map about one byte in eight to 0x00, so that COBS blocks of every length occur.
_ZERO_SOME = bytes(0 if b < 32 else b for b in range(256))
# Sizes around the 254-byte COBS block boundary are where encoders usually go wrong.
_bodies = (
    st.binary(max_size=MAX_BODY_BYTES)
    | st.integers(250, 512)
    .flatmap(lambda n: st.binary(min_size=n, max_size=n))
    .map(lambda raw: raw.translate(_ZERO_SOME))
    # A run of non-zero bytes that fills whole 254-byte blocks, at the end of the frame or not.
    | st.tuples(
        st.binary(max_size=8), st.integers(1, 3), st.sampled_from([b"", b"\0", b"\0\1"])
    ).map(lambda parts: parts[0] + b"\x01" * (254 * parts[1]) + parts[2])
)


@settings(max_examples=100, deadline=None)
@given(body=_bodies)
@example(body=b"\x01" * 254)  # canonical COBS: no extra 0x01 code byte after a full block
@example(body=b"\x01" * 254 + b"\x00")
def test_crc_and_cobs_agree_with_the_gateway(reference: ctypes.CDLL, body: bytes) -> None:
    assert reference.crc16_ibm3740(body, len(body)) == crc16(body)
    encoded = _encode(reference, body)
    assert encoded == bytes(cobs.encode(body))
    assert _decode(reference, encoded) == body


@settings(max_examples=150, deadline=None)
@given(wire=st.binary(max_size=600))
def test_cobs_decode_rejects_what_the_gateway_rejects(reference: ctypes.CDLL, wire: bytes) -> None:
    try:
        expected: bytes | None = bytes(cobs.decode(wire))
    except cobs.DecodeError:
        expected = None
    assert _decode(reference, wire) == expected
