"""The installed unit and snippets, checked by systemd's own tools on the staged root.

``systemd-analyze verify`` and ``security --offline=yes`` read unit files without a running
systemd; ``systemd-sysusers`` and ``systemd-tmpfiles`` take ``--root`` and apply the snippets
inside the staging root only.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Final

import pytest

from tests.systemd.conftest import MAX_EXPOSURE, REPO, exposure_of

UNIT: Final = "usr/local/lib/systemd/system/tagrelay.service"
#: With the clock-state drop-in (adjtimex allowed, ProtectClock= lifted), which only ntpd
#: installs get: measured 1.7.
MAX_EXPOSURE_WITH_CLOCK_STATE: Final = 1.7
#: prctl(2) option and flag for the kernel's memory-deny-write-execute (Linux 6.3+), the same
#: rule MemoryDenyWriteExecute= enforces with seccomp.
PR_SET_MDWE: Final = 65
PR_MDWE_REFUSE_EXEC_GAIN: Final = 1
#: A private dbus-daemon starts or refuses its configuration in milliseconds; generous for a
#: loaded machine.
DBUS_TIMEOUT_S: Final = 30.0


def test_unit_exposure_is_at_most_1_5(staged_root: Path, systemd_tool: dict[str, str]) -> None:
    analyze = systemd_tool["systemd-analyze"]
    assert exposure_of(analyze, str(staged_root / UNIT)) <= MAX_EXPOSURE
    # The same unit found by name in the root, as systemd would load it (with any drop-ins).
    assert exposure_of(analyze, f"--root={staged_root}", "tagrelay.service") <= MAX_EXPOSURE


def test_clock_state_drop_in_costs_what_its_comment_says(
    tmp_path: Path, systemd_tool: dict[str, str]
) -> None:
    unit_dir = tmp_path / "usr/local/lib/systemd/system"
    (unit_dir / "tagrelay.service.d").mkdir(parents=True)
    (unit_dir / "tagrelay.service").write_bytes((REPO / "systemd/tagrelay.service").read_bytes())
    drop_in = (REPO / "systemd/clock-state.conf").read_bytes()
    (unit_dir / "tagrelay.service.d/clock-state.conf").write_bytes(drop_in)
    exposure = exposure_of(
        systemd_tool["systemd-analyze"], f"--root={tmp_path}", "tagrelay.service"
    )
    assert MAX_EXPOSURE < exposure <= MAX_EXPOSURE_WITH_CLOCK_STATE


def test_systemd_analyze_verify_finds_nothing(
    staged_root: Path, tmp_path: Path, systemd_tool: dict[str, str]
) -> None:
    # verify checks that ExecStart= is executable: point the copy at the staged venv.
    text = (staged_root / UNIT).read_text()
    unit = tmp_path / "tagrelay.service"
    unit.write_text(text.replace("/opt/tagrelay/", f"{staged_root}/opt/tagrelay/"))
    done = subprocess.run(
        [systemd_tool["systemd-analyze"], "verify", "--man=no", str(unit)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # verify only warns about unknown or malformed settings: any output is a finding.
    assert (done.stdout + done.stderr).strip() == ""


def test_verify_would_catch_a_malformed_setting(
    tmp_path: Path, systemd_tool: dict[str, str]
) -> None:
    text = (REPO / "systemd/tagrelay.service").read_text()
    unit = tmp_path / "tagrelay.service"
    unit.write_text(text.replace("ProtectProc=invisible", "ProtectProc=sometimes"))
    done = subprocess.run(
        [systemd_tool["systemd-analyze"], "verify", "--man=no", str(unit)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert "sometimes" in done.stdout + done.stderr


def test_sysusers_and_tmpfiles_make_the_user_and_state_dir(
    root_copy: Path, systemd_tool: dict[str, str]
) -> None:
    subprocess.run(
        [systemd_tool["systemd-sysusers"], f"--root={root_copy}"],
        check=True,
        capture_output=True,
    )
    passwd = {
        line.split(":")[0]: line.split(":")
        for line in (root_copy / "etc/passwd").read_text().splitlines()
    }
    user = passwd["tagrelay"]
    assert user[5] == "/var/lib/tagrelay"
    assert user[6].endswith("nologin")
    groups = {
        line.split(":")[0]: line.split(":")[3].split(",")
        for line in (root_copy / "etc/group").read_text().splitlines()
    }
    assert "tagrelay" in groups["bluetooth"]
    assert "tagrelay" in groups["dialout"]

    subprocess.run(
        [
            systemd_tool["systemd-tmpfiles"],
            f"--root={root_copy}",
            "--create",
            "tagrelay.conf",  # found in the root's tmpfiles.d directories
        ],
        check=True,
        capture_output=True,
    )
    state = (root_copy / "var/lib/tagrelay").stat()
    assert stat.S_ISDIR(state.st_mode)
    assert stat.S_IMODE(state.st_mode) == 0o700
    assert state.st_uid == int(user[2])
    assert state.st_gid == int(user[3])


def test_daemon_code_runs_under_memory_deny_write_execute(staged_root: Path) -> None:
    """MemoryDenyWriteExecute=yes is safe: the daemon's imports, a ctypes callback (libffi),
    the adjtimex() read and the clock-state read all work where W+X memory is refused."""
    libc = ctypes.CDLL(None, use_errno=True)
    if not hasattr(libc, "prctl"):
        pytest.skip("no prctl in this C library")
    probe = f"""
