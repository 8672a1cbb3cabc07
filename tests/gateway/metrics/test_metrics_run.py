"""``tagrelay run`` with ``[metrics]`` on, as a real process in the simulator's cross-dock world
with a real mosquitto: the endpoint is scraped over HTTP and parsed with prometheus-client's own
parser; ``tagrelay status`` reads the same daemon; a broker outage shows in both."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.fixtures.mosquitto import Broker, free_port, stop_process
from tests.gateway.pipeline.test_run import SPEED, gateway_process, simulation

#: Every family the daemon exposes on a door gateway (BLE adapter and SmartLabel reader).
FAMILIES = {
    "tagrelay_build_info",
    "tagrelay_adverts_received",
    "tagrelay_frames_received",
    "tagrelay_driver_queue_dropped",
    "tagrelay_driver_last_data_age_seconds",
    "tagrelay_driver_restarts",
    "tagrelay_decode_errors",
    "tagrelay_label_nacks",
    "tagrelay_label_time_issues",
    "tagrelay_label_sensor_faults",
    "tagrelay_events_dropped",
    "tagrelay_events",
    "tagrelay_outbox_events",
    "tagrelay_outbox_bytes",
    "tagrelay_outbox_oldest_age_seconds",
    "tagrelay_outbox_max_bytes",
    "tagrelay_outbox_leased_events",
    "tagrelay_outbox_dead_letters",
    "tagrelay_outbox_lost_events",
    "tagrelay_mqtt_connected",
    "tagrelay_mqtt_connects",
    "tagrelay_mqtt_reconnects",
    "tagrelay_mqtt_messages_published",
    "tagrelay_mqtt_events_published",
    "tagrelay_mqtt_events_acked",
    "tagrelay_mqtt_events_rejected",
    "tagrelay_mqtt_publish_ack_latency_seconds",
    "tagrelay_clock_state",
    "tagrelay_clock_synced",
    "tagrelay_clock_offset_seconds",
    "tagrelay_presence_tags",
    "tagrelay_handoff_sessions_open",
    "tagrelay_condition_excursions_open",
}
CLASSES = {"alarm", "handoff", "presence", "status", "telemetry"}
ZONE = "door-d3"
ADAPTER = "ble:hci0"


class Scrape:
    def __init__(self, text: str) -> None:
        self.types: dict[str, str] = {}
        self.samples: dict[str, list[tuple[dict[str, str], float]]] = {}
        for family in text_string_to_metric_families(text):
            self.types[family.name] = family.type
            for s in family.samples:
                self.samples.setdefault(s.name, []).append((dict(s.labels), s.value))

    def get(self, name: str, **labels: str) -> float:
        for have, value in self.samples.get(name, []):
            if all(have.get(k) == v for k, v in labels.items()):
                return value
        raise KeyError(f"{name}{labels} not exposed")

    def total(self, name: str) -> float:
        return sum(v for _, v in self.samples.get(name, []))

    def labels(self, name: str, label: str) -> set[str]:
        return {have[label] for have, _ in self.samples.get(name, []) if label in have}


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=")
        body: bytes = response.read()
    return body.decode()


async def scrape_until(
    url: str, condition: Callable[[Scrape], bool], proc: Any, timeout_s: float = 45
) -> Scrape:
    """Scrape until ``condition`` holds (the daemon may not be listening yet at first)."""
    deadline = time.monotonic() + timeout_s
    last: Scrape | None = None
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the daemon exited"
        try:
            last = Scrape(await asyncio.to_thread(_get, url))
        except OSError:
            last = None
        try:
            if last is not None and condition(last):
                return last
        except KeyError:
            pass  # a labelled series appears with its first sample
        await asyncio.sleep(0.25)
    raise AssertionError(
        f"condition not met in {timeout_s} s; last scrape: {last and last.samples}"
    )


def enable_metrics(config: Path, port: int) -> None:
    text = config.read_text()
    config.write_text(f"{text}\n[metrics]\nenabled = true\nport = {port}\n")


async def status(config: Path, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway",
        "status",
        "--config",
        str(config),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(30):
        out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.mark.timeout(180)
async def test_metrics_and_status_of_a_running_gateway(
    mosquitto: Broker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A daemon that dies of a signal leaves its stack in its log.
    monkeypatch.setenv("PYTHONFAULTHANDLER", "1")
    log = tmp_path / "gw.log"
    async with simulation(
        tmp_path, mosquitto, "cross-dock", "--speed", str(SPEED), "--gateway-clock", "system"
    ) as (where, _):
        config = Path(where["gateway_configs"]["gw-door-03"])
        port = free_port()
        enable_metrics(config, port)
        url = f"http://127.0.0.1:{port}/metrics"
        # The trailer's gateway beside it: a GPS receiver instead of a SmartLabel reader.
        trailer = Path(where["gateway_configs"]["gw-trailer-17"])
        trailer_port = free_port()
        enable_metrics(trailer, trailer_port)
        with (
            gateway_process(config, log) as proc,
            gateway_process(trailer, tmp_path / "trailer.log") as trailer_proc,
        ):
            gps = await scrape_until(
                f"http://127.0.0.1:{trailer_port}/metrics",
                lambda s: any(
                    src.startswith("gps:") and n > 0
                    for src, n in (
                        (have.get("source", ""), v)
                        for have, v in s.samples.get("tagrelay_frames_received_total", [])
                    )
                ),
                trailer_proc,
            )
            assert gps.get("tagrelay_build_info", gateway_id="gw-trailer-17") == 1
            assert any(
                d.startswith("gps:")
                for d in gps.labels("tagrelay_driver_last_data_age_seconds", "driver")
            )
            assert "ble:hci3" in gps.labels("tagrelay_adverts_received_total", "source")
            assert not any(
                d.startswith("smartlabel:")
                for d in gps.labels("tagrelay_driver_last_data_age_seconds", "driver")
            )
            stop_process(trailer_proc)
            first = await scrape_until(
                url, lambda s: s.total("tagrelay_adverts_received_total") > 0, proc
            )
            assert set(first.types) >= FAMILIES, FAMILIES - set(first.types)
            assert first.types["tagrelay_adverts_received"] == "counter"
            assert first.types["tagrelay_mqtt_publish_ack_latency_seconds"] == "histogram"
            assert first.get("tagrelay_build_info", gateway_id="gw-door-03") == 1
            # Event classes by name, every one of them, even when empty.
            assert first.labels("tagrelay_outbox_events", "class") == CLASSES
            assert first.labels("tagrelay_outbox_oldest_age_seconds", "class") == CLASSES
            drivers = first.labels("tagrelay_driver_last_data_age_seconds", "driver")
            assert ADAPTER in drivers
            assert any(d.startswith("smartlabel:") for d in drivers)
            assert first.get("tagrelay_clock_synced") in (0, 1)
            assert sum(v for _, v in first.samples["tagrelay_clock_state"]) == 1

            # Values move: adverts keep coming, parcels arrive at the door, PUBACKs are timed.
            adverts = first.get("tagrelay_adverts_received_total", source=ADAPTER)
            moved = await scrape_until(
                url,
                lambda s: (
                    s.get("tagrelay_adverts_received_total", source=ADAPTER) > adverts
                    and s.get("tagrelay_presence_tags", zone=ZONE) >= 1
                    and s.get("tagrelay_events_total", kind="presence.enter") >= 1
                    and s.total("tagrelay_mqtt_publish_ack_latency_seconds_count") >= 1
                    and s.get("tagrelay_mqtt_connected") == 1
                ),
                proc,
            )
            assert moved.get("tagrelay_driver_last_data_age_seconds", driver=ADAPTER) < 10
            assert moved.get("tagrelay_mqtt_events_acked_total") <= moved.get(
                "tagrelay_mqtt_events_published_total"
            )
            assert moved.get("tagrelay_mqtt_publish_ack_latency_seconds_bucket", le="+Inf") >= 1

            # tagrelay status reads the same daemon.
            code, out, err = await status(config, "--json", "--sample", "1")
            assert code == 0, (err, proc.poll(), log.read_text()[-4000:])
            report = json.loads(out)
            assert report["running"] is True
            assert report["gateway_id"] == "gw-door-03"
            assert report["link"]["connected"] is True
            assert {d["name"] for d in report["drivers"]} == drivers
            assert report["zones"][ZONE] >= 1
            assert set(report["backlog"]["by_class"]) == CLASSES
            assert report["backlog"]["drain_rate_events_per_s"] is not None
            assert report["outbox_file"]["backlog"]["file"].endswith("outbox.db")
            code, out, err = await status(config, "--sample", "0")
            assert code == 0, (err, proc.poll(), log.read_text()[-4000:])
            for text in ("gw-door-03", "connected", ADAPTER, ZONE, "Backlog", "open handoff"):
                assert text in out

            # The broker goes away: the link drops and the backlog grows, by class name.
            mosquitto.stop()
            down = await scrape_until(
                url,
                lambda s: (
                    s.get("tagrelay_mqtt_connected") == 0
                    and s.total("tagrelay_outbox_events") > 0
                    and s.total("tagrelay_outbox_oldest_age_seconds") > 0
                ),
                proc,
            )
            assert down.total("tagrelay_outbox_bytes") > 0
            code, out, err = await status(config, "--json", "--sample", "0.5")
            assert code == 0, (err, proc.poll(), log.read_text()[-4000:])
            offline = json.loads(out)
            assert offline["link"]["connected"] is False
            assert offline["backlog"]["events"] > 0
            assert offline["backlog"]["drain_eta_s"] is None  # nothing drains while offline
            mosquitto.start()
            await scrape_until(
                url,
                lambda s: (
                    s.get("tagrelay_mqtt_connected") == 1
                    and s.get("tagrelay_mqtt_reconnects_total") >= 1
                ),
                proc,
            )
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(proc.wait, 30) == 0
        # No daemon: a clear message and a nonzero exit, the outbox file still read.
        code, out, err = await status(config)
        assert code == 3
        assert "no gateway answers" in err
        assert "is it running" in err
    assert "Traceback" not in log.read_text()
    assert "Traceback" not in (tmp_path / "trailer.log").read_text()
