"""The system probes, for real on this machine: the kernel's NTP state and the boot id.

Whatever this machine's clock state is, ``system_ntp_synchronized`` must not raise and must
agree with the kernel. The kernel's view is read a second, independent way: a C program built
with the system compiler against <sys/timex.h>, which checks our ctypes ``struct timex`` layout.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from gateway.timekeeping import (
    KernelClock,
    read_boot_id,
    read_kernel_clock,
    system_ntp_synchronized,
)
from gateway.timekeeping.system import MAX_SYNCED_ERROR_US, STA_UNSYNC, TIME_ERROR

_ADJTIMEX_C = r"""
#include <stdio.h>
#include <sys/timex.h>
int main(void) {
    struct timex tx = {0};
    int state = adjtimex(&tx);
    if (state < 0) { perror("adjtimex"); return 1; }
    printf("%d %d %ld %ld\n", state, tx.status, tx.maxerror, tx.esterror);
    return 0;
}
"""
#: The kernel grows maxerror by 500 µs per second while unsynchronised updates are missing:
#: two reads a few seconds apart may differ by this much.
_MAXERROR_SLACK_US = 5_000


@pytest.fixture(scope="module")
def c_adjtimex(tmp_path_factory: pytest.TempPathFactory) -> Path:
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.skip("no C compiler to read adjtimex independently")
    work = tmp_path_factory.mktemp("adjtimex")
    source = work / "adjtimex.c"
    source.write_text(_ADJTIMEX_C)
    binary = work / "adjtimex"
    subprocess.run([compiler, "-o", str(binary), str(source)], check=True, timeout=120)
    return binary


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="adjtimex is Linux's")
def test_kernel_clock_agrees_with_a_c_program(c_adjtimex: Path) -> None:
    ours = read_kernel_clock()
    done = subprocess.run([str(c_adjtimex)], capture_output=True, text=True, timeout=30, check=True)
    state, status, maxerror, esterror = (int(v) for v in done.stdout.split())
    assert ours is not None
    assert (ours.state, ours.status) == (state, status)
    assert abs(ours.maxerror_us - maxerror) <= _MAXERROR_SLACK_US
    assert ours.esterror_us >= 0
    assert esterror >= 0
    kernel_synced = maxerror < MAX_SYNCED_ERROR_US
    assert system_ntp_synchronized() is kernel_synced


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="adjtimex is Linux's")
def test_kernel_clock_is_self_consistent() -> None:
    kernel = read_kernel_clock()
    assert isinstance(kernel, KernelClock)
    # The kernel returns TIME_ERROR while STA_UNSYNC is set (kernel/time/ntp.c).
    if kernel.status & STA_UNSYNC:
        assert kernel.state == TIME_ERROR
    assert 0 <= kernel.maxerror_us <= MAX_SYNCED_ERROR_US
    assert isinstance(system_ntp_synchronized(), bool)
    assert system_ntp_synchronized() is kernel.synchronized


def test_boot_id_is_the_kernels_and_stable() -> None:
    boot_id = read_boot_id()
    assert boot_id == read_boot_id()
    if Path("/proc/sys/kernel/random/boot_id").exists():
        assert boot_id == Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        assert str(uuid.UUID(boot_id)) == boot_id
        # Another process on this boot sees the same id: monotonic readings compare.
        other = subprocess.run(
            [sys.executable, "-c", "from gateway.timekeeping import read_boot_id as r; print(r())"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
            cwd=Path(__file__).resolve().parents[3],
        )
        assert other.stdout.strip() == boot_id
