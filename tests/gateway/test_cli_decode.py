"""``tagrelay decode``: JSON per message on stdout, ``error: <reason>`` on stderr, exit status.

Inputs are published vectors (sources in protocols/ble/samples.py, tests/protocols/
test_ble_vectors.py and test_gps_nmea.py) and frames built with the protocols' own builders.
"""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.cli import main
from protocols.ble import samples
from protocols.gps import FixQuality, PositionFix, build_ubx_nav_pvt
from protocols.smartlabel import Environment, Heartbeat, build

# Company id (little-endian) then data; service UUID then data (protocols.ble.samples).
IBEACON_ARG = "4c00" + samples.IBEACON_MFR.hex()
RUUVI_ARG = "9904" + samples.RUUVI5_MFR.hex()
EDDYSTONE_URL_ARG = "feaa:" + samples.EDDYSTONE_URL.hex()
EDDYSTONE_ADV = "0201060303aafe1716aafe00e3123456789012346789010000000000010000"
UBLOX_GGA = "$GPGGA,092725.00,4717.11399,N,00833.91590,E,1,08,1.01,499.6,M,48.0,M,,*5B"
REPO_ROOT = Path(__file__).resolve().parents[2]


def _run(
    capsys: pytest.CaptureFixture[str], *argv: str
) -> tuple[int, list[dict[str, object]], list[str]]:
    status = main(["decode", *argv])
    captured = capsys.readouterr()
    objects = [json.loads(line) for line in captured.out.splitlines()]
    return status, objects, captured.err.splitlines()


def test_ble_manufacturer_data(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = _run(capsys, "ble", "--mfr", IBEACON_ARG)
    assert (status, err) == (0, [])
    assert out == [
        {
            "format": "ibeacon",
            "uuid": "41424344-4546-4748-4940-414243444546",
            "major": 1,
            "minor": 2,
            "measured_power_dbm": -8,
        }
    ]


def test_ble_ruuvi_and_service_data_and_raw_adv(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = _run(capsys, "ble", "--mfr", RUUVI_ARG)
    assert status == 0
    assert out[0]["format"] == "ruuvi-5"
    assert out[0]["mac"] == "CB:B8:33:4C:88:4F"
    status, out, _ = _run(capsys, "ble", "--service-data", EDDYSTONE_URL_ARG)
    assert (status, out[0]["url"]) == (0, "https://github.com/citruz")
    status, out, _ = _run(capsys, "ble", "--adv", EDDYSTONE_ADV)
    assert status == 0
    assert out[0] == {
        "format": "eddystone-uid",
        "tx_power_dbm": -29,
        "namespace": "12345678901234678901",
        "instance": "000000000001",
    }


@pytest.mark.parametrize(
    ("argv", "reason"),
    [
        (["ble", "--mfr", "4c00021541"], "too_short"),
        (["ble", "--mfr", "1500aabb"], "unknown_format"),
        (["ble", "--mfr", "xyz"], "bad_hex"),
        (["ble", "--service-data", "feaa10f8"], "bad_input"),
        (["ble", "--adv", "020106"], "unknown_format"),
        (["gps", UBLOX_GGA[:-2] + "00"], "bad_checksum"),
        (["gps", "$GPTXT,01,01,02,ANTSTATUS=OK*3B"], "unsupported_message"),
        (["gps", "b56201"], "truncated"),
        (["serial", "0102030400"], "bad_cobs"),
        (["serial", "03aabb00"], "truncated"),
    ],
)
def test_undecodable_input_is_an_error_line_and_exit_1(
    capsys: pytest.CaptureFixture[str], argv: list[str], reason: str
) -> None:
    status, out, err = _run(capsys, *argv)
    assert status == 1
    assert out == []
    assert len(err) == 1
    assert err[0].startswith(f"error: {reason} (")


def test_serial_frames(capsys: pytest.CaptureFixture[str]) -> None:
    env = Environment(0x1122334455667788, 7, 1_772_437_500, temperature_c=4.25, humidity_pct=61.5)
    beat = Heartbeat(0x1122334455667788, 8, 1_772_437_560)
    wire = build(env) + build(beat)
    status, out, err = _run(capsys, "serial", wire.hex())
    assert (status, err) == (0, [])
    assert [o["format"] for o in out] == ["smartlabel-env", "smartlabel-heartbeat"]
    assert out[0]["label_id"] == 0x1122334455667788
    assert out[0]["temperature_c"] == 4.25
    # The last delimiter is easy to forget when copying bytes by hand: still decodes.
    status, out, _ = _run(capsys, "serial", build(env)[:-1].hex())
    assert (status, [o["seq"] for o in out]) == (0, [7])
    corrupt = bytearray(wire)
    corrupt[4] ^= 0x10
    status, out, err = _run(capsys, "serial", bytes(corrupt).hex())
    assert status == 1
    assert [o["format"] for o in out] == ["smartlabel-heartbeat"]
    assert len(err) == 1
    assert err[0].startswith("error: bad_crc")


def test_gps_text_and_ubx_hex(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = _run(capsys, "gps", UBLOX_GGA)
    assert (status, err) == (0, [])
    assert out[0]["format"] == "nmea-gga"
    assert out[0]["num_sats"] == 8
    assert set(out[0]) >= {"time", "lat", "lon", "alt_m", "speed_mps", "heading_deg", "fix"}
    when = datetime.datetime(2026, 11, 24, 1, 2, 3, tzinfo=datetime.UTC)
    fix = PositionFix("sim", time=when, lat=53.5, lon=10.0, fix=FixQuality.FIX_3D, num_sats=7)
    status, out, _ = _run(capsys, "gps", build_ubx_nav_pvt(fix).hex())
    assert status == 0
    assert out[0]["format"] == "ubx-nav-pvt"
    assert out[0]["time"] == "2026-11-24T01:02:03Z"
    assert (out[0]["lat"], out[0]["fix"]) == (53.5, "3d")


def test_stdin_one_input_per_line_goes_on_after_errors_in_a_real_process() -> None:
    """The real entry point on a real stdin: blank lines skipped, errors numbered, exit 1."""
    command = [sys.executable, "-m", "gateway", "decode", "ble", "--mfr", "-"]
    done = subprocess.run(
        command,
        input=f"{IBEACON_ARG}\n\n4c00\nnothex\n{RUUVI_ARG}\n",
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    formats = [json.loads(line)["format"] for line in done.stdout.splitlines()]
    assert formats == ["ibeacon", "ruuvi-5"]
    assert done.stderr.splitlines() == [
        "error: unknown_format (input 2: company id 0x004c with data ...)",
        "error: bad_hex (input 3: not hex: 'nothex')",
    ]
    ok = subprocess.run(
        [sys.executable, "-m", "gateway", "decode", "gps", UBLOX_GGA],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=60,
        check=False,
    )
    assert (ok.returncode, ok.stderr) == (0, "")
    assert json.loads(ok.stdout)["format"] == "nmea-gga"


def test_a_closed_pipe_stops_the_output_quietly(tmp_path: Path) -> None:
    """``tagrelay decode ... | head -1``: no traceback once the reader has gone."""
    inputs = tmp_path / "adverts.txt"
    inputs.write_text(f"{IBEACON_ARG}\n" * 5_000)  # far more output than a pipe buffers
    with inputs.open("rb") as stdin:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "decode", "ble", "--mfr", "-"],
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=REPO_ROOT,
        )
        try:
            assert proc.stdout is not None
            assert json.loads(proc.stdout.readline())["format"] == "ibeacon"
            proc.stdout.close()  # the reader goes away
            _, stderr = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert (proc.returncode, stderr) == (0, b"")
