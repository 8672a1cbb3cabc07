"""The system clock's state from chronyd's monitoring port: a real chronyd, and fakes on UDP.

The real chronyd runs with ``-x`` (it never touches the system clock), its command port on a
free loopback port, no Unix socket, its pid file in the test's directory, and is stopped by
pid. One test gives it an NTP server on loopback (a second chronyd serving its own clock) and
waits until it follows it; the tests that need it are skipped where chronyd is not installed
(Debian package chrony). The fakes replay replies recorded from chronyd 4.3
(tests/protocols/chrony_vectors.py) or stay silent, and run everywhere.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Final

import pytest

from gateway.timekeeping import (
    ChronyUnavailable,
    ClockStateSource,
    KernelClock,
    SystemClockProbe,
    SystemClockState,
    decide_system_clock,
    query_chrony_tracking,
)
from protocols.chrony import (
    TRACKING_PACKET_BYTES,
    ChronyError,
    ChronyRejectReason,
    ChronyTracking,
    LeapStatus,
    decode_tracking_reply,
)
from tests.protocols.chrony_vectors import (
    BAD_VERSION,
    LOCAL,
    SEQUENCE,
    SYNCED,
    UNSYNCED,
    with_sequence,
)

#: Installed, or unpacked from Debian's package by scripts/bootstrap (which never installs it:
#: that would replace the machine's time daemon).
_CANDIDATES: Final = (
    "/usr/sbin/chronyd",
    "/usr/local/sbin/chronyd",
    str(Path(__file__).resolve().parents[3] / ".cache/chrony/usr/sbin/chronyd"),
)
#: chronyd answers its command port within milliseconds of starting; generous for a busy box.
START_TIMEOUT_S: Final = 20.0
#: Polling at 1/64 s, chronyd selects a loopback server within a second or two.
SYNC_TIMEOUT_S: Final = 30.0
#: Poll interval while waiting for chronyd (an external process offers no event to await).
POLL_INTERVAL_S: Final = 0.05
STOP_TIMEOUT_S: Final = 5.0
#: A query timeout much longer than anything a probe call may take.
SLOW_QUERY_TIMEOUT_S: Final = 3.0
#: The query timeout against a chronyd that never answers.
SILENT_TIMEOUT_S: Final = 1.0

TRACKING_SYNCED: Final = decode_tracking_reply(SYNCED, SEQUENCE)
KERNEL_SYNCED: Final = KernelClock(state=0, status=0, maxerror_us=20_000, esterror_us=100)
KERNEL_UNSYNCED: Final = KernelClock(state=5, status=0x40, maxerror_us=16_000_000, esterror_us=0)


def _chronyd_binary() -> str | None:
    found = shutil.which("chronyd")
    if found:
        return found
    return next((c for c in _CANDIDATES if Path(c).exists()), None)


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Chronyd:
    """One ``chronyd -x -d`` child process with its configuration in ``workdir``."""

    def __init__(self, binary: str, workdir: Path, name: str, directives: list[str]) -> None:
        self.cmdport = _free_udp_port()
        conf = workdir / f"{name}.conf"
        conf.write_text(
            "\n".join(
                [
                    *directives,
                    f"cmdport {self.cmdport}",
                    "bindcmdaddress 127.0.0.1",
                    "bindcmdaddress /",  # no Unix socket (it would be /run/chrony's)
                    f"pidfile {workdir / name}.pid",
                    "",
                ]
            )
        )
        # As root, stay root instead of switching to the package's _chrony user; otherwise
        # -U lets chronyd start unprivileged (it needs no privilege with -x and high ports).
        user = ["-u", "root"] if os.geteuid() == 0 else ["-U"]
        self.log = workdir / f"{name}.log"
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [binary, "-x", "-d", *user, "-f", str(conf)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def query(self, timeout_s: float = 1.0) -> ChronyTracking:
        return query_chrony_tracking(port=self.cmdport, timeout_s=timeout_s)

    def wait_for(
        self, accept: Callable[[ChronyTracking], bool], timeout_s: float
    ) -> ChronyTracking:
        deadline = time.monotonic() + timeout_s
        last: object = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"chronyd exited: {self.log.read_text()}")
            try:
                tracking = self.query()
            except (ChronyUnavailable, ChronyError) as exc:
                last = exc
            else:
                if accept(tracking):
                    return tracking
                last = tracking
            time.sleep(POLL_INTERVAL_S)
        raise AssertionError(f"chronyd never got there: {last!r}\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def chronyd(tmp_path: Path) -> Iterator[Callable[[str, list[str]], Chronyd]]:
    binary = _chronyd_binary()
    if binary is None:
        pytest.skip("chronyd is not installed (Debian package chrony)")
    started: list[Chronyd] = []

    def start(name: str, directives: list[str]) -> Chronyd:
        daemon = Chronyd(binary, tmp_path, name, directives)
        started.append(daemon)
        return daemon

    yield start
    for daemon in reversed(started):
        daemon.stop()


class FakeChronyd:
    """A UDP server on loopback that answers each request with ``answer(request)``'s datagrams
    (none: silence) and records the requests."""

    def __init__(self, answer: Callable[[bytes], list[bytes]]) -> None:
        self._answer = answer
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]
        self.requests: list[bytes] = []
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                request, peer = self.sock.recvfrom(4096)
            except OSError:
                return
            if self._stopping.is_set():
                return
            self.requests.append(request)
            for datagram in self._answer(request):
                self.sock.sendto(datagram, peer)

    def close(self) -> None:
        # Closing a socket does not wake a thread blocked on it: a last datagram does.
        self._stopping.set()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as waker:
            waker.sendto(b"", ("127.0.0.1", self.port))
        self._thread.join(timeout=STOP_TIMEOUT_S)
        self.sock.close()
        assert not self._thread.is_alive()


@pytest.fixture
def fake_chronyd() -> Iterator[Callable[[Callable[[bytes], list[bytes]]], FakeChronyd]]:
    fakes: list[FakeChronyd] = []

    def start(answer: Callable[[bytes], list[bytes]]) -> FakeChronyd:
        fake = FakeChronyd(answer)
        fakes.append(fake)
        return fake

    yield start
    for fake in fakes:
        fake.close()


def _replay(recorded: bytes) -> Callable[[bytes], list[bytes]]:
    return lambda request: [with_sequence(recorded, request[8:12])]


def _never_called() -> bool:
    raise AssertionError("a fallback was read although chronyd answered")


# ---- real chronyd ------------------------------------------------------------------------------


@pytest.mark.timeout(90)
def test_real_chronyd_following_a_server_says_synchronised(
    chronyd: Callable[[str, list[str]], Chronyd],
) -> None:
    ntp_port = _free_udp_port()
    chronyd(
        "server",
        [f"port {ntp_port}", "bindaddress 127.0.0.1", "allow 127.0.0.1", "local stratum 1"],
    )
    client = chronyd(
        "client", ["port 0", f"server 127.0.0.1 port {ntp_port} iburst minpoll -6 maxpoll -6"]
    )
    before = client.wait_for(lambda _: True, START_TIMEOUT_S)
    first = client.wait_for(lambda t: t.synchronized, SYNC_TIMEOUT_S)
    assert first.reference_name == "127.0.0.1"
    assert first.stratum == 2
    assert first.leap_status is LeapStatus.NORMAL
    assert first.ref_time_ns > 0
    # Just after selecting it, chronyd's error bound is wide (its skew estimate is still
    # huge); it shrinks to microseconds on loopback within a few updates.
    assert first.max_error_s < 16.0
    tracking = client.wait_for(lambda t: t.max_error_s < 0.001, SYNC_TIMEOUT_S)
    assert tracking.synchronized
    if before.synchronized:  # already following it at the first answer
        assert before.reference_name == "127.0.0.1"

    probe = SystemClockProbe(
        ask_chrony=partial(query_chrony_tracking, port=client.cmdport),
        read_kernel=_never_called,  # type: ignore[arg-type]
        read_timesyncd=_never_called,
    )
    state = probe.read()
    assert state.source is ClockStateSource.CHRONY
    assert state.synchronized
    assert state.reference == "127.0.0.1"
    assert state.offset_s is not None
    assert abs(state.offset_s) < 0.01
    assert probe.chrony_failures == {}


@pytest.mark.timeout(60)
def test_real_chronyd_without_a_source_says_unsynchronised(
    chronyd: Callable[[str, list[str]], Chronyd],
) -> None:
    alone = chronyd("alone", ["port 0"])
    tracking = alone.wait_for(lambda _: True, START_TIMEOUT_S)
    assert tracking.leap_status is LeapStatus.UNSYNCHRONISED
    assert (tracking.ref_id, tracking.stratum) == (0, 0)
    assert not tracking.synchronized
    # chronyd's word is final: a kernel that looks synchronised is not asked.
    probe = SystemClockProbe(
        ask_chrony=partial(query_chrony_tracking, port=alone.cmdport),
        read_kernel=lambda: KERNEL_SYNCED,
        read_timesyncd=_never_called,
    )
    state = probe.read()
    assert (state.source, state.synchronized) == (ClockStateSource.CHRONY, False)


# ---- fakes on UDP ------------------------------------------------------------------------------


def test_recorded_reply_through_a_socket(
    fake_chronyd: Callable[[Callable[[bytes], list[bytes]]], FakeChronyd],
) -> None:
    # A late answer to an earlier request comes first and is skipped, not taken.
    def answer(request: bytes) -> list[bytes]:
        stale = bytes(a ^ 0xFF for a in request[8:12])
        return [with_sequence(UNSYNCED, stale), with_sequence(SYNCED, request[8:12])]

    fake = fake_chronyd(answer)
    tracking = query_chrony_tracking(port=fake.port, timeout_s=SLOW_QUERY_TIMEOUT_S)
    assert tracking == TRACKING_SYNCED
    assert len(fake.requests) == 1
    assert len(fake.requests[0]) == TRACKING_PACKET_BYTES
    assert fake.requests[0][:6] == bytes.fromhex("060100000021")


def test_nothing_listening_is_unavailable_at_once() -> None:
    port = _free_udp_port()  # bound and closed again: nothing listens there now
    started = time.monotonic()
    with pytest.raises(ChronyUnavailable, match="nothing listens"):
        query_chrony_tracking(port=port, timeout_s=SLOW_QUERY_TIMEOUT_S)
    assert time.monotonic() - started < SLOW_QUERY_TIMEOUT_S


def test_silent_chronyd_times_out(
    fake_chronyd: Callable[[Callable[[bytes], list[bytes]]], FakeChronyd],
) -> None:
    fake = fake_chronyd(lambda _: [])
    started = time.monotonic()
    with pytest.raises(ChronyUnavailable, match="no answer"):
        query_chrony_tracking(port=fake.port, timeout_s=0.3)
    assert 0.3 <= time.monotonic() - started < SLOW_QUERY_TIMEOUT_S
    assert len(fake.requests) == 1


def test_probe_call_never_waits_for_a_silent_chronyd(
    fake_chronyd: Callable[[Callable[[bytes], list[bytes]]], FakeChronyd],
) -> None:
    fake = fake_chronyd(lambda _: [])
    probe = SystemClockProbe(
        ask_chrony=partial(query_chrony_tracking, port=fake.port, timeout_s=SILENT_TIMEOUT_S),
        read_kernel=lambda: None,  # ProtectClock=yes: adjtimex refused
        read_timesyncd=lambda: True,
    )
    started = time.monotonic()
    assert probe() is False  # nothing read yet
    assert probe() is False  # the read in flight is not started twice
    assert time.monotonic() - started < SILENT_TIMEOUT_S / 2
    assert probe.state.source is ClockStateSource.NONE
    assert probe.wait_idle(SLOW_QUERY_TIMEOUT_S * 3)
    assert probe.state == SystemClockState(synchronized=True, source=ClockStateSource.TIMESYNCD)
    assert probe.chrony_failures == {"unavailable": 1}
    assert len(fake.requests) == 1
    assert probe() is True


def test_refusal_is_counted_and_the_kernel_decides(
    fake_chronyd: Callable[[Callable[[bytes], list[bytes]]], FakeChronyd],
) -> None:
    fake = fake_chronyd(_replay(BAD_VERSION))
    probe = SystemClockProbe(
        ask_chrony=partial(query_chrony_tracking, port=fake.port, timeout_s=SLOW_QUERY_TIMEOUT_S),
        read_kernel=lambda: KERNEL_SYNCED,
        read_timesyncd=_never_called,
    )
    state = probe.read()
    assert state == SystemClockState(
        synchronized=True, source=ClockStateSource.KERNEL, max_error_s=0.02
    )
    assert probe.chrony_failures == {ChronyRejectReason.REFUSED.value: 1}


def test_probe_reads_again_only_when_its_state_is_old() -> None:
    now = [100.0]
    answers = [TRACKING_SYNCED, decode_tracking_reply(LOCAL, SEQUENCE)]
    asked: list[ChronyTracking] = []

    def ask() -> ChronyTracking:
        asked.append(answers[len(asked)])
        return asked[-1]

    probe = SystemClockProbe(
        ask_chrony=ask,
        read_kernel=_never_called,  # type: ignore[arg-type]
        read_timesyncd=_never_called,
        monotonic=lambda: now[0],
        max_age_s=5.0,
    )
    probe()
    assert probe.wait_idle(SLOW_QUERY_TIMEOUT_S)
    assert probe() is True
    assert probe.wait_idle(SLOW_QUERY_TIMEOUT_S)
    assert len(asked) == 1  # fresh: no second read
    now[0] += 5.0
    probe()  # answers from its cache and starts the new read
    assert probe.wait_idle(SLOW_QUERY_TIMEOUT_S)
    assert len(asked) == 2
    assert probe() is False  # chronyd now serves its local clock only
    assert probe.state.reference == "7F7F0101"


# ---- the decision, pure ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("chrony", "kernel", "timesyncd", "expected"),
    [
        (SYNCED, KERNEL_UNSYNCED, False, (True, ClockStateSource.CHRONY)),
        (UNSYNCED, KERNEL_SYNCED, True, (False, ClockStateSource.CHRONY)),
        (LOCAL, KERNEL_SYNCED, True, (False, ClockStateSource.CHRONY)),
        (None, KERNEL_SYNCED, False, (True, ClockStateSource.KERNEL)),
        (None, KERNEL_UNSYNCED, True, (False, ClockStateSource.KERNEL)),
        (None, None, True, (True, ClockStateSource.TIMESYNCD)),
        (None, None, False, (False, ClockStateSource.TIMESYNCD)),
    ],
    ids=[
        "chrony-synced",
        "chrony-no-source",
        "chrony-local-clock",
        "kernel-synced",
        "kernel-unsynced",
        "timesyncd-flag",
        "nothing",
    ],
)
def test_decision(
    chrony: bytes | None,
    kernel: KernelClock | None,
    timesyncd: bool,
    expected: tuple[bool, ClockStateSource],
) -> None:
    tracking = None if chrony is None else decode_tracking_reply(chrony, SEQUENCE)
    state = decide_system_clock(tracking, kernel, timesyncd)
    assert (state.synchronized, state.source) == expected
    if tracking is not None:
        assert state.offset_s == tracking.system_offset_s
        assert state.max_error_s == tracking.max_error_s
    else:
        assert state.offset_s is None
