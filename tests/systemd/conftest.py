"""Fixtures for the install tests: one real install into a throwaway root, and systemd's tools.

Every test works in a staging root under a temporary directory (``DESTDIR``); nothing here
writes to the real ``/`` or asks the running systemd anything.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pytest

REPO: Final = Path(__file__).resolve().parents[2]
INSTALL_SCRIPT: Final = REPO / "scripts" / "install"
#: One install builds the project and resolves its dependencies into a fresh venv: about 25 s
#: alone, more on a busy machine.
INSTALL_TIMEOUT_S: Final = 600.0
#: apt-get on a slow mirror, when the systemd package has to be installed first.
APT_TIMEOUT_S: Final = 900.0


@dataclass(frozen=True)
class Run:
    """One finished run of the install script."""

    returncode: int
    output: str


#: The issue's target for the unit as installed with systemd-timesyncd or chrony (it was 2.1
#: before this hardening).
MAX_EXPOSURE: Final = 1.5
EXPOSURE: Final = re.compile(r"Overall exposure level for \S+: (\d+\.\d+)")


def exposure_of(analyze: str, *args: str) -> float:
    done = subprocess.run(
        [analyze, "security", "--offline=yes", "--no-pager", *args],
        capture_output=True,
        text=True,
        check=False,
    )
    match = EXPOSURE.search(done.stdout + done.stderr)
    assert match is not None, done.stdout + done.stderr
    return float(match.group(1))


def run_install(root: Path, *args: str) -> Run:
    """Run scripts/install with ``DESTDIR=root``; the venv is made from this interpreter."""
    env = dict(os.environ, DESTDIR=str(root), PYTHON=sys.executable)
    done = subprocess.run(
        ["bash", str(INSTALL_SCRIPT), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT_S,
        check=False,
    )
    output = "\n".join(
        line
        for line in (done.stdout + done.stderr).splitlines()
        # pip's notes about the machine's package mirrors: noise here
        if "is ignored: it is neither a file nor a directory" not in line
    )
    return Run(done.returncode, output)


@pytest.fixture(scope="package")
def staged_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh install into an empty staging root (shared: tests copy it before changing it)."""
    root = tmp_path_factory.mktemp("destdir")
    result = run_install(root)
    assert result.returncode == 0, result.output
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def root_copy(staged_root: Path, tmp_path: Path) -> Path:
    """A private copy of the staged install, for a test that upgrades or uninstalls it."""
    copy = tmp_path / "root"
    shutil.copytree(staged_root, copy, symlinks=True)
    return copy


def _apt_install(package: str) -> None:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    command = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", package]
    first = subprocess.run(command, env=env, capture_output=True, timeout=APT_TIMEOUT_S)
    if first.returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], env=env, timeout=APT_TIMEOUT_S, check=False)
        subprocess.run(command, env=env, capture_output=True, timeout=APT_TIMEOUT_S, check=False)


@pytest.fixture(scope="session")
def systemd_tool() -> dict[str, str]:
    """Paths of systemd-analyze, systemd-sysusers and systemd-tmpfiles.

    The Debian package systemd brings them; it is installed here only when missing and apt is
    usable (root, apt-get present), else the tests that need it are skipped with the reason.
    """
    names = ("systemd-analyze", "systemd-sysusers", "systemd-tmpfiles")
    apt_usable = os.geteuid() == 0 and shutil.which("apt-get") and shutil.which("dpkg-query")
    if any(shutil.which(name) is None for name in names) and apt_usable:
        _apt_install("systemd")
    found = {name: shutil.which(name) for name in names}
    missing = [name for name, path in found.items() if path is None]
    if missing:
        pytest.skip(
            f"{', '.join(missing)} not found and the Debian package systemd could not be "
            "installed (needs root and a working apt-get)"
        )
    return {name: path for name, path in found.items() if path is not None}
