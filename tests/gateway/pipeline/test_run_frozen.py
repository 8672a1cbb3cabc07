"""``tagrelay run`` as a real process on the frozen-door-open world: a short door-open spike
raises nothing under the frozen profile's consecutive rule, the slow warm-up is warned of and
opens one excursion, all in scenario time, as the scenario's ground truth says."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from gateway.registry import smartlabel_tag_id
from simulator.world import SmartLabelTag, load_scenario
from tests.fixtures.mosquitto import Broker
from tests.gateway.pipeline.test_run import (
    START_TIMEOUT_S,
    alarms,
    assign_in_config,
    gateway_process,
    simulation,
)
from tests.gateway.uplink.helpers import subscribe

#: 3,000 scenario seconds in 40 real ones; the label reports every 30 s (0.4 s real).
SPEED = 75.0


@pytest.mark.slow
@pytest.mark.timeout(180)
async def test_frozen_load_spike_raises_nothing_and_the_warm_up_alarms(
    mosquitto: Broker, tmp_path: Path
) -> None:
    scenario = load_scenario("frozen-door-open")
    truth = scenario.ground_truth
    (spike,) = truth.spikes
    (excursion,) = truth.excursions
    (warning,) = truth.warnings
    item = next(i for i in scenario.items if i.id == excursion.item)
    label = next(t for t in item.tags if isinstance(t, SmartLabelTag))
    tag = smartlabel_tag_id(label.label_id)
    gateway = scenario.doors[0].gateway.id
    async with (
        subscribe(mosquitto, f"tagrelay/v1/{gateway}/#") as sub,
        simulation(tmp_path, mosquitto, "frozen-door-open", "--speed", str(SPEED)) as (where, _),
    ):
        config = Path(where["gateway_configs"][gateway])
        assign_in_config(config, {tag: "frozen"})
        with gateway_process(config, tmp_path / f"{gateway}.log") as proc:
            await sub.wait_until(
                lambda m: any(x.topic.endswith("/status") for x in m), timeout_s=START_TIMEOUT_S
            )

            def opened(_: object) -> bool:
                return any(
                    e["kind"] == "condition.excursion" and e["phase"] == "open"
                    for e in sub.events()
                )

            await sub.wait_until(opened, timeout_s=120)
            assert proc.poll() is None, (tmp_path / f"{gateway}.log").read_text()
    start = datetime.fromisoformat(where["start"])

    def at(e: dict[str, Any], field: str = "time") -> float:
        return (datetime.fromisoformat(e[field]) - start).total_seconds()

    readings = sorted(
        at(e)
        for e in sub.events()
        if e["kind"] == "telemetry.reading" and e["source"]["device"] == tag
    )
    # The gateway heard the label before the spike: otherwise this test proves nothing.
    assert readings
    assert readings[0] < spike.start_s, readings[:3]
    period_s = 30
    found = alarms(sub.events())
    excursions = [e for e in found if e["kind"] == "condition.excursion"]
    # One excursion, of the consecutive 15-minute rule, starting at the warm-up's crossing; the
    # spike (45 s beyond -15 °C) opened nothing, and nothing closed.
    assert [(e["phase"], e["rule"]["type"], e["rule"]["duration_s"]) for e in excursions] == [
        ("open", "consecutive", 900.0)
    ]
    (open_,) = excursions
    assert open_["limit"] == {
        "quantity": "temperature_c",
        "bound": "high",
        "value": -15.0,
        "beyond_at_threshold": False,
    }
    # Noise (0.1 °C on 0.5 °C/min) moves the crossing by a few seconds; within one interval.
    assert abs(at(open_, "start") - excursion.start_s) <= period_s, at(open_, "start")
    assert 0 <= at(open_) - (at(open_, "start") + 900) <= period_s, at(open_)
    assert open_["mkt_c"] is not None
    assert -20.0 < open_["mkt_c"] < -10.0
    # One warning, for the warm-up, in time; none for the spike.
    warnings = [e for e in found if e["kind"] == "condition.warning"]
    assert [(e["phase"], e["limit"]["bound"]) for e in warnings] == [("raised", "high")], [
        (at(e), e["phase"], e["value"], e["slope_per_h"]) for e in warnings
    ]
    assert spike.end_s < at(warnings[0]) <= warning.by_s, at(warnings[0])
    # Nothing else: no shock alarm, sensor fault or low battery, and the label never fell
    # silent (its 30 s interval was learned; the floor is 5 min).
    assert {e["kind"] for e in found} == {"condition.excursion", "condition.warning"}
    statuses = [e for e in sub.events() if e["kind"] == "device.status"]
    assert [e for e in statuses if e["state"] != "ok"] == []
    print(
        f"frozen e2e: warning lead {excursion.start_s - at(warnings[0]):.0f} s; "
        f"start {at(open_, 'start') - excursion.start_s:+.1f} s; "
        f"open reported {at(open_) - at(open_, 'start') - 900:+.1f} s after the rule was met"
    )
