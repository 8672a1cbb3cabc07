"""The golden EPCIS documents: one per mapping, rendered from the sample events, kept in
``tests/fixtures/epcis/golden/`` and reviewed by reading them against the CBV (docs/epcis.md).

Regenerate after a deliberate mapping change with ``python -m tests.gateway.epcis.golden``
and review the diff: every changed eventID is a changed fact for consumers."""

from __future__ import annotations

import json
from typing import Any, Final

from gateway.epcis import document, render
from gateway.events import Event, ExcursionPhase
from tests.gateway.epcis.checks import CREATED, GOLDEN_DIR
from tests.gateway.events import samples

DOOR: Final = "https://id.gs1.org/414/4012345000009/254/door-3"
SITE: Final = "https://id.gs1.org/414/4012345000009"
VAN: Final = "https://id.gs1.org/8004/4012345VAN-0042"
AT_DOOR: Final = {"read_point": DOOR, "biz_location": SITE}

#: name -> (native event, render settings)
CASES: Final[dict[str, tuple[Event, dict[str, str]]]] = {
    "presence.enter": (samples.presence_enter(), AT_DOOR),
    "presence.exit": (samples.presence_exit(), AT_DOOR),
    "handoff.item": (samples.handoff_item(), AT_DOOR),
    "handoff.report": (samples.handoff_report(), AT_DOOR),
    "delivery.evidence": (samples.delivery_evidence(), {}),
    "delivery.evidence.vehicle": (samples.delivery_evidence(), {"vehicle": VAN}),
    "delivery.alert.misdelivery": (samples.delivery_alert(), {}),
    "route.departure": (samples.route_departure(), {}),
    "route.departure.vehicle": (samples.route_departure(), {"vehicle": VAN}),
    "condition.excursion.open": (samples.condition_excursion(ExcursionPhase.OPEN), AT_DOOR),
    "condition.excursion.close": (samples.condition_excursion(ExcursionPhase.CLOSE), AT_DOOR),
    "condition.shock": (samples.condition_shock(), AT_DOOR),
    "telemetry.reading": (samples.telemetry_reading(), AT_DOOR),
    "tag.binding.bind": (samples.tag_binding(), AT_DOOR),
    "tag.binding.unbind": (samples.tag_unbinding(), AT_DOOR),
    "tag.binding.rebind": (
        samples.tag_binding().model_copy(update={"previous_asset": samples.OTHER}),
        AT_DOOR,
    ),
}


def golden_document(name: str) -> dict[str, Any]:
    event, settings = CASES[name]
    return document(render(event, **settings).events, created=CREATED)


def golden_text(name: str) -> str:
    return json.dumps(golden_document(name), indent=2, ensure_ascii=False) + "\n"


def main() -> None:
    GOLDEN_DIR.mkdir(exist_ok=True)
    for name in CASES:
        (GOLDEN_DIR / f"{name}.jsonld").write_text(golden_text(name), encoding="utf-8")


if __name__ == "__main__":
    main()
