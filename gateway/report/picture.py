"""The run as a picture, ``report.png``, drawn from the event log alone.

Panels, each only when the log has the data for it: presence of each item per zone over
time; the temperature of each item with a profile against its profile's band, excursions
shaded; the shocks; the vehicles' GPS tracks with the route's stops and geofences and where
parcels left. Scenario seconds on the time axes. matplotlib with the Agg canvas: no display,
no global pyplot state.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Ellipse

from gateway.report.log import Record
from gateway.report.names import item_name
from gateway.report.summary import commands_of, events_of, parse_time

__all__ = ["draw_report"]

#: Figure width in inches and resolution: readable on a laptop screen, small in a repository.
WIDTH_IN: Final = 11.0
DPI: Final = 80
#: At most this many rows in the presence panel (the rest is named in its title).
MAX_PRESENCE_ROWS: Final = 60
_METRES_PER_DEG_LAT: Final = 111_320.0


def _subject(event: dict[str, Any]) -> str:
    asset = event.get("asset")
    if isinstance(asset, str):
        return item_name(asset)
    source = event.get("source")
    return str(source.get("device")) if isinstance(source, dict) else "?"


class _Time:
    def __init__(self, start: datetime | None) -> None:
        self.start = start

    def s(self, text: object) -> float | None:
        when = parse_time(text)
        if when is None or self.start is None:
            return None
        return (when - self.start).total_seconds()


def draw_report(records: Sequence[Record], summary: dict[str, Any], path: Path) -> None:
    start = parse_time(summary.get("start"))
    clock = _Time(start)
    events = list(events_of(records))
    end_s = max((t for t in (clock.s(e.get("time")) for e in events) if t is not None), default=0.0)
    panels: list[tuple[str, Any]] = []
    presence = _presence(events, clock, end_s)
    if presence:
        panels.append(("presence", presence))
    temps = _temperatures(events, records, clock, summary)
    if temps:
        panels.append(("temperature", temps))
    if summary["shocks"]:
        panels.append(("shocks", summary["shocks"]))
    tracks = _tracks(events)
    if tracks:
        panels.append(("track", (tracks, list(commands_of(records)), summary)))
    heights = {"presence": 6.0, "temperature": 3.2, "shocks": 2.2, "track": 5.0}
    total = sum(heights[k] for k, _ in panels) or 2.0
    fig = Figure(figsize=(WIDTH_IN, total), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    if not panels:
        ax = fig.add_subplot()
        ax.text(
            0.5,
            0.5,
            "nothing to draw: the log holds no presence, readings, shocks or GPS",
            ha="center",
            va="center",
        )
        ax.set_axis_off()
    else:
        axes = fig.subplots(
            len(panels), 1, height_ratios=[heights[k] for k, _ in panels], squeeze=False
        )[:, 0]
        for ax, (kind, data) in zip(axes, panels, strict=True):
            if kind == "presence":
                _draw_presence(ax, data, end_s)
            elif kind == "temperature":
                _draw_temperatures(ax, data, end_s)
            elif kind == "shocks":
                _draw_shocks(ax, data, end_s)
            else:
                _draw_track(ax, *data)
    fig.savefig(path, dpi=DPI)


# --- presence -----------------------------------------------------------------------------------


def _presence(
    events: list[dict[str, Any]], clock: _Time, end_s: float
) -> dict[str, list[tuple[str, float, float]]]:
    """Per item, its visits: (zone, from s, to s)."""
    enters: dict[str, dict[str, Any]] = {}
    exits: dict[str, dict[str, Any]] = {}
    for e in events:
        if e.get("kind") == "presence.enter":
            enters[str(e.get("event_id"))] = e
        elif e.get("kind") == "presence.exit":
            exits[str(e.get("enter_event_id"))] = e
    rows: dict[str, list[tuple[str, float, float]]] = defaultdict(list)
    for key, e in enters.items():
        first = clock.s(e.get("first_seen") or e.get("time"))
        if first is None:
            continue
        exit_ = exits.get(key)
        last = clock.s(exit_.get("last_seen") or exit_.get("time")) if exit_ else end_s
        zone = f"{e.get('zone')} ({e.get('gateway_id')})"
        rows[_subject(e)].append((zone, first, last if last is not None else end_s))
    return dict(sorted(rows.items()))


def _draw_presence(ax: Axes, rows: dict[str, list[tuple[str, float, float]]], end_s: float) -> None:
    names = list(rows)[:MAX_PRESENCE_ROWS]
    zones = sorted({z for visits in rows.values() for z, _, _ in visits})
    colours = {z: f"C{n % 10}" for n, z in enumerate(zones)}
    height = 0.8 / max(1, len(zones))
    for y, name in enumerate(names):
        for zone, a, b in rows[name]:
            k = zones.index(zone)
            ax.broken_barh(
                [(a, max(b - a, 1.0))], (y - 0.4 + k * height, height), facecolors=colours[zone]
            )
    ax.set_yticks(range(len(names)), names, fontsize=6)
    ax.set_ylim(len(names) - 0.5, -0.5)
    ax.set_xlim(0, max(end_s, 1.0))
    more = len(rows) - len(names)
    ax.set_title(
        "Presence per zone" + (f" (first {len(names)} of {len(rows)} items)" if more else "")
    )
    ax.set_xlabel("scenario time (s)")
    for zone in zones:
        ax.plot([], [], color=colours[zone], linewidth=6, label=zone)
    ax.legend(loc="upper right", fontsize=7)


# --- temperature --------------------------------------------------------------------------------


def _temperatures(
    events: list[dict[str, Any]], records: Sequence[Record], clock: _Time, summary: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    """Per item with a profile (assigned in the log, or named by an excursion): its readings,
    its profile's band and its excursions."""
    profiles: dict[str, str] = {}
    for _, name, payload in commands_of(records):
        if name == "profiles.assign" and isinstance(payload, dict):
            for subject in payload.get("subjects") or []:
                if isinstance(payload.get("profile"), str):
                    profiles[item_name(str(subject))] = str(payload["profile"])
    for x in summary["excursions"]:
        if x["quantity"] == "temperature_c" and isinstance(x["profile"], str):
            profiles.setdefault(str(x["item"]), x["profile"])
    out: dict[str, dict[str, Any]] = {}
    seen: set[str] = set()
    for e in events:
        if e.get("kind") != "telemetry.reading" or str(e.get("event_id")) in seen:
            continue
        seen.add(str(e.get("event_id")))
        subject = _subject(e)
        values = e.get("values")
        if subject not in profiles or not isinstance(values, dict):
            continue
        value, t = values.get("temperature_c"), clock.s(e.get("time"))
        if not isinstance(value, int | float) or t is None:
            continue
        entry = out.setdefault(subject, {"profile": profiles[subject], "points": {}})
        entry["points"].setdefault(str((e.get("source") or {}).get("device")), []).append(
            (t, value)
        )
    for subject, entry in out.items():
        entry["band"] = _band(entry["profile"])
        entry["excursions"] = [
            x
            for x in summary["excursions"]
            if x["item"] == subject and x["quantity"] == "temperature_c"
        ]
    return out


