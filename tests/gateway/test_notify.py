"""The sd_notify client against real datagram sockets the test reads: path and abstract names,
the watchdog variables, and a socket nobody listens on."""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from gateway.notify import SystemdNotifier

RECV_TIMEOUT_S = 10.0


@contextmanager
def listening(address: str | bytes) -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        sock.bind(address)
        sock.settimeout(RECV_TIMEOUT_S)
        yield sock
    finally:
        sock.close()


def received(sock: socket.socket) -> list[str]:
    return sock.recv(4096).decode().split("\n")


def test_path_socket_gets_each_notification_as_one_datagram(tmp_path: Path) -> None:
    path = str(tmp_path / "notify.sock")
    with listening(path) as sock:
        notifier = SystemdNotifier.from_environ({"NOTIFY_SOCKET": path})
        assert notifier.enabled
        assert notifier.ready("uplink connecting; outbox 0 queued")
        assert received(sock) == ["READY=1", "STATUS=uplink connecting; outbox 0 queued"]
        assert notifier.status("two\nlines  here")
        assert received(sock) == ["STATUS=two lines here"]
        assert notifier.watchdog()
        assert received(sock) == ["WATCHDOG=1"]
        assert notifier.stopping()
        assert received(sock) == ["STOPPING=1"]
        notifier.close()


def test_abstract_socket_name() -> None:
    name = f"tagrelay-test-{uuid.uuid4().hex}"
    with listening(b"\0" + name.encode()) as sock:
        notifier = SystemdNotifier.from_environ({"NOTIFY_SOCKET": f"@{name}"})
        assert notifier.ready()
        assert received(sock) == ["READY=1"]
        notifier.close()


def test_unreachable_socket_logs_once_and_becomes_a_no_op(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "gone.sock"
    # A socket file that was bound and closed: nobody is listening (ECONNREFUSED).
    with listening(str(path)):
        pass
    assert path.exists()
    notifier = SystemdNotifier.from_environ(
        {"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "2000000"}
    )
    assert notifier.enabled
    with caplog.at_level(logging.WARNING, logger="gateway.notify"):
        assert not notifier.ready()
        assert not notifier.watchdog()
        assert not notifier.status("x")
        assert not notifier.stopping()
    assert not notifier.enabled
    warnings = [r for r in caplog.records if r.name == "gateway.notify"]
    assert len(warnings) == 1
    assert str(path) in warnings[0].getMessage()
    # No such file at all (ENOENT): the same.
    missing = SystemdNotifier.from_environ({"NOTIFY_SOCKET": str(tmp_path / "none.sock")})
    assert not missing.ready()
    assert not missing.enabled
    notifier.close()


def test_no_socket_is_a_no_op() -> None:
    notifier = SystemdNotifier.from_environ({"WATCHDOG_USEC": "1000000"})
    assert not notifier.enabled
    assert notifier.watchdog_timeout_s is None
    assert not notifier.ready()
    relative = SystemdNotifier.from_environ({"NOTIFY_SOCKET": "relative/name"})
    assert not relative.enabled
    assert not relative.ready()


def test_environment_is_the_one_handed_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = str(tmp_path / "notify.sock")
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    with listening(path) as sock:
        assert not SystemdNotifier.from_environ({}).ready()
        sock.settimeout(0.0)
        with pytest.raises(BlockingIOError):
            sock.recv(4096)


def test_watchdog_usec_and_pid() -> None:
    base = {"NOTIFY_SOCKET": "/run/systemd/notify"}
    on = SystemdNotifier.from_environ({**base, "WATCHDOG_USEC": "30000000"}, pid=42)
    assert on.watchdog_timeout_s == 30.0
    assert on.watchdog_interval_s == 15.0
    mine = {**base, "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "42"}
    assert SystemdNotifier.from_environ(mine, pid=42).watchdog_timeout_s == 30.0
    # Meant for another process (inherited environment): no pings from this one.
    assert SystemdNotifier.from_environ(mine, pid=43).watchdog_timeout_s is None
    assert (
        SystemdNotifier.from_environ({**mine, "WATCHDOG_PID": "x"}, pid=42).watchdog_timeout_s
        is None
    )
    for usec in ("0", "", "-5", "ten"):
        off = SystemdNotifier.from_environ({**base, "WATCHDOG_USEC": usec}, pid=42)
        assert off.watchdog_timeout_s is None
        assert off.watchdog_interval_s is None
    # The default pid is this process's.
    own = {**base, "WATCHDOG_USEC": "1000000", "WATCHDOG_PID": str(os.getpid())}
    assert SystemdNotifier.from_environ(own).watchdog_timeout_s == 1.0
