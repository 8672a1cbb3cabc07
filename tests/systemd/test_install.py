"""scripts/install into a throwaway root: every file and mode, idempotence, upgrade, uninstall.

The script runs for real (a venv built from this tree, pip resolving the dependencies); only
the root is a temporary directory, so that users, systemd and the machine are left alone.
"""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
import stat
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Final

import pytest

from tests.systemd.conftest import MAX_EXPOSURE, REPO, exposure_of, run_install

SYSTEMD: Final = REPO / "systemd"
EXAMPLE_CONFIG: Final = REPO / "docs" / "tagrelay.example.toml"
UNIT: Final = "usr/local/lib/systemd/system/tagrelay.service"
CONFIG: Final = "etc/tagrelay/tagrelay.toml"

#: Installed file -> (mode, the file of this tree it must be a copy of).
FILES: Final[dict[str, tuple[int, Path]]] = {
    UNIT: (0o644, SYSTEMD / "tagrelay.service"),
    "usr/local/lib/sysusers.d/tagrelay.conf": (0o644, SYSTEMD / "tagrelay.sysusers"),
    "usr/local/lib/tmpfiles.d/tagrelay.conf": (0o644, SYSTEMD / "tagrelay.tmpfiles"),
    "etc/dbus-1/system.d/tagrelay.conf": (0o644, SYSTEMD / "tagrelay-dbus.conf"),
    "opt/tagrelay/share/examples/99-tagrelay-serial.rules": (
        0o644,
        SYSTEMD / "99-tagrelay-serial.rules.example",
    ),
    "opt/tagrelay/share/examples/broker-ip-allow.conf": (
        0o644,
        SYSTEMD / "broker-ip-allow.conf.example",
    ),
    "opt/tagrelay/share/examples/clock-state.conf": (0o644, SYSTEMD / "clock-state.conf"),
    "opt/tagrelay/share/examples/tagrelay.example.toml": (0o644, EXAMPLE_CONFIG),
    "opt/tagrelay/share/doc/operations.md": (0o644, REPO / "docs" / "operations.md"),
    CONFIG: (0o640, EXAMPLE_CONFIG),
}


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def _snapshot(root: Path) -> dict[str, tuple[int, str]]:
    """Mode and content hash of every file outside the venv's site-packages."""
    site = root / "opt/tagrelay/lib"
    result: dict[str, tuple[int, str]] = {}
    for path in sorted(root.rglob("*")):
        if path.is_relative_to(site) or "__pycache__" in path.parts:
            continue
        if path.is_symlink():
            digest = "-> " + str(path.readlink())
        elif path.is_file():
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            digest = "dir"
        result[str(path.relative_to(root))] = (_mode(path), digest)
    return result


def _distributions(root: Path) -> list[str]:
    done = subprocess.run(
        [str(root / "opt/tagrelay/bin/python"), "-m", "pip", "list", "--format=freeze"],
        capture_output=True,
        text=True,
        check=True,
    )
    return sorted(done.stdout.split())


