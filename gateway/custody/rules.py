"""The tunables of the custody rules, with units and the reason for each value.

The radio figures come from the simulator's model, which follows published BLE measurements:
log-distance path loss from -59 dBm at 1 m with an exponent of 2.0 (van) to 2.2 (a dock full of
parcels), Gaussian shadowing of 3 to 4 dB per advert, 6 to 8 dB through a trailer's or van's
body, one advert a second, receivers that hear down to -95 dBm. docs/custody.md derives each
threshold from those numbers and gives the margins measured over many seeds and layouts.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "CARGO_RSSI_DBM",
    "CARGO_TIMEOUT_S",
    "CLAIM_MARGIN_DB",
    "CLAIM_MAX_AGE_S",
    "CLAIM_MIN_SIGHTINGS",
    "CLOSE_SETTLE_S",
    "COHORT_BEFORE_S",
    "COHORT_MAX_ITEMS",
    "COHORT_MIN_ITEMS",
    "COHORT_STILL_DB",
    "DEFAULT_DEPOT_RADIUS_M",
    "DEFAULT_STOP_RADIUS_M",
    "DWELL_MIN_SIGHTINGS",
    "DWELL_S",
    "FADE_S",
    "FIX_MAX_AGE_S",
    "FIX_MAX_HDOP",
    "FIX_MAX_SPEED_MPS",
    "FIX_REANCHOR_FIXES",
    "GEOFENCE_EXIT_FIXES",
    "LEVEL_EMA_ALPHA",
    "LEVEL_RISE_DB",
    "MAX_DOCUMENTS",
    "MAX_ID_CHARS",
    "MAX_ITEMS_PER_SESSION",
    "MAX_OPEN_SESSIONS",
    "MAX_PARCELS_PER_ROUTE",
    "MAX_SESSION_WINDOW_S",
    "MAX_STOPS_PER_ROUTE",
    "MAX_TRACKED_PER_SESSION",
    "MAX_UNKNOWN_PARCELS",
    "MIN_STOP_RADIUS_M",
    "NEIGHBOUR_RADIUS_FRACTION",
    "PORTAL_RSSI_DBM",
    "PORTAL_WINDOW_S",
    "PRE_MIN_SIGHTINGS",
    "PRE_QUIET_S",
    "RECEIVER_FLOOR_DBM",
    "REPORTED_KEPT",
    "UNEXPECTED_MIN_LEVEL_DBM",
    "UNEXPECTED_MIN_PEAK_DBM",
    "VEHICLE_GONE_S",
    "VEHICLE_MIN_SIGHTINGS",
]

# --- handoff at a dock door ----------------------------------------------------------------------

#: A "portal read": one advert at least this loud. A parcel carried through the door frame
#: passes within a few metres of the gateway; sampled once a second at a brisk carry the closest
#: advert is at most ~6.5 m away (mean -77 dBm at n = 2.2); the weakest crossing over 16 seeds of
#: cross-dock peaked at -76 dBm. On its own it proves little: shadowing lifts a parcel resting in
#: the trailer (>= 9 m, behind 6 dB of body: mean <= -86 dBm) above it now and then.
PORTAL_RSSI_DBM: Final = -78
#: Adverts this close to a portal read belong to the carry itself (a 5 s carry plus a second),
#: so they count neither for the level before nor for the level after.
PORTAL_WINDOW_S: Final = 6.0
#: How long after the carry the parcel's level on the dock side is measured: 30 adverts bring
#: the standard error of the mean to 4 dB / sqrt(30) = 0.7 dB.
DWELL_S: Final = 30.0
#: Adverts needed in that dwell: fewer means the parcel was carried on (past the door or away).
DWELL_MIN_SIGHTINGS: Final = 15
#: Adverts needed before the portal read to know the parcel's level in the trailer.
PRE_MIN_SIGHTINGS: Final = 10
#: A parcel not heard at all before its portal read was below the receiver's floor, but only if
#: the session had been listening this long (otherwise we simply had not started listening).
PRE_QUIET_S: Final = 20.0
#: What "not heard" stands for: the receivers' sensitivity.
RECEIVER_FLOOR_DBM: Final = -95.0
#: Confirmed live when the dwell level beats the parcel's own level before the portal read by
#: this much: the trailer's body alone costs 6 dB, and a parcel that stayed put compares with
#: itself (difference N(0, <= 0.9 dB)): 5 dB is > 5 sigma of that noise.
LEVEL_RISE_DB: Final = 5.0
#: The load a parcel came with must not have risen with it: a vehicle reversing onto the door
#: brings its whole load from beyond the receivers' floor to 9 m in half a minute, so every
#: parcel on it "rises", and a front parcel's shadowing makes the portal read. The rise that
#: counts is the parcel's own minus the median rise of the session's other unconfirmed expected
#: items over the same instants (the cohort; only those heard at least DWELL_MIN_SIGHTINGS
#: times since, like a crossing). At least this many such items are needed for a median (with
#: fewer, nothing is subtracted: a lone parcel has no load to compare with) ...
COHORT_MIN_ITEMS: Final = 3
#: A load whose median rise is this much or more was moving (the vehicle approached, or left
#: and came back): no item of it is confirmed by level over those instants, whatever its own
#: rise; it stays pending and the report decides (it stayed or it left). Reversing from beyond
#: the floor to the door lifts the median by 1.2 to 3 dB even though most of the load is below
#: the floor before (censored: the mean of the few adverts heard is too high); a load at rest
#: gives 0 +- 0.4 dB (the median of 20-odd differences of 1.5 dB noise each). Erring high only
#: delays a confirmation to the report.
COHORT_STILL_DB: Final = 1.0
#: A cohort item's level before a portal read counts its unheard advertising slots (at the
#: receivers' floor) over at most this long: a load that has been heard this long at the door
#: is at rest there, and only the adverts of its approach could hide a rise. A reversing
#: vehicle covers the last 50 m in 30 to 40 s.
COHORT_BEFORE_S: Final = 60.0
#: ... and at most this many are sampled (in a fixed order), bounding the work per portal read.
COHORT_MAX_ITEMS: Final = 200
#: A closed session reports this long after its close: the vehicle pulls away meanwhile, so a
#: parcel whose level could not tell dock from trailer is decided by whether it stayed (an
#: EPCglobal ALE read cycle that ends after a quiet period).
CLOSE_SETTLE_S: Final = 60.0
#: "Stayed": heard within this long before the report. A trailer 20 s into pulling away is over
#: 40 m out behind its body (mean < -99 dBm: silent); a parcel on a 20 m deep dock is heard
#: every second (mean >= -88 dBm).
FADE_S: Final = 20.0
#: An item nobody expected is reported only with evidence that beats a neighbouring door's: its
#: mean level on the dock side must beat what a parcel on the next lane produces (12 m between
#: doors, lanes 8 m wide: >= 8.2 m, mean <= -79 dBm) by 3 dB, i.e. it lies within ~6 m of
#: this door. The expected list is a strong prior; an unexpected claim is not.
UNEXPECTED_MIN_LEVEL_DBM: Final = -76.0
#: ... or the carry through this door frame was heard this loud: a parcel resting on the next
#: lane (mean <= -79 dBm) reaches it only by a 3.75 sigma draw in its crossing window (p ~ 1e-3);
#: a carry through this frame does in about half the layouts (within ~2.5 m of the gateway).
UNEXPECTED_MIN_PEAK_DBM: Final = -64

#: A session given its vehicle's own tag closes when the vehicle departs: the tag was heard at
#: the door at least this many times (it was there; one stray advert of a passing vehicle is
#: no arrival) ...
VEHICLE_MIN_SIGHTINGS: Final = 10
#: ... and then not for this long; the session closes at its last advert. A tag on a vehicle
#: at the door (9 m: mean -80 dBm in the open, -86 dBm behind 6 dB of body) misses an advert with
#: p ~ 1 % at worst (floor -95 dBm, 4 dB shadowing), so 20 in
#: a row never happen while it is there; 20 s after pulling away it is 40 m out or more.
VEHICLE_GONE_S: Final = 20.0

#: Open (and closing) sessions per gateway: a door runs one handoff at a time, a few overlap.
MAX_OPEN_SESSIONS: Final = 16
#: Expected items per session: a 13.6 m trailer holds at most a few thousand parcels.
MAX_ITEMS_PER_SESSION: Final = 5_000
#: Items tracked per session beyond the expected ones (candidates for "unexpected"); the rest
#: is counted, not stored, so a busy dock cannot grow memory without bound.
MAX_TRACKED_PER_SESSION: Final = 10_000
#: Business documents per session (ASN / DESADV / BOL numbers).
MAX_DOCUMENTS: Final = 32
#: A handoff window longer than a day is a mistake, not a handoff.
MAX_SESSION_WINDOW_S: Final = 86_400.0
#: Reported sessions remembered so that a resent open or close is recognised.
REPORTED_KEPT: Final = 64
#: Length limit of every id and name in a command.
MAX_ID_CHARS: Final = 128

#: A door shares a claim once it has this many adverts after the carry (a level to 1.8 dB).
CLAIM_MIN_SIGHTINGS: Final = 5
#: A neighbour's claim counts for this long after it arrived (they are re-sent every few
#: seconds while the evidence lasts; an older one is a neighbour that went quiet).
CLAIM_MAX_AGE_S: Final = 120.0
#: An item's current level is an exponential moving average with this weight per advert: a
#: memory of ~60 adverts (a minute), whose noise is 4 dB * sqrt(a / (2 - a)) = 0.37 dB.
LEVEL_EMA_ALPHA: Final = 1.0 / 60.0
#: A door claims an unexpected item when its current level beats every neighbour's (the item
#: lies in the lane of the nearer door), and beats by more than this a neighbour that *expects*
#: the item: at the far edge of a deep lane two doors differ by well under 1 dB, and two levels
#: of 0.37 dB noise differ by more than 1.5 dB with p ~ 0.2 % at equal distances. The manifest
#: is strong evidence; a near tie leaves the item to the door that expects it.
CLAIM_MARGIN_DB: Final = 1.5

# --- vehicle mode ------------------------------------------------------------------------------

#: A parcel is in the cargo zone while adverts at least this loud keep coming. A van's load
#: lies 1 to 4.5 m from its gateway (mean >= -73 dBm at n = 2.2); a parcel on a doorstep is
#: this loud only within ~9 to 11 m of the van, well inside any stop's geofence.
CARGO_RSSI_DBM: Final = -80
#: ... and has left it after this long without such an advert: on board, 15 adverts in a row
#: below the threshold (each p < 0.05 even at the far end of a van) never happen.
CARGO_TIMEOUT_S: Final = 15.0
#: A fix older than this is stale: at 15 m/s (54 km/h) 3 s is 45 m, about a tight geofence.
FIX_MAX_AGE_S: Final = 3.0
#: A fix with a horizontal dilution of precision above this is poor (HDOP 5 is "moderate" at
#: best: tens of metres of error).
FIX_MAX_HDOP: Final = 5.0
#: A fix implying a faster move since the last accepted one is a jump (multipath), not travel.
FIX_MAX_SPEED_MPS: Final = 50.0
#: ... unless this many consecutive fixes agree with each other: then the receiver was right
#: and the last accepted fix was wrong (re-anchor).
FIX_REANCHOR_FIXES: Final = 5
#: A geofence is left after this many consecutive good fixes outside it (one stray fix is not a
#: departure).
GEOFENCE_EXIT_FIXES: Final = 3
#: A stop's radius when route.load gives none: what a well-known telematics product defaults
#: to; the neighbour rule below shrinks it on a street of close stops.
DEFAULT_STOP_RADIUS_M: Final = 250.0
#: The depot's radius when route.load gives none: a yard of a few hundred metres.
DEFAULT_DEPOT_RADIUS_M: Final = 150.0
#: No geofence below this: a good GPS fix scatters by 5 to 10 m (2 sigma) in a street canyon.
MIN_STOP_RADIUS_M: Final = 15.0
#: A stop's radius is at most this fraction of the distance to the nearest other stop, so that
#: two geofences never overlap (above the floor) and the stop a parcel left at is unambiguous.
NEIGHBOUR_RADIUS_FRACTION: Final = 0.5
#: Stops per route and parcels per route: a van delivers at most a few hundred of each a day.
MAX_STOPS_PER_ROUTE: Final = 500
MAX_PARCELS_PER_ROUTE: Final = 5_000
#: Tags heard in the cargo zone that are on no route (misload candidates) kept at once.
MAX_UNKNOWN_PARCELS: Final = 1_000
