"""The EPCIS output profile in the pipeline: beside (or instead of) each native event of a
mapped kind, its GS1 EPCIS 2.0 document as an outbox event of its own.

``[epcis] output`` (docs/epcis.md) says what goes out for the kinds in ``[epcis] kinds``:
``native`` (nothing is rendered), ``both`` (the native event on its topic and the EPCISDocument
on ``.../events/epcis/document``) or ``epcis`` (the document only). The document is committed in
the same transaction as the native event; its id derives from the native event's id, so a
re-derived or re-sent fact gives the same document id and the outbox keeps one.

In ``epcis`` output a native event is dropped only when its document is committed with it: an
event with nothing to state in EPCIS (no GS1 key, a render error) or whose document waits for the
clock (below) keeps its native form, so that nothing is lost.

Events stamped while the clock is unsynced are not rendered at once: an EPCIS ``eventTime`` must
be right. They wait here (at most :data:`PENDING_MAX`) until the time keeper can correct them
(the same correction the uplink applies to native events at send time), then their documents
are committed with the corrected time. One that cannot be corrected in this boot (the daemon
stops first) is counted as ``unsynced_lost``: its native event still carries ``clock_ref``. What
is skipped is counted by reason.
"""

from __future__ import annotations

import collections
import json
import logging
from collections.abc import Callable, Iterable
from typing import Final

from drivers import BurstLog
from foundation.clock import Clock
from gateway.epcis import Rendering, SkipReason, document, render
from gateway.events import EventError, make_event_id, parse_event
from gateway.outbox import OutboxEvent
from gateway.pipeline.config import EpcisConfig, EpcisOutput

__all__ = ["EPCIS_KIND", "PENDING_MAX", "EpcisProfile"]

_log = logging.getLogger(__name__)

#: The outbox kind (and so the topic ``.../events/epcis/document``) of the rendered documents.
EPCIS_KIND: Final = "epcis.document"
#: Unsynced events kept for rendering once the clock is trusted: hours of a busy door's custody
#: and condition events (a few hundred bytes each). The oldest go first beyond it, counted.
PENDING_MAX: Final = 10_000


class EpcisProfile:
    """Adds the EPCIS document of each mapped event to a batch of outbox events.

    ``correct`` is the time keeper's :meth:`~gateway.timekeeping.TimeKeeper.correct_payload`:
    it returns an unsynced event's payload unchanged until a trusted source can correct it.
    """

    def __init__(
        self,
        gateway_id: str,
        config: EpcisConfig,
        clock: Clock,
        correct: Callable[[bytes], bytes] | None = None,
    ) -> None:
        self._gateway_id = gateway_id
        self._config = config
        self._clock = clock
        self._correct = correct
        self._kinds = frozenset(config.kinds)
        self._only = config.mode is EpcisOutput.EPCIS
        #: Unsynced native rows waiting for a trusted clock, oldest first.
        self._pending: collections.deque[OutboxEvent] = collections.deque()
        self.rendered = 0
        #: Native events not published natively because their document went instead.
        self.replaced = 0
        self.skipped: collections.Counter[str] = collections.Counter()
        self.errors = 0
        self._error_log = BurstLog(_log, "epcis", "event not rendered", clock)

    @property
    def pending(self) -> int:
        """Unsynced events waiting for a trusted clock to be rendered."""
        return len(self._pending)

    def extend(self, events: Iterable[OutboxEvent]) -> list[OutboxEvent]:
        """``events`` followed by the EPCIS documents of those of a mapped kind (the native
        rows of those replaced by their document left out, in ``epcis`` output). Pending
        unsynced events are not flushed here (a label frame's batch may be refused): the
        pipeline's tick submits :meth:`corrected`."""
        out: list[OutboxEvent] = []
        extra: list[OutboxEvent] = []
        for row in events:
            doc = self._document(row, row.payload) if row.kind in self._kinds else None
            if doc is None or not self._only:
                out.append(row)
            else:
                self.replaced += 1
            if doc is not None:
                extra.append(doc)
        return out + extra

    def corrected(self) -> list[OutboxEvent]:
        """The documents of pending unsynced events, once the clock can correct them.

        Cheap while the clock is untrusted: only the oldest is tried. Once it is corrected all
        are; one that still cannot be (stamped in another boot) never will be, and is counted
        as ``unsynced_lost``."""
        if not self._pending or self._correct is None:
            return []
        first = self._pending[0]
        fixed = self._correct(first.payload)
        if fixed is first.payload:
            return []
        docs: list[OutboxEvent] = []
        for row in self._pending:
            payload = fixed if row is first else self._correct(row.payload)
            if payload is row.payload:
                self.skipped["unsynced_lost"] += 1
                continue
            doc = self._document(row, payload)
            if doc is not None:
                docs.append(doc)
        self._pending.clear()
        return docs

    def close(self) -> int:
        """At shutdown: the pending events that will never be rendered (counted)."""
        lost = len(self._pending)
        if lost:
            self.skipped["unsynced_lost"] += lost
            _log.warning(
                "%d unsynced events not rendered as EPCIS: the clock was never trusted", lost
            )
        self._pending.clear()
        _log.info(
            "EPCIS: %d documents, %d native events replaced, %d errors, not rendered: %s",
            self.rendered,
            self.replaced,
            self.errors,
            dict(sorted(self.skipped.items())) or "none",
        )
        return lost

    def _document(self, row: OutboxEvent, payload: bytes) -> OutboxEvent | None:
        try:
            rendering: Rendering = render(
                parse_event(payload),
                read_point=self._config.read_point,
                biz_location=self._config.biz_location,
                vehicle=self._config.vehicle,
            )
        except (EventError, ValueError) as exc:
            self.errors += 1
            self._error_log.reject(f"{row.kind}: {exc}"[:200], {"errors": self.errors})
            return None
        for skip in rendering.skipped:
            if skip.reason is SkipReason.UNSYNCED_TIME and self._correct is not None:
                self._defer(row)
                continue
            self.skipped[str(skip.reason)] += 1
        if not rendering.events:
            return None
        self.rendered += 1
        doc = document(rendering.events, created=self._clock.now())
        return OutboxEvent(
            event_id=make_event_id(EPCIS_KIND, self._gateway_id, row.event_id),
            event_class=row.event_class,
            kind=EPCIS_KIND,
            payload=json.dumps(doc, separators=(",", ":")).encode(),
            source=row.source,
        )

    def _defer(self, row: OutboxEvent) -> None:
        if len(self._pending) >= PENDING_MAX:
            self._pending.popleft()
            self.skipped["unsynced_overflow"] += 1
        self._pending.append(row)