import ctypes, mmap, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl({PR_SET_MDWE}, {PR_MDWE_REFUSE_EXEC_GAIN}, 0, 0, 0) != 0:
    print("no-mdwe"); sys.exit(0)
try:
    mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    print("wx-allowed"); sys.exit(1)
except OSError:
    pass
callback = ctypes.CFUNCTYPE(ctypes.c_int)(lambda: 7)
assert callback() == 7
import gateway.daemon, bleak, dbus_fast, paho.mqtt.client, pydantic, serial, construct
import sqlite3, ssl
import prometheus_client, rich, matplotlib.pyplot
from gateway.timekeeping.system import read_kernel_clock, read_system_clock
assert read_kernel_clock() is not None
read_system_clock()  # chronyd's UDP query (or its absence) and the fallbacks
from gateway.cli import main
sys.exit(main(["config", "check", sys.argv[1]]))
"""
    python = staged_root / "opt/tagrelay/bin/python"
    config = staged_root / "etc/tagrelay/tagrelay.toml"
    done = subprocess.run(
        [str(python), "-c", probe, str(config)],
        capture_output=True,
        text=True,
        check=False,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
        cwd=staged_root,
    )
    if done.stdout.strip() == "no-mdwe":
        pytest.skip(f"kernel {os.uname().release} has no PR_SET_MDWE (Linux 6.3+)")
    assert done.returncode == 0, done.stdout + done.stderr
    assert ": OK" in done.stdout


def _start_bus(tmp_path: Path, policy: Path) -> subprocess.CompletedProcess[str] | str:
    """Start a private dbus-daemon whose configuration includes ``policy``; return its address
    (then stop it by pid) or the failed run."""
    dbus_daemon = shutil.which("dbus-daemon")
    if dbus_daemon is None:
        pytest.skip("dbus-daemon is not installed (scripts/bootstrap installs the package dbus)")
    config = tmp_path / "bus.conf"
    config.write_text(
        f"""<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>custom</type>
  <listen>unix:path={tmp_path}/bus.socket</listen>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
  <include>{policy}</include>
</busconfig>
"""
    )
    process = subprocess.Popen(
        [dbus_daemon, f"--config-file={config}", "--print-address", "--nofork", "--nopidfile"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        address = process.stdout.readline().strip()
        if address:
            return address
        _, err = process.communicate(timeout=DBUS_TIMEOUT_S)
        return subprocess.CompletedProcess(process.args, process.returncode, "", err)
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=DBUS_TIMEOUT_S)
        if process.stdout is not None:
            process.stdout.close()
        if process.stderr is not None:
            process.stderr.close()


def test_dbus_daemon_loads_the_policy_snippet(staged_root: Path, tmp_path: Path) -> None:
    loaded = _start_bus(tmp_path, staged_root / "etc/dbus-1/system.d/tagrelay.conf")
    assert isinstance(loaded, str), loaded
    assert loaded.startswith("unix:path=")
    # The control: a snippet dbus-daemon cannot parse keeps the bus from starting.
    broken = tmp_path / "broken.conf"
    broken.write_text(
        (REPO / "systemd/tagrelay-dbus.conf").read_text().replace("</policy>", "</polic>")
    )
    (tmp_path / "bus.socket").unlink(missing_ok=True)
    refused = _start_bus(tmp_path, broken)
    assert not isinstance(refused, str)
    assert refused.returncode != 0


def _unit_settings(path: Path) -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def test_unit_starts_the_installed_program_and_documents_an_installed_file(
    staged_root: Path,
) -> None:
    unit = _unit_settings(staged_root / UNIT)
    (exec_start,) = unit["ExecStart"]
    program = exec_start.split()[0]
    assert program == "/opt/tagrelay/bin/python"
    assert (staged_root / program.lstrip("/")).exists()
    assert "ExecStartPre" not in unit  # run checks its configuration itself (exit 78)
    for url in unit["Documentation"]:
        assert url.startswith("file:///"), url
        assert (staged_root / url.removeprefix("file:///")).is_file(), url
    assert unit["Type"] == ["notify"]
    assert unit["NotifyAccess"] == ["main"]
    assert unit["WatchdogSec"] == ["30"]
    assert unit["RestartPreventExitStatus"] == ["78"]
