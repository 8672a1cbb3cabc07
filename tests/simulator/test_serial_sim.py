"""The simulated serial devices, seen from the far end of a real pty opened with pyserial."""

from __future__ import annotations

import asyncio
import errno
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import serial
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocols.gps import FixQuality, GpsStreamDecoder, PositionFix
from protocols.smartlabel import (
    Ack,
    Environment,
    FrameRejected,
    Message,
    Nack,
    NackReason,
    RejectReason,
    StreamDecoder,
    build,
)
from simulator.serial import GpsReceiverSim, PtyPort, SmartLabelReaderSim

DEADLINE_S = 5.0


def target(link: Path) -> str:
    return os.path.realpath(link)


def hangup_seen(fd: int) -> bool:
    """A hung-up tty reads as end of file or fails with EIO, depending on the kernel."""
    try:
        return os.read(fd, 10) == b""
    except OSError as exc:
        return exc.errno == errno.EIO


class Peer:
    """The gateway's end of the pty, opened through the symlink like a real device."""

    def __init__(self, link: Path) -> None:
        self.serial = serial.Serial(str(link), timeout=0)
        self.decoder = StreamDecoder()
        self.messages: list[Message] = []
        self.rejects: list[FrameRejected] = []
        self._got = asyncio.Event()
        asyncio.get_running_loop().add_reader(self.serial.fileno(), self._readable)

    def _readable(self) -> None:
        for item in self.decoder.feed(os.read(self.serial.fileno(), 4096)):
            if isinstance(item, FrameRejected):
                self.rejects.append(item)
            else:
                self.messages.append(item)
        self._got.set()

    async def wait_messages(self, n: int) -> list[Message]:
        async with asyncio.timeout(DEADLINE_S):
            while len(self.messages) < n:
                self._got.clear()
                await self._got.wait()
        return self.messages

    def write(self, msg: Message) -> None:
        self.serial.write(build(msg))

    def close(self) -> None:
        asyncio.get_running_loop().remove_reader(self.serial.fileno())
        self.serial.close()


@pytest.fixture
async def pty(tmp_path: Path) -> AsyncIterator[PtyPort]:
    async with PtyPort(tmp_path / "by-id" / "usb-SmartLabel_Reader_0001-if00") as port:
        yield port


@pytest.fixture
async def peer(pty: PtyPort) -> AsyncIterator[Peer]:
    p = Peer(pty.link)
    try:
        yield p
    finally:
        p.close()


def env(label: int, seq: int, temp: float = 4.5) -> Environment:
    return Environment(
        label_id=label,
        seq=seq,
        label_time=1_760_000_000 + seq,
        temperature_c=temp,
        humidity_pct=55.0,
    )


async def test_pty_symlink_points_at_the_slave(pty: PtyPort) -> None:
    assert pty.plugged
    assert pty.device is not None
    assert pty.device.startswith("/dev/pts/")
    assert target(pty.link) == pty.device


async def test_bytes_flow_both_ways(pty: PtyPort, peer: Peer) -> None:
    received = bytearray()
    got = asyncio.Event()

    def receiver(data: bytes) -> None:
        received.extend(data)
        got.set()

    pty.set_receiver(receiver)
    peer.serial.write(b"\x00hello\x00")
    async with asyncio.timeout(DEADLINE_S):
        while bytes(received) != b"\x00hello\x00":
            got.clear()
            await got.wait()
    assert pty.write(build(env(1, 1))) > 0
    assert await peer.wait_messages(1) == [env(1, 1)]


async def test_unplug_removes_link_and_replug_repoints_it(tmp_path: Path) -> None:
    async with PtyPort(tmp_path / "ttyREADER") as port:
        first = port.device
        port.replug()
        assert port.device != first
        assert target(port.link) == port.device
        port.unplug()
        assert not port.link.exists()
        assert not port.plugged
        assert port.write(b"lost") == 0
        assert port.dropped_tx_bytes == 4
        port.plug()
        assert target(port.link) == port.device


async def test_unplug_hangs_up_the_open_tty(pty: PtyPort) -> None:
    ser = serial.Serial(str(pty.link), timeout=0)
    try:
        pty.unplug()
        assert hangup_seen(ser.fileno())
    finally:
        ser.close()


async def test_reader_resends_until_acked(pty: PtyPort, peer: Peer) -> None:
    async with SmartLabelReaderSim(pty, resend_after_s=0.1) as sim:
        sim.send(env(7, 1))
        sim.send(env(7, 2))
        await peer.wait_messages(4)  # both frames, then both again
        assert sim.resent[(7, 1)] >= 1
        assert sim.unacked == 2
        peer.write(Ack(label_id=7, seq=0, label_time=0, acked_seq=1))
        peer.write(Ack(label_id=7, seq=1, label_time=0, acked_seq=2))
        await sim.wait_for(lambda: sim.unacked == 0)
        assert sim.acked == {(7, 1), (7, 2)}
        assert [type(m) for m in sim.received] == [Ack, Ack]
        # A new frame left un-ACKed gets resent twice: the ACKed ones must not have been.
        before = dict(sim.resent)
        sim.send(env(7, 3))
        async with asyncio.timeout(DEADLINE_S):
            while sim.resent[(7, 3)] < 2:
                await peer.wait_messages(len(peer.messages) + 1)
        assert sim.resent[(7, 1)] == before[(7, 1)]
        assert sim.resent[(7, 2)] == before[(7, 2)]


