"""The build and the development scripts: a clean license declaration, and no development
script that stops a service the machine relies on."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Final

import pytest

from tests.systemd.conftest import REPO

#: Scripts a developer runs (`make setup`, `make test`); scripts/install is the installer,
#: which manages tagrelay's own service and nothing else.
DEVELOPMENT_SCRIPTS: Final = ("Makefile", "scripts/bootstrap", "scripts/check", "scripts/lock")
SERVICE_CHANGE: Final = re.compile(
    r"\b(?:systemctl|service|invoke-rc\.d|update-rc\.d)\b.*\b(?:stop|disable|mask|kill|remove)\b"
)


def _code_lines(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if not line.lstrip().startswith("#")]


def test_development_scripts_never_stop_or_disable_a_service() -> None:
    for name in DEVELOPMENT_SCRIPTS:
        path = REPO / name
        if not path.exists():
            continue
        for line in _code_lines(path):
            assert "systemctl" not in line, f"{name}: {line}"
            assert not SERVICE_CHANGE.search(line), f"{name}: {line}"
    # ... and the installer touches no service but tagrelay's.
    for line in _code_lines(REPO / "scripts/install"):
        if "systemctl" in line and SERVICE_CHANGE.search(line):
            assert '"$service"' in line, line


@pytest.mark.timeout(600)
def test_wheel_builds_without_the_license_table_deprecation(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-v", "-w", str(tmp_path), str(REPO)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    deprecations = [
        line for line in output.splitlines() if "deprecat" in line.lower() and "license" in line
    ]
    assert deprecations == []
    (wheel,) = tmp_path.glob("tagrelay-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        (metadata,) = (n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        text = archive.read(metadata).decode()
        assert any(n.endswith("licenses/LICENSE") for n in archive.namelist())
    assert "License-Expression: Apache-2.0" in text.splitlines()
