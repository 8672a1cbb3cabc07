"""``tagrelay decode samples``: every decoder shows up; corrupt samples are rejected with their
reason."""

from __future__ import annotations

import pytest

from gateway.cli import main

FORMATS = [
    "smartlabel-env",
    "smartlabel-shock",
    "smartlabel-status",
    "smartlabel-history",
    "ibeacon",
    "ruuvi-5",
    "smartlabel-adv",
    "eddystone-url",
    "eddystone-tlm",
    "altbeacon",
    "nmea-gga",
    "nmea-rmc",
    "nmea-vtg",
    "nmea-gsa",
    "ubx-nav-pvt",
    "nmea-fix",
]


def test_samples_show_every_decoder_and_each_kind_of_reject(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["decode", "samples"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    lines = captured.out.splitlines()
    decoded = [line.split("-> ", 1)[1].split()[0] for line in lines if "-> " in line]
    assert [name for name in decoded if name != "rejected:"] == FORMATS
    rejected = [line for line in lines if "-> rejected:" in line]
    assert len(rejected) == 3
    assert "bad_crc" in rejected[0]
    assert "too_short" in rejected[1]
    assert "bad_checksum" in rejected[2]
    assert "rejected frames counted by reason: bad_crc=1" in captured.out
    assert "rejected sentences counted by reason: bad_checksum=1" in captured.out
