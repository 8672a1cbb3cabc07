"""Run every custody scenario over many seeds (new placements, new noise) and print how many
facts match the ground truth: ``python -m tests.gateway.custody.sweep [SEEDS [SCENARIO ...]]``.

The seed moves every parcel to a new place in its trailer, on its dock or on its doorstep and
redraws every advert's shadowing, so each seed is a new layout of the same story.
"""

from __future__ import annotations

import os
import sys

from simulator.world import load_scenario
from tests.gateway.custody.simdrive import drive, match_deliveries, match_handoffs, premature

HANDOFF = ("cross-dock", "busy-dock", "yard-return")
VEHICLE = ("delivery-route", "van-left-on-board", "van-misload-tunnel")


def main(seeds: int, names: tuple[str, ...] = HANDOFF + VEHICLE, early_s: float = 0.0) -> None:
    for name in names:
        base = load_scenario(name)
        exact = 0
        for seed in [base.seed, *range(1, seeds)]:
            scenario = base.model_copy(update={"seed": seed})
            out = drive(scenario, open_early_s=early_s)
            if name in HANDOFF:
                results = match_handoffs(scenario, out)
                early = premature(scenario, out)
                ok = all(m.exact for m in results) and not early
                detail = "; ".join(
                    f"{m.door}: {m.confirmed_ok} confirmed, {m.missing_ok} missing, "
                    f"{m.unexpected_ok} unexpected, {m.live} live"
                    + ("" if m.exact else f" DIFF {m}")
                    for m in results
                ) + (f" PREMATURE {early}" if early else "")
            else:
                d = match_deliveries(scenario, out)
                ok = d.exact
                detail = str(d)
            exact += ok
            print(f"{name} seed {seed}: {'exact' if ok else 'DIFF'} {detail}", flush=True)
        print(f"{name}: {exact} of {seeds} seeds exact", flush=True)


if __name__ == "__main__":
    # SWEEP_OPEN_EARLY_S: open every session that long before its window (the vehicle still
    # on its way to the door).
    main(
        int(sys.argv[1]) if len(sys.argv) > 1 else 10,
        tuple(sys.argv[2:]) or HANDOFF + VEHICLE,
        float(os.environ.get("SWEEP_OPEN_EARLY_S", "0")),
    )
