"""Custody results out as events: handoff confirmations and reports, departures, deliveries.

The :class:`~gateway.custody.CustodyEngine` is pure and speaks monotonic seconds; the
:class:`CustodyBridge` turns each of its results into the event of its kind with wall-clock
times from the clock, the deterministic id of the fact (session and item; route, stop and
parcel), the gateway's position, and the asset / tag of the evidence. Results the event model
refuses are counted and logged once per burst, never raised into a stage.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Final

from drivers import BurstLog
from foundation.clock import Clock
from gateway.custody import (
    CustodyEngine,
    CustodyResult,
    DeliveryAlert,
    DeliveryEvidence,
    HandoffReport,
    ItemConfirmed,
    ItemEvidence,
    RouteDeparture,
)
from gateway.events import Event, EventSource
from gateway.events import custody as ev
from gateway.pipeline.factory import EventFactory

__all__ = ["CustodyBridge"]

_log = logging.getLogger(__name__)

#: A party given as 13 digits is a GLN; anything else is a name.
_GLN: Final = re.compile(r"^\d{13}$")


class CustodyBridge:
    """Turns custody results into events; counts the ones it could not."""

    def __init__(self, engine: CustodyEngine, factory: EventFactory, clock: Clock) -> None:
        self.engine = engine
        self._factory = factory
        self._confirmed: dict[str, int] = {}
        self._error_log = BurstLog(_log, "custody", "result not turned into an event", clock)
        self.errors = 0
        #: Set when the engine's state changed in a way a restart must not forget.
        self.dirty = False

    def _at(self, monotonic: float) -> datetime:
        return self._factory.stamp(monotonic).time

    def _evidence(self, e: ItemEvidence) -> ev.ItemEvidence:
        return ev.ItemEvidence(
            item=e.item,
            tag=e.tag,
            zone=e.zone,
            first_seen=self._at(e.first_seen_s),
            last_seen=self._at(e.last_seen_s),
            sightings=e.sightings,
            rssi_max_dbm=float(e.max_rssi_dbm),
            rssi_mean_dbm=e.mean_rssi_dbm,
            dwell_s=max(0.0, e.last_seen_s - e.first_seen_s),
        )

    @staticmethod
    def _party(text: str) -> ev.Party:
        return ev.Party(gln=text) if _GLN.match(text) else ev.Party(name=text)

    def events(self, results: Sequence[CustodyResult]) -> list[Event]:
        out: list[Event] = []
        for result in results:
            self.dirty = True
            try:
                out.append(self._event(result))
            except Exception as exc:  # a result the model refuses: counted, never raised
                self.errors += 1
                self._error_log.reject(repr(exc)[:200], {"errors": self.errors})
        return out

    def _envelope(self, device: str, zone: str | None, monotonic: float) -> dict[str, object]:
        stamp = self._factory.stamp(monotonic)
        return self._factory.envelope(stamp, EventSource(device=device, zone=zone), monotonic)

    def _event(self, r: CustodyResult) -> Event:
        gw = self._factory.gateway_id
        if isinstance(r, ItemConfirmed):
            count = self._confirmed[r.session_id] = self._confirmed.get(r.session_id, 0) + 1
            return ev.HandoffItem.model_validate(
                {
                    "event_id": ev.HandoffItem.make_id(gw, session_id=r.session_id, item=r.item),
                    "session_id": r.session_id,
                    "door": r.door,
                    "item": r.item,
                    "status": ev.HandoffItemStatus.CONFIRMED,
                    "evidence": self._evidence(r.evidence),
                    "confirmed_count": count,
                    "expected_count": r.expected_count,
                    **self._envelope(r.evidence.tag, r.door, r.at_s),
                }
            )
        if isinstance(r, HandoffReport):
            self._confirmed.pop(r.session_id, None)
            return ev.HandoffReport.model_validate(
                {
                    "event_id": ev.HandoffReport.make_id(gw, session_id=r.session_id),
                    "session_id": r.session_id,
                    "door": r.door,
                    "from_party": self._party(r.from_party),
                    "to_party": self._party(r.to_party),
                    "documents": [{"type": t.lower(), "id": i} for t, i in r.documents],
                    "window": {
                        "start": self._at(r.window_start_s),
                        "end": self._at(r.window_end_s),
                    },
                    "opened_at": self._at(r.opened_at_s),
                    "closed_at": self._at(r.closed_at_s),
                    "close_reason": r.close_reason,
                    "expected": r.expected,
                    "confirmed": r.confirmed,
                    "missing": r.missing,
                    "unexpected": r.unexpected,
                    "evidence": [self._evidence(e) for e in r.evidence],
                    **self._envelope(gw, r.door, r.reported_at_s),
                }
            )
        if isinstance(r, RouteDeparture):
            return ev.RouteDeparture.model_validate(
                {
                    "event_id": ev.RouteDeparture.make_id(gw, route_id=r.route_id),
                    "route_id": r.route_id,
                    "expected_count": len(r.on_board) + len(r.missing) - len(r.misloaded),
                    "on_board_count": len(r.on_board),
                    "missing": r.missing,
                    "misloaded": r.misloaded,
                    "on_board": r.on_board,
                    **self._envelope(gw, None, r.at_s),
                }
            )
        if isinstance(r, DeliveryEvidence):
            return ev.DeliveryEvidence.model_validate(
                {
                    "event_id": ev.DeliveryEvidence.make_id(
                        gw, route_id=r.route_id, stop_id=r.stop_id, item=r.parcel
                    ),
                    "route_id": r.route_id,
                    "stop_id": r.stop_id,
                    "item": r.parcel,
                    "left_at": self._at(r.at_s),
                    "distance_to_stop_m": r.distance_m,
                    "evidence": self._evidence(r.evidence),
                    **self._envelope(r.evidence.tag, r.evidence.zone, r.at_s),
                }
            )
        if isinstance(r, DeliveryAlert):
            alert = ev.AlertType(str(r.alert))
            return ev.DeliveryAlert.model_validate(
                {
                    "event_id": ev.DeliveryAlert.make_id(
                        gw,
                        alert=alert,
                        route_id=r.route_id,
                        item=r.parcel,
                        stop_id=r.stop_id,
                    ),
                    "alert": alert,
                    "route_id": r.route_id,
                    "item": r.parcel,
                    "intended_stop_id": r.expected_stop,
                    "actual_stop_id": r.stop_id,
                    "evidence": None if r.evidence is None else self._evidence(r.evidence),
                    **self._envelope(
                        r.evidence.tag if r.evidence is not None else r.parcel,
                        None if r.evidence is None else r.evidence.zone,
                        r.at_s,
                    ),
                }
            )
        raise TypeError(f"unknown custody result {type(r).__name__}")
