"""One realistic event of every kind (and of each phase or variant that changes the shape),
built the way the domain packages will build them: ids from the kinds' ``make_id``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gateway.events import (
    AlertType,
    BindingAction,
    Bound,
    BusinessDocument,
    ClockRef,
    ConditionExcursion,
    ConditionShock,
    ConditionWarning,
    DeliveryAlert,
    DeliveryEvidence,
    DeviceState,
    DeviceStatus,
    Event,
    EventSource,
    ExcursionPhase,
    ExitReason,
    HandoffCloseReason,
    HandoffItem,
    HandoffItemStatus,
    HandoffReport,
    ItemEvidence,
    LabelFrame,
    Limit,
    Observation,
    Party,
    Position,
    PresenceEnter,
    PresenceExit,
    Quantities,
    Quantity,
    RouteDeparture,
    Rule,
    RuleType,
    TagBindingChange,
    TelemetryPosition,
    TelemetryReading,
    TimeSource,
    TimeWindow,
    WarningPhase,
    excursion_key,
)
from protocols.gps import FixQuality

GW = "dock-3"
VAN = "van-0042"
T0 = datetime(2026, 11, 24, 6, 0, tzinfo=UTC)
DOCK_POS = Position(lat=52.3702, lon=4.8952, alt_m=2.0, accuracy_m=3.5)
VAN_POS = Position(lat=52.3801, lon=4.9003, accuracy_m=4.0)
TAG = "ibeacon:f7826da6-4fa2-4e98-8024-bc5b71e0893e:100:7"
LABEL = "smartlabel:0011223344556677"
ASSET = "https://id.gs1.org/00/340123450000000017"
BOOT = "6f0c3a52-97c4-4b1e-9b9a-0d4e8a3c2f11"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def presence_enter() -> PresenceEnter:
    first = at(0)
    return PresenceEnter(
        event_id=PresenceEnter.make_id(GW, tag=TAG, zone="door-3", first_seen=first),
        gateway_id=GW,
        time=at(4.2),
        time_source=TimeSource.NTP,
        position=DOCK_POS,
        source=EventSource(device=TAG, via="hci0", zone="door-3"),
        asset=ASSET,
        zone="door-3",
        tag=TAG,
        first_seen=first,
        last_seen=at(4.0),
        sightings=5,
        rssi_max_dbm=-61.0,
        rssi_mean_dbm=-66.4,
        dwell_s=4.0,
    )


def presence_exit() -> PresenceExit:
    first = at(0)
    return PresenceExit(
        event_id=PresenceExit.make_id(GW, tag=TAG, zone="door-3", first_seen=first),
        gateway_id=GW,
        time=at(312.0),
        time_source=TimeSource.NTP,
        position=DOCK_POS,
        source=EventSource(device=TAG, via="hci0", zone="door-3"),
        asset=ASSET,
        zone="door-3",
        tag=TAG,
        first_seen=first,
        last_seen=at(305.5),
        sightings=288,
        rssi_max_dbm=-55.0,
        rssi_mean_dbm=-67.9,
        dwell_s=305.5,
        reason=ExitReason.TIMEOUT,
        enter_event_id=PresenceEnter.make_id(GW, tag=TAG, zone="door-3", first_seen=first),
    )


def _evidence(item: str, zone: str, seconds: float = 60.0) -> ItemEvidence:
    return ItemEvidence(
        item=item,
        tag=TAG if item == ASSET else None,
        zone=zone,
        first_seen=at(10),
        last_seen=at(10 + seconds),
        sightings=int(seconds),
        rssi_max_dbm=-58.0,
        rssi_mean_dbm=-64.2,
        dwell_s=seconds,
    )


SESSION = "HS-2026-11-24-0003"
OTHER = "https://id.gs1.org/00/340123450000000024"
MISSING = "https://id.gs1.org/00/340123450000000031"
STRAY = "ruuvi:c3:1d:4a:77:90:02"


def handoff_item() -> HandoffItem:
    return HandoffItem(
        event_id=HandoffItem.make_id(GW, session_id=SESSION, item=ASSET),
        gateway_id=GW,
        time=at(75),
        time_source=TimeSource.GPS,
        position=DOCK_POS,
        source=EventSource(device=TAG, via="hci0", zone="dock-3"),
        asset=ASSET,
        session_id=SESSION,
        door="door-3",
        item=ASSET,
        status=HandoffItemStatus.CONFIRMED,
        evidence=_evidence(ASSET, "dock-3"),
        confirmed_count=17,
        expected_count=40,
    )


def handoff_report() -> HandoffReport:
    return HandoffReport(
        event_id=HandoffReport.make_id(GW, session_id=SESSION),
        gateway_id=GW,
        time=at(1800),
        time_source=TimeSource.GPS,
        position=DOCK_POS,
        source=EventSource(device=GW, zone="door-3"),
        session_id=SESSION,
        door="door-3",
        from_party=Party(gln="4012345000009", name="Carrier A"),
        to_party=Party(name="Cross-dock Hub 1"),
        documents=(
            BusinessDocument(type="desadv", id="DESADV-778812"),
            BusinessDocument(type="bol", id="BOL-55120"),
        ),
        window=TimeWindow(start=at(0), end=at(3600)),
        opened_at=at(0),
        closed_at=at(1800),
        close_reason=HandoffCloseReason.VEHICLE_DEPARTED,
        expected=(ASSET, OTHER, MISSING),
        confirmed=(ASSET, OTHER),
        missing=(MISSING,),
        unexpected=(STRAY,),
        evidence=(
            _evidence(ASSET, "dock-3"),
            _evidence(OTHER, "dock-3", 45.0),
            _evidence(MISSING, "trailer-3", 1700.0),
            _evidence(STRAY, "dock-3", 30.0),
        ),
    )


ROUTE = "R-2026-11-24-17"


def route_departure() -> RouteDeparture:
    return RouteDeparture(
        event_id=RouteDeparture.make_id(VAN, route_id=ROUTE, trip=1),
        gateway_id=VAN,
        time=at(600),
        time_source=TimeSource.GPS,
        position=VAN_POS,
        source=EventSource(device=VAN, via="gps", zone="cargo"),
        route_id=ROUTE,
        trip=1,
        depot="depot-ams-1",
        expected_count=3,
        on_board_count=3,
        missing=(MISSING,),
        misloaded=(STRAY,),
        evidence=(_evidence(STRAY, "cargo", 540.0),),
        on_board=(ASSET, OTHER, STRAY),
    )


def delivery_evidence() -> DeliveryEvidence:
    return DeliveryEvidence(
        event_id=DeliveryEvidence.make_id(VAN, route_id=ROUTE, stop_id="stop-07", item=ASSET),
        gateway_id=VAN,
        time=at(2400),
        time_source=TimeSource.GPS,
        position=VAN_POS,
        source=EventSource(device=TAG, via="hci0", zone="cargo"),
        asset=ASSET,
        route_id=ROUTE,
        stop_id="stop-07",
        item=ASSET,
        left_at=at(2390),
        distance_to_stop_m=18.5,
        evidence=_evidence(ASSET, "cargo", 2300.0),
    )


def delivery_alert() -> DeliveryAlert:
    return DeliveryAlert(
        event_id=DeliveryAlert.make_id(
            VAN, alert=AlertType.MISDELIVERY, route_id=ROUTE, item=OTHER, stop_id="stop-06"
        ),
        gateway_id=VAN,
        time=at(2100),
        time_source=TimeSource.GPS,
        position=VAN_POS,
        source=EventSource(device=TAG, via="hci0", zone="cargo"),
        asset=OTHER,
        alert=AlertType.MISDELIVERY,
        route_id=ROUTE,
        item=OTHER,
        intended_stop_id="stop-09",
        actual_stop_id="stop-06",
        distance_to_intended_m=412.0,
        evidence=_evidence(OTHER, "cargo", 2000.0),
    )


PROFILE = "pharma-2-8"
HIGH = Limit(quantity=Quantity.TEMPERATURE_C, bound=Bound.HIGH, value=8.0)
CONSECUTIVE = Rule(type=RuleType.CONSECUTIVE, duration_s=300.0)
EXCURSION = excursion_key(
    GW, subject=ASSET, profile=PROFILE, limit=HIGH, rule=CONSECUTIVE, start=at(780)
)


def condition_excursion(phase: ExcursionPhase = ExcursionPhase.CLOSE) -> ConditionExcursion:
    revision = {ExcursionPhase.OPEN: 0, ExcursionPhase.UPDATE: 1, ExcursionPhase.CLOSE: 2}[phase]
    closed = phase is ExcursionPhase.CLOSE
    return ConditionExcursion(
        event_id=ConditionExcursion.make_id(
            GW, excursion_id=EXCURSION, phase=phase, revision=revision
        ),
        gateway_id=GW,
        time=at(1320 if closed else 1080),
        time_source=TimeSource.NTP,
        position=DOCK_POS,
        source=EventSource(device=LABEL, via="/dev/ttyUSB0"),
        asset=ASSET,
        excursion_id=EXCURSION,
        phase=phase,
        revision=revision,
        profile=PROFILE,
        limit=HIGH,
        rule=CONSECUTIVE,
        start=at(780),
        end=at(1320) if closed else None,
        time_beyond_s=540.0 if closed else 300.0,
        min=8.0,
        max=11.6,
        mean=9.8,
        readings=19 if closed else 11,
        mkt_c=6.1,
        period_start=at(0),
        close_reason="returned" if closed else None,
    )


def condition_warning() -> ConditionWarning:
    return ConditionWarning(
        event_id=ConditionWarning.make_id(
            GW,
            subject=ASSET,
            profile=PROFILE,
            limit=HIGH,
            approach_start=at(420),
            phase=WarningPhase.RAISED,
        ),
        gateway_id=GW,
        time=at(480),
        time_source=TimeSource.NTP,
        position=DOCK_POS,
        source=EventSource(device=LABEL, via="/dev/ttyUSB0"),
        asset=ASSET,
        phase=WarningPhase.RAISED,
        profile=PROFILE,
        limit=HIGH,
        approach_start=at(420),
        predicted_crossing=at(790),
        horizon_s=900.0,
        value=6.9,
        slope_per_h=12.8,
    )


def condition_shock() -> ConditionShock:
    return ConditionShock(
        event_id=ConditionShock.make_id(GW, LabelFrame(LABEL, seq=4711)),
        gateway_id=GW,
        time=at(955),
        time_source=TimeSource.NTP,
        position=DOCK_POS,
        source=EventSource(device=LABEL, via="/dev/ttyUSB0"),
        asset=ASSET,
        profile="fragile-electronics",
        peak_x_g=2.1,
        peak_y_g=-14.8,
        peak_z_g=6.3,
        peak_g=16.2,
        duration_ms=12.0,
        threshold_g=4.0,
        limit_g=10.0,
        alarm=True,
        count=1,
        running_peak_g=16.2,
    )


def telemetry_reading() -> TelemetryReading:
    return TelemetryReading(
        event_id=TelemetryReading.make_id(GW, LabelFrame(LABEL, seq=4702, index=3)),
        gateway_id=GW,
        time=at(600),
        time_source=TimeSource.NTP,
        source=EventSource(device=LABEL, via="/dev/ttyUSB0"),
        asset=ASSET,
        values=Quantities(temperature_c=5.42, humidity_pct=61.0),
    )


def telemetry_reading_ruuvi_unsynced() -> TelemetryReading:
    observed = ClockRef(boot_id=BOOT, monotonic_s=8123.25)
    device = "ruuvi:c3:1d:4a:77:90:02"
    return TelemetryReading(
        event_id=TelemetryReading.make_id(VAN, Observation(device, observed)),
        gateway_id=VAN,
        time=datetime(1970, 1, 1, 2, 15, 23, 250000, tzinfo=UTC),
        time_source=TimeSource.UNSYNCED,
        clock_ref=observed,
        source=EventSource(device=device, via="hci0", zone="cargo"),
        values=Quantities(
            temperature_c=3.1,
            humidity_pct=71.5,
            pressure_pa=100_912,
            acc_x_g=0.004,
            acc_y_g=-0.012,
            acc_z_g=1.003,
            battery_mv=2977,
            movement_count=42,
        ),
    )


def telemetry_position() -> TelemetryPosition:
    observed = ClockRef(boot_id=BOOT, monotonic_s=9001.0)
    return TelemetryPosition(
        event_id=TelemetryPosition.make_id(VAN, Observation(VAN, observed)),
        gateway_id=VAN,
        time=at(1500),
        time_source=TimeSource.GPS,
        time_corrected=True,
        position=VAN_POS,
        source=EventSource(device=VAN, via="gps"),
        lat=VAN_POS.lat,
        lon=VAN_POS.lon,
        alt_m=4.2,
        speed_mps=8.3,
        heading_deg=271.5,
        satellites=11,
        hdop=0.9,
        fix=FixQuality.FIX_3D,
    )


def device_status() -> DeviceStatus:
    origin = LabelFrame(LABEL, seq=4703)
    return DeviceStatus(
        event_id=DeviceStatus.make_id(GW, origin, DeviceState.SENSOR_FAULT),
        gateway_id=GW,
        time=at(660),
        time_source=TimeSource.NTP,
        source=EventSource(device=LABEL, via="/dev/ttyUSB0"),
        asset=ASSET,
        state=DeviceState.SENSOR_FAULT,
        battery_mv=2890,
        firmware="1.4.2",
        flags=("sensor_fault",),
        quantity=Quantity.TEMPERATURE_C,
        value=300.0,
        detail="temperature 300.0 °C is outside the sensor's range (-40 .. 85 °C)",
    )


def device_status_silent() -> DeviceStatus:
    last = ClockRef(boot_id=BOOT, monotonic_s=7000.0)
    device = "eddystone:edd1ebeac04e5defa017:0badc0ffee01"
    return DeviceStatus(
        event_id=DeviceStatus.make_id(VAN, Observation(device, last), DeviceState.SILENT),
        gateway_id=VAN,
        time=at(7200),
        time_source=TimeSource.GPS,
        position=VAN_POS,
        source=EventSource(device=device, via="hci0", zone="cargo"),
        state=DeviceState.SILENT,
        battery_mv=2950,
        last_seen=at(6300),
        silent_for_s=900.0,
        detail="no advert for 900 s (learned interval 10 s, floor 300 s)",
    )


def tag_binding() -> TagBindingChange:
    return TagBindingChange(
        event_id=TagBindingChange.make_id(GW, command_id="c-17", tag=TAG),
        gateway_id=GW,
        time=at(-120),
        time_source=TimeSource.NTP,
        source=EventSource(device=TAG),
        asset=ASSET,
        action=BindingAction.BIND,
        tag=TAG,
        command_id="c-17",
    )


def tag_unbinding() -> TagBindingChange:
    return TagBindingChange(
        event_id=TagBindingChange.make_id(GW, command_id="c-18", tag=TAG),
        gateway_id=GW,
        time=at(3000),
        time_source=TimeSource.NTP,
        source=EventSource(device=TAG),
        action=BindingAction.UNBIND,
        tag=TAG,
        previous_asset=ASSET,
        command_id="c-18",
    )


#: Every sample: every kind at least once, with the variants that change which fields are set.
ALL_SAMPLES: tuple[Event, ...] = (
    presence_enter(),
    presence_exit(),
    handoff_item(),
    handoff_report(),
    route_departure(),
    delivery_evidence(),
    delivery_alert(),
    condition_excursion(ExcursionPhase.OPEN),
    condition_excursion(ExcursionPhase.UPDATE),
    condition_excursion(ExcursionPhase.CLOSE),
    condition_warning(),
    condition_shock(),
    telemetry_reading(),
    telemetry_reading_ruuvi_unsynced(),
    telemetry_position(),
    device_status(),
    device_status_silent(),
    tag_binding(),
    tag_unbinding(),
)