async def test_reader_honours_nack(pty: PtyPort, peer: Peer) -> None:
    async with SmartLabelReaderSim(pty, resend_after_s=0.1) as sim:
        sim.send(env(3, 10))
        sim.send(env(3, 11))
        await peer.wait_messages(2)
        peer.write(
            Nack(label_id=3, seq=0, label_time=0, nacked_seq=10, reason=NackReason.MALFORMED)
        )
        peer.write(Nack(label_id=3, seq=1, label_time=0, nacked_seq=11, reason=NackReason.BUSY))
        await sim.wait_for(lambda: len(sim.nacked) == 2)
        assert sim.dropped == {(3, 10)}
        assert sim.unacked == 1  # BUSY: kept, resent later
        n = len(peer.messages)
        await peer.wait_messages(n + 1)
        assert peer.messages[n] == env(3, 11)


async def test_reader_faults_reach_the_wire(pty: PtyPort, peer: Peer) -> None:
    async with SmartLabelReaderSim(pty, resend_after_s=30.0) as sim:
        sim.corrupt_next_crc()
        sim.send(env(1, 1))  # bad CRC
        sim.inject_garbage(50)
        sim.send(env(1, 2))  # glued to the garbage: rejected
        sim.send(env(1, 3))
        sim.drop_next_bytes(3)
        sim.send(env(1, 4))  # head lost: rejected
        sim.split_writes(2, gap_s=0.001)
        sim.send(env(1, 5))
        sim.split_writes(None)
        sim.merge_writes(3)
        for seq in (6, 7, 8):
            sim.send(env(1, seq))
        messages = await peer.wait_messages(5)
        assert messages == [env(1, s) for s in (3, 5, 6, 7, 8)]
        assert len(peer.rejects) == 3
        assert peer.rejects[0].reason is RejectReason.BAD_CRC
        assert sim.unacked == 8


async def test_sequence_numbers_count_per_label(pty: PtyPort) -> None:
    async with SmartLabelReaderSim(pty) as sim:
        seqs = [(label, sim.next_seq(label)) for label in (1, 2, 1, 1, 2)]
    assert seqs == [(1, 1), (2, 1), (1, 2), (1, 3), (2, 2)]


async def test_gps_receiver_speaks_nmea_and_ubx(pty: PtyPort) -> None:
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    async with GpsReceiverSim(pty, rate_hz=50.0) as nmea:
        assert nmea.epoch_bytes() == b""  # silent until it has a position
        nmea.set_position(10.0, 20.0, alt_m=5.0, when=when)
        data = nmea.epoch_bytes()
        assert [line[3:6] for line in data.split(b"\r\n") if line] == [
            b"GGA",
            b"RMC",
            b"VTG",
            b"GSA",
        ]
        nmea.lose_fix()
        fix = nmea.current_fix()
        assert fix is not None
        assert fix.fix is FixQuality.NONE
    async with GpsReceiverSim(pty, rate_hz=50.0, ubx=True) as ubx:
        ubx.set_position(10.0, 20.0, when=when)
        frame = ubx.epoch_bytes()
        assert frame[:4] == b"\xb5\x62\x01\x07"  # UBX sync, class NAV, id PVT
        decoded = GpsStreamDecoder().feed(frame)
        assert len(decoded) == 1
        assert isinstance(decoded[0], PositionFix)
        assert decoded[0].lat == pytest.approx(10.0)
        assert decoded[0].time is not None
        assert when <= decoded[0].time < when + timedelta(seconds=5)


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(noise=st.binary(max_size=300))
async def test_reader_survives_any_downlink_bytes(tmp_path: Path, noise: bytes) -> None:
    """Whatever the gateway side sends, a delimiter and a good ACK after it are honoured."""
    async with PtyPort(tmp_path / "fuzz") as port, SmartLabelReaderSim(port) as sim:
        peer = Peer(port.link)
        try:
            sim.send(env(4, 1))
            peer.serial.write(noise + b"\x00")
            peer.write(Ack(label_id=4, seq=0, label_time=0, acked_seq=1))
            async with asyncio.timeout(DEADLINE_S):
                await sim.wait_for(lambda: sim.unacked == 0)
        finally:
            peer.close()
    assert (4, 1) in sim.acked


async def test_failed_plug_leaks_no_descriptor(tmp_path: Path) -> None:
    blocker = tmp_path / "by-id"
    blocker.write_text("a file where the symlink's directory should be")
    port = PtyPort(blocker / "usb-reader")
    before = len(os.listdir("/proc/self/fd"))
    with pytest.raises(FileExistsError):
        port.plug()
    assert len(os.listdir("/proc/self/fd")) == before
    assert not port.plugged
    assert port.device is None
