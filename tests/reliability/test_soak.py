"""Soak: an hour of the simulated cross-dock world at speed, the door gateway following the
world's clock, with its resident memory and open file descriptors sampled from /proc."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from importlib import resources
from pathlib import Path

import pytest

from tests.fixtures.mosquitto import Broker
from tests.gateway.pipeline.test_run import simulation
from tests.reliability.conftest import Daemon, Recorder

SPEED = 60.0
SIMULATED_S = 3600.0
SAMPLE_S = 2.0
#: Samples before this fraction of the run are the warm-up (imports, caches, SQLite pages).
WARMUP = 0.25
RSS_GROWTH_BOUND_KIB = 16 * 1024
FD_GROWTH_BOUND = 4


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_an_hour_of_cross_dock_at_speed_without_growth(
    mosquitto: Broker,
    recorder: Recorder,
    daemons: Callable[..., Daemon],
    tmp_path: Path,
) -> None:
    """Parameters: the cross-dock scenario lengthened to 3,600 simulated seconds, run at speed
    60 (60 s real), the door 3 gateway on the world's clock; RSS and open fds sampled every
    2 s. After the first quarter (warm-up), RSS may grow by at most 16 MiB and the fd count by
    at most 4.

    The gateway runs to the end, delivers events throughout, and stops cleanly."""
    # The shipped cross-dock world, lasting an hour (its traffic ends after 25 minutes; the
    # tags and the labels stay, advertising and reporting).
    text = (resources.files("simulator.scenarios") / "cross-dock.toml").read_text()
    assert "\nduration_s = 1800\n" in text
    scenario = tmp_path / "cross-dock-hour.toml"
    scenario.write_text(
        text.replace("\nduration_s = 1800\n", f"\nduration_s = {SIMULATED_S:.0f}\n", 1)
    )
    rss: list[int] = []
    fds: list[int] = []
    async with simulation(tmp_path, mosquitto, str(scenario), "--speed", str(SPEED)) as (
        where,
        sim,
    ):
        daemon = daemons(Path(where["gateway_configs"]["gw-door-03"]), tmp_path / "gw.log")
        mark = recorder.mark()
        daemon.start()
        await asyncio.to_thread(recorder.wait_online, "gw-door-03", mark)
        while sim.returncode is None:
            assert daemon.alive(), daemon.text()
            rss.append(daemon.rss_kib())
            fds.append(daemon.open_fds())
            try:
                async with asyncio.timeout(SAMPLE_S):
                    await sim.wait()
            except TimeoutError:
                pass
        events = len(recorder.event_ids())
        assert daemon.terminate() == 0
    start = int(len(rss) * WARMUP)
    print(
        f"{len(rss)} samples; RSS KiB at warm-up {rss[start]}, peak {max(rss[start:])}, "
        f"last {rss[-1]}; fds at warm-up {fds[start]}, max {max(fds[start:])}; "
        f"{events} events delivered"
    )
    assert len(rss) >= 0.8 * SIMULATED_S / SPEED / SAMPLE_S
    assert events > 100
    assert max(rss[start:]) - rss[start] <= RSS_GROWTH_BOUND_KIB
    assert max(fds[start:]) - fds[start] <= FD_GROWTH_BOUND
    assert "Traceback" not in daemon.text()