def _band(profile: str) -> tuple[float | None, float | None]:
    from gateway.conditions.presets import PRESETS

    preset = PRESETS.get(profile)
    if preset is None:
        return None, None
    highs = [lim.threshold for lim in preset.temperature_c if lim.direction == "above"]
    lows = [lim.threshold for lim in preset.temperature_c if lim.direction == "below"]
    return (max(lows) if lows else None, min(highs) if highs else None)


def _draw_temperatures(ax: Axes, data: dict[str, dict[str, Any]], end_s: float) -> None:
    for n, (subject, entry) in enumerate(sorted(data.items())):
        for device, points in sorted(entry["points"].items()):
            points.sort()
            ax.plot(
                [p[0] for p in points],
                [p[1] for p in points],
                marker=".",
                markersize=3,
                linewidth=1,
                color=f"C{n}",
                label=f"{subject} ({device.split(':')[0]})",
            )
        low, high = entry["band"]
        if low is not None and high is not None:
            ax.axhspan(
                low,
                high,
                color="tab:green",
                alpha=0.12,
                label=f"{entry['profile']} {low:g}..{high:g} °C",
            )
        for limit in (low, high):
            if limit is not None:
                ax.axhline(limit, color="tab:green", linewidth=0.8, linestyle="--")
        shaded: set[tuple[int, int]] = set()
        for x in entry["excursions"]:
            if x["start_s"] is None:
                continue
            stop = x["end_s"] if x["end_s"] is not None else end_s
            # Several gateways report the same excursion: one shade per distinct window.
            window = (round(x["start_s"] / 10), round(stop / 10))
            if window in shaded:
                continue
            shaded.add(window)
            ax.axvspan(
                x["start_s"],
                stop,
                color="tab:red",
                alpha=0.15,
                label=f"excursion {x['start_s']:.0f}..{stop:.0f} s "
                f"({x['gateway']}: max {x['max']}, MKT {x['mkt_c']} °C)",
            )
    ax.set_xlim(0, max(end_s, 1.0))
    ax.set_ylabel("°C")
    ax.set_xlabel("scenario time (s)")
    ax.set_title("Temperature against the profile")
    ax.legend(loc="upper left", fontsize=7)


# --- shocks --------------------------------------------------------------------------------------


def _draw_shocks(ax: Axes, shocks: list[dict[str, Any]], end_s: float) -> None:
    for s in shocks:
        if s["t_s"] is None or not isinstance(s["peak_g"], int | float):
            continue
        colour = "tab:red" if s["alarm"] else "tab:orange"
        ax.vlines(s["t_s"], 0, s["peak_g"], color=colour, linewidth=2)
        ax.plot([s["t_s"]], [s["peak_g"]], "o", color=colour)
        ax.annotate(
            f"{s['item']} {s['peak_g']:.1f} g",
            (s["t_s"], s["peak_g"]),
            textcoords="offset points",
            xytext=(4, -4),
            fontsize=8,
        )
    ax.set_xlim(0, max(end_s, 1.0))
    ax.set_ylim(
        0,
        max([float(s["peak_g"]) for s in shocks if isinstance(s["peak_g"], int | float)] + [1.0])
        * 1.25,
    )
    ax.set_ylabel("peak (g)")
    ax.set_xlabel("scenario time (s)")
    ax.set_title("Shocks")


# --- GPS track -----------------------------------------------------------------------------------


def _tracks(events: list[dict[str, Any]]) -> dict[str, list[tuple[float, float]]]:
    tracks: dict[str, list[tuple[str, float, float]]] = defaultdict(list)
    seen: set[str] = set()
    for e in events:
        if e.get("kind") != "telemetry.position" or str(e.get("event_id")) in seen:
            continue
        seen.add(str(e.get("event_id")))
        lat, lon = e.get("lat"), e.get("lon")
        if isinstance(lat, int | float) and isinstance(lon, int | float):
            tracks[str(e.get("gateway_id"))].append((str(e.get("time")), float(lon), float(lat)))
    return {gw: [(lon, lat) for _, lon, lat in sorted(points)] for gw, points in tracks.items()}


def _draw_track(
    ax: Axes,
    tracks: dict[str, list[tuple[float, float]]],
    commands: list[tuple[str, str, Any]],
    summary: dict[str, Any],
) -> None:
    lats = [lat for points in tracks.values() for _, lat in points]
    mean_lat = sum(lats) / len(lats)
    per_deg_lon = _METRES_PER_DEG_LAT * math.cos(math.radians(mean_lat))
    for n, (gw, points) in enumerate(sorted(tracks.items())):
        ax.plot(
            [p[0] for p in points],
            [p[1] for p in points],
            color=f"C{n}",
            linewidth=1.2,
            marker=".",
            markersize=2,
            label=f"{gw} GPS track",
        )
        for (lon, lat), text in ((points[0], "first fix"), (points[-1], "last fix")):
            ax.annotate(
                f"{gw} {text}", (lon, lat), xytext=(4, -10), textcoords="offset points", fontsize=7
            )
    stops: dict[str, tuple[float, float]] = {}
    for _, name, payload in commands:
        if name != "route.load" or not isinstance(payload, dict):
            continue
        depot = payload.get("depot") or {}
        if isinstance(depot, dict) and "lat" in depot:
            ax.plot([depot["lon"]], [depot["lat"]], "s", color="black")
            ax.annotate(
                "depot",
                (depot["lon"], depot["lat"]),
                xytext=(4, 4),
                textcoords="offset points",
                fontsize=8,
            )
        for stop in payload.get("stops") or []:
            lat, lon = float(stop["lat"]), float(stop["lon"])
            stops[str(stop["stop_id"])] = (lon, lat)
            radius = float(stop.get("radius_m") or 50.0)
            ax.add_patch(
                Ellipse(
                    (lon, lat),
                    2 * radius / per_deg_lon,
                    2 * radius / _METRES_PER_DEG_LAT,
                    fill=False,
                    color="gray",
                    linewidth=0.8,
                )
            )
            ax.plot([lon], [lat], "+", color="black")
            ax.annotate(
                str(stop["stop_id"]),
                (lon, lat),
                xytext=(4, 4),
                textcoords="offset points",
                fontsize=7,
            )
    for d in summary["deliveries"]:
        where = stops.get(str(d["stop"]))
        if where is not None:
            ax.plot(
                [where[0]],
                [where[1]],
                "o",
                markersize=7,
                fillstyle="none",
                color="tab:green" if d["right_stop"] else "tab:red",
            )
    for a in summary["alerts"].get("left_on_board", []):
        where = stops.get(str(a["stop"]))
        if where is not None:
            ax.plot([where[0]], [where[1]], "x", markersize=9, color="tab:red")
    ax.set_aspect(1.0 / math.cos(math.radians(mean_lat)))
    ax.set_xlabel("longitude")
    ax.set_ylabel("latitude")
    ax.set_title(
        "Vehicle GPS track, stops and geofences"
        + (" (green: delivered at the stop; red: wrong stop / left on board)" if stops else "")
    )
    ax.legend(loc="best", fontsize=7)
