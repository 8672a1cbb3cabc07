"""The EPCIS output profile in the pipeline: beside each native event of a mapped kind, its
GS1 EPCIS 2.0 document as an outbox event of its own.

With ``[epcis] enabled = true`` every presence, custody and condition event the gateway commits
is also rendered (``gateway.epcis``, docs/epcis.md) into an EPCISDocument, committed in the
same transaction as the native event and published on ``.../events/epcis/document``. Its id
derives from the native event's id, so a re-derived or re-sent fact gives the same document id
and the outbox keeps one. Events stamped while the clock is unsynced are not rendered (EPCIS
times must be right); what is skipped is counted by reason.
"""

from __future__ import annotations

import collections
import json
import logging
from collections.abc import Iterable
from typing import Final

from drivers import BurstLog
from drivers.clock import Clock
from gateway.epcis import document, render
from gateway.events import EventError, make_event_id, parse_event
from gateway.outbox import OutboxEvent
from gateway.pipeline.config import EpcisConfig

__all__ = ["EPCIS_KIND", "EpcisProfile"]

_log = logging.getLogger(__name__)

#: The outbox kind (and so the topic ``.../events/epcis/document``) of the rendered documents.
EPCIS_KIND: Final = "epcis.document"


class EpcisProfile:
    """Adds the EPCIS document of each mapped event to a batch of outbox events."""

    def __init__(self, gateway_id: str, config: EpcisConfig, clock: Clock) -> None:
        self._gateway_id = gateway_id
        self._config = config
        self._clock = clock
        self._kinds = frozenset(config.kinds)
        self.rendered = 0
        self.skipped: collections.Counter[str] = collections.Counter()
        self.errors = 0
        self._error_log = BurstLog(_log, "epcis", "event not rendered", clock)

    def extend(self, events: Iterable[OutboxEvent]) -> list[OutboxEvent]:
        """``events`` followed by the EPCIS documents of those of a mapped kind."""
        out = list(events)
        extra: list[OutboxEvent] = []
        for row in out:
            if row.kind not in self._kinds:
                continue
            try:
                rendering = render(
                    parse_event(row.payload),
                    read_point=self._config.read_point,
                    biz_location=self._config.biz_location,
                    vehicle=self._config.vehicle,
                )
            except (EventError, ValueError) as exc:
                self.errors += 1
                self._error_log.reject(f"{row.kind}: {exc}"[:200], {"errors": self.errors})
                continue
            for skip in rendering.skipped:
                self.skipped[str(skip.reason)] += 1
            if not rendering.events:
                continue
            doc = document(rendering.events, created=self._clock.now())
            self.rendered += 1
            extra.append(
                OutboxEvent(
                    event_id=make_event_id(EPCIS_KIND, self._gateway_id, row.event_id),
                    event_class=row.event_class,
                    kind=EPCIS_KIND,
                    payload=json.dumps(doc, separators=(",", ":")).encode(),
                    source=row.source,
                )
            )
        return out + extra