def _config_check(root: Path, config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(root / "opt/tagrelay/bin/python"), "-m", "gateway", "config", "check", str(config)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_install_puts_every_file_in_place_with_its_mode(staged_root: Path) -> None:
    for relative, (mode, source) in FILES.items():
        installed = staged_root / relative
        assert installed.is_file(), relative
        assert _mode(installed) == mode, f"{relative}: {oct(_mode(installed))}"
        assert installed.read_bytes() == source.read_bytes(), relative
    assert _mode(staged_root / "etc/tagrelay") == 0o750
    link = staged_root / "usr/local/bin/tagrelay"
    assert link.is_symlink()
    assert str(link.readlink()) == "/opt/tagrelay/bin/tagrelay"
    # The tree is right once copied to /: scripts name /opt/tagrelay, not the staging root.
    script = (staged_root / "opt/tagrelay/bin/tagrelay").read_text()
    assert script.splitlines()[0] == "#!/opt/tagrelay/bin/python"
    for path in (staged_root / "opt/tagrelay/bin").iterdir():
        if path.is_file() and not path.is_symlink() and path.stat().st_size < 1_000_000:
            assert str(staged_root) not in path.read_text(errors="replace"), path
    # The clock-state drop-in only where chrony or ntpd keeps the clock (never in a staging root).
    assert not (staged_root / UNIT).with_name("tagrelay.service.d").exists()
    # The installed program is this tree's and works.
    assert "tagrelay==0.1.0" in _distributions(staged_root)
    assert _config_check(staged_root, staged_root / CONFIG).returncode == 0


def test_dbus_policy_lets_the_service_user_call_bluez(staged_root: Path) -> None:
    tree = ET.parse(staged_root / "etc/dbus-1/system.d/tagrelay.conf")
    policies = tree.getroot().findall("policy")
    assert [p.attrib for p in policies] == [{"user": "tagrelay"}]
    assert [a.attrib for a in policies[0]] == [{"send_destination": "org.bluez"}]


def test_udev_example_names_one_reader_by_usb_ids(staged_root: Path) -> None:
    rules = (staged_root / "opt/tagrelay/share/examples/99-tagrelay-serial.rules").read_text()
    active = [line for line in rules.splitlines() if line and not line.startswith("#")]
    assert len(active) == 1
    for key in ('SUBSYSTEM=="tty"', "ATTRS{idVendor}==", "ATTRS{idProduct}==", "ATTRS{serial}=="):
        assert key in active[0]
    assert 'SYMLINK+="tagrelay-reader"' in active[0]


def test_second_install_changes_nothing(root_copy: Path) -> None:
    before = _snapshot(root_copy)
    distributions = _distributions(root_copy)
    again = run_install(root_copy)
    assert again.returncode == 0, again.output
    assert "kept the configuration /etc/tagrelay/tagrelay.toml" in again.output
    assert "upgraded 0.1.0 -> 0.1.0" in again.output
    after = _snapshot(root_copy)
    assert after == before
    assert _distributions(root_copy) == distributions


def test_upgrade_from_a_wheel_keeps_config_and_state(root_copy: Path, tmp_path: Path) -> None:
    config = root_copy / CONFIG
    edited = config.read_text().replace('gateway_id = "truck-0042"', 'gateway_id = "door-7"')
    assert edited != config.read_text()
    config.write_text(edited)
    state = root_copy / "var/lib/tagrelay"
    state.mkdir(parents=True)
    with sqlite3.connect(state / "outbox.db") as db:
        db.execute("CREATE TABLE kept (event TEXT)")
        db.execute("INSERT INTO kept VALUES ('queued while the truck was offline')")
    db.close()
    outbox = (state / "outbox.db").read_bytes()

    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(REPO)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    (wheel,) = wheels.glob("tagrelay-*.whl")
    upgrade = run_install(root_copy, "--from", str(wheel))
    assert upgrade.returncode == 0, upgrade.output
    assert "upgraded 0.1.0 -> 0.1.0" in upgrade.output
    assert "kept the configuration" in upgrade.output
    # An edited configuration that passes its check would be started (outside a staging root).
    assert "not starting" not in upgrade.output
    assert "nothing enabled or started" in upgrade.output
    assert config.read_text() == edited
    assert (state / "outbox.db").read_bytes() == outbox


def test_a_config_that_fails_its_check_is_installed_but_nothing_starts(root_copy: Path) -> None:
    config = root_copy / CONFIG
    config.write_text('gateway_id = "has spaces"\n')
    result = run_install(root_copy)
    assert result.returncode == 2, result.output
    assert "INVALID" in result.output
    assert "not starting: 'tagrelay config check /etc/tagrelay/tagrelay.toml' failed" in (
        result.output
    )
    assert config.read_text() == 'gateway_id = "has spaces"\n'


def test_uninstall_keeps_config_and_data_unless_purge(root_copy: Path) -> None:
    state = root_copy / "var/lib/tagrelay"
    state.mkdir(parents=True)
    (state / "outbox.db").write_bytes(b"SQLite format 3\x00 stand-in")
    removed = run_install(root_copy, "uninstall")
    assert removed.returncode == 0, removed.output
    for gone in (UNIT, "usr/local/lib/sysusers.d/tagrelay.conf", "opt/tagrelay"):
        assert not (root_copy / gone).exists(), gone
    assert not (root_copy / "usr/local/bin/tagrelay").is_symlink()
    assert not (root_copy / "etc/dbus-1/system.d/tagrelay.conf").exists()
    assert (root_copy / CONFIG).read_bytes() == EXAMPLE_CONFIG.read_bytes()
    assert (state / "outbox.db").exists()

    again = run_install(root_copy, "uninstall")
    assert again.returncode == 0, again.output
    purged = run_install(root_copy, "uninstall", "--purge")
    assert purged.returncode == 0, purged.output
    assert not (root_copy / "etc/tagrelay").exists()
    assert not state.exists()


def test_unknown_option_is_refused(tmp_path: Path) -> None:
    result = run_install(tmp_path, "--frmo", "x")
    assert result.returncode == 1
    assert "unknown option --frmo" in result.output
    assert list(tmp_path.iterdir()) == []


def test_clock_state_drop_in_follows_the_option(root_copy: Path) -> None:
    drop_in = root_copy / "usr/local/lib/systemd/system/tagrelay.service.d/clock-state.conf"
    with_read = run_install(root_copy, "--clock-state", "adjtimex")
    assert with_read.returncode == 0, with_read.output
    assert drop_in.read_bytes() == (SYSTEMD / "clock-state.conf").read_bytes()
    # timesyncd without a drop-in is the staged root's own (auto, no time daemon found).
    chrony = run_install(root_copy, "--clock-state", "chrony")
    assert chrony.returncode == 0, chrony.output
    assert not drop_in.parent.exists()
    refused = run_install(root_copy, "--clock-state", "ntp")
    assert refused.returncode == 1
    assert "auto, chrony, adjtimex or timesyncd" in refused.output


def _fake_program(root: Path, name: str) -> None:
    program = root / "usr/sbin" / name
    program.parent.mkdir(parents=True, exist_ok=True)
    program.write_text("#!/bin/sh\nexit 0\n")
    program.chmod(0o755)


def test_auto_clock_state_with_chrony_adds_no_drop_in(
    root_copy: Path, systemd_tool: dict[str, str]
) -> None:
    """A vehicle with chrony (GPS/PPS time): the daemon asks chronyd over its monitoring port,
    so the unit keeps ProtectClock=yes and its 1.5 rating; ntpd alone still needs adjtimex."""
    drop_in = root_copy / "usr/local/lib/systemd/system/tagrelay.service.d/clock-state.conf"
    _fake_program(root_copy, "ntpd")
    with_ntpd = run_install(root_copy)
    assert with_ntpd.returncode == 0, with_ntpd.output
    assert drop_in.exists()
    assert "adjtimex" in with_ntpd.output
    _fake_program(root_copy, "chronyd")  # chrony wins when both are there
    with_chrony = run_install(root_copy)
    assert with_chrony.returncode == 0, with_chrony.output
    assert "127.0.0.1:323" in with_chrony.output
    assert not drop_in.parent.exists()
    exposure = exposure_of(
        systemd_tool["systemd-analyze"], f"--root={root_copy}", "tagrelay.service"
    )
    assert exposure <= MAX_EXPOSURE


def test_install_script_passes_shellcheck() -> None:
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed (scripts/bootstrap installs it)")
    done = subprocess.run(
        [shellcheck, str(REPO / "scripts/install")], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout
