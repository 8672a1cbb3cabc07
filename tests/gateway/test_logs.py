"""Log lines: the three formats, repeats collapsed, secrets never written; and the daemon's
--log-level / --log-format as a real process (the command line wins over the file)."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pytest

from gateway.logs import JsonFormatter, KeyValueFormatter, LogHandler, configure_logging
from tests.fixtures.mosquitto import free_port, stop_process

SECRET: Final = "pw-Hunter2-very-secret"
KV_LINE: Final = re.compile(r'^(?:[a-z_]+=(?:"(?:[^"\\]|\\.)*"|\S+) ?)+$')


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    log = logging.getLogger("tests.logs.unit")
    log.propagate = False
    log.setLevel(logging.DEBUG)
    yield log
    for handler in list(log.handlers):
        log.removeHandler(handler)
    log.propagate = True


def attach(log: logging.Logger, formatter: logging.Formatter, **kw: object) -> io.StringIO:
    out = io.StringIO()
    log.addHandler(LogHandler(out, formatter, **kw))  # type: ignore[arg-type]
    return out


def test_kv_and_json_lines_are_one_line_each_with_fields(logger: logging.Logger) -> None:
    kv = attach(logger, KeyValueFormatter(), repeat_window_s=0)
    js = attach(logger, JsonFormatter(), repeat_window_s=0)
    logger.warning('reader %s: "%s"', "/dev/ttyACM0", "gone\naway", extra={"stage": "gps"})
    try:
        raise ValueError("boom")
    except ValueError:
        logger.exception("stage failed")
    kv_lines = kv.getvalue().splitlines()
    assert len(kv_lines) == 2
    for line in kv_lines:
        assert KV_LINE.match(line), line
    assert 'msg="reader /dev/ttyACM0: \\"gone\\naway\\""' in kv_lines[0]
    assert " level=WARNING logger=tests.logs.unit " in kv_lines[0]
    assert kv_lines[0].endswith(" stage=gps")
    assert 'exc="Traceback (most recent call last):\\n' in kv_lines[1]
    records = [json.loads(line) for line in js.getvalue().splitlines()]
    assert len(records) == 2
    assert records[0]["msg"] == 'reader /dev/ttyACM0: "gone\naway"'
    assert records[0]["level"] == "WARNING"
    assert records[0]["stage"] == "gps"
    assert records[0]["time"].endswith("Z")
    assert "ValueError: boom" in records[1]["exc"]


def test_repeats_within_the_window_collapse_into_one_line(logger: logging.Logger) -> None:
    clock = Clock()
    out = attach(logger, KeyValueFormatter(), repeat_window_s=60.0, now=clock)
    (handler,) = (h for h in logger.handlers if isinstance(h, LogHandler))
    for i in range(100):
        clock.t = i * 0.5  # every 0.5 s for 50 s
        logger.warning("open %s failed: %s", "/dev/ttyACM0", f"attempt {i}")
        if i % 10 == 0:
            logger.info("something else %d", i)  # its own kind: not collapsed with the above
    lines = out.getvalue().splitlines()
    assert sum("open /dev/ttyACM0 failed" in line for line in lines) == 1
    assert sum("something else" in line for line in lines) == 1
    clock.t = 61.0
    handler.flush_repeats()
    lines = out.getvalue().splitlines()
    summary = [line for line in lines if "repeated" in line]
    assert len(summary) == 2
    assert "open /dev/ttyACM0 failed: attempt 99 (repeated 99 times in 60 s)" in summary[0]
    assert summary[0].endswith(" repeated=99")
    assert "(repeated 9 times in 60 s)" in summary[1]
    # Same template, different words: different messages, both written.
    logger.warning("configuration %s: %s", "uplink.host", "assumed")
    logger.warning("configuration %s: %s", "uplink.port", "assumed")
    assert "uplink.host" in out.getvalue()
    assert "uplink.port" in out.getvalue()
    # A new window: the next one is written again.
    logger.warning("open %s failed: %s", "/dev/ttyACM0", "again")
    assert out.getvalue().splitlines()[-1].endswith('failed: again"')


def test_a_secret_is_never_written_in_any_format(logger: logging.Logger) -> None:
    outs = [
        attach(logger, f, secrets=(SECRET,), repeat_window_s=0)
        for f in (KeyValueFormatter(), JsonFormatter(), logging.Formatter("%(message)s"))
    ]
    logger.error("connect with password %s", SECRET, extra={"password": SECRET})
    try:
        raise RuntimeError(f"auth failed for {SECRET}")
    except RuntimeError:
        logger.exception("uplink")
    for out in outs:
        text = out.getvalue()
        assert "connect with password **********" in text
        assert SECRET not in text
        assert "auth failed for **********" in text


def test_auto_is_kv_only_when_stderr_is_the_journal(tmp_path: Path) -> None:
    target = tmp_path / "stream"
    with target.open("w") as stream:
        st = os.fstat(stream.fileno())
        journal = {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
        try:
            configure_logging("INFO", "auto", stream=stream, environ=journal)
            logging.getLogger("tests.logs.auto").warning("to the journal")
            configure_logging("INFO", "auto", stream=stream, environ={})
            logging.getLogger("tests.logs.auto").warning("to a terminal")
        finally:
            configure_logging("INFO", "text")
    first, second = target.read_text().splitlines()
    assert first.startswith("<4>time=")  # syslog priority prefix, journald strips it
    assert 'msg="to the journal"' in first
    assert second.endswith("WARNING tests.logs.auto: to a terminal")


# -- the daemon as a real process ----------------------------------------------------------


def daemon_config(tmp_path: Path, level: str, fmt: str) -> Path:
    path = tmp_path / "tagrelay.toml"
    # The broker is away (nothing listens): the daemon starts anyway and logs its attempts.
    path.write_text(
        f'gateway_id = "gw-logs"\nstate_dir = "{tmp_path / "state"}"\n'
        f'[uplink]\nhost = "127.0.0.1"\nport = {free_port()}\ntransport = "tcp"\n'
        'username = "gw"\npassword_env = "TAGRELAY_TEST_PW"\nreconnect_min_s = 0.05\n'
        f'[logging]\nlevel = "{level}"\nformat = "{fmt}"\n'
    )
    return path


def start(log: Path, env: dict[str, str], args: tuple[str, ...]) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "gateway", *args], stderr=out, stdout=out, env=env
        )


async def run_until_ready(tmp_path: Path, *args: str) -> str:
    """Start ``tagrelay ARGS``, wait for READY=1, stop it; its stderr."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify.sock"))
    sock.setblocking(False)
    env = {
        **os.environ,
        "NOTIFY_SOCKET": str(tmp_path / "notify.sock"),
        "TAGRELAY_TEST_PW": SECRET,
    }
    env.pop("JOURNAL_STREAM", None)
    log = tmp_path / "stderr.log"
    proc = start(log, env, args)
    try:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(60):
            while b"READY=1" not in await loop.sock_recv(sock, 4096):
                pass
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 30) == 0
    finally:
        stop_process(proc)
        sock.close()
    return log.read_text()


@pytest.mark.timeout(120)
async def test_log_level_before_the_command_wins_over_the_file(tmp_path: Path) -> None:
    config = daemon_config(tmp_path, "DEBUG", "kv")
    text = await run_until_ready(
        tmp_path, "--log-level", "WARNING", "run", "--config", str(config), "--log-format", "json"
    )
    lines = text.splitlines()
    assert lines, text
    records = [json.loads(line) for line in lines]  # every line is JSON (the flag's format)
    assert {r["level"] for r in records} <= {"WARNING", "ERROR", "CRITICAL"}
    # The warnings are there (the file names no device), the INFO lines are not.
    assert any("nothing to hear" in r["msg"] for r in records)
    assert not any("running as gw-logs" in r["msg"] for r in records)
    assert SECRET not in text


@pytest.mark.timeout(120)
async def test_log_level_after_the_command_wins_over_the_file(tmp_path: Path) -> None:
    config = daemon_config(tmp_path, "ERROR", "json")
    text = await run_until_ready(
        tmp_path, "run", "--config", str(config), "--log-level", "DEBUG", "--log-format", "kv"
    )
    lines = text.splitlines()
    for line in lines:
        assert KV_LINE.match(line), line
    levels = {m.group(1) for m in re.finditer(r" level=(\w+) ", text)}
    assert {"DEBUG", "INFO"} <= levels
    assert 'msg="tagrelay stopped"' in text
    assert SECRET not in text
