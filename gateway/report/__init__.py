"""Reports on a run, from its event log alone: the summary, the comparison with a scenario's
ground truth, the text a person reads, and the picture.

Everything here but :mod:`gateway.report.picture` (matplotlib) and :func:`read_log` is pure.
"""

from __future__ import annotations

from gateway.report.log import EventLog, Record, parse_log, read_log
from gateway.report.names import asset_uri, item_name
from gateway.report.summary import (
    EPCIS_KIND,
    describe_event,
    events_of,
    expand_payload,
    parse_time,
    summarize,
)
from gateway.report.text import summary_lines
from gateway.report.truth import compare_with_truth

__all__ = [
    "EPCIS_KIND",
    "EventLog",
    "Record",
    "asset_uri",
    "compare_with_truth",
    "describe_event",
    "events_of",
    "expand_payload",
    "item_name",
    "parse_log",
    "parse_time",
    "read_log",
    "summarize",
    "summary_lines",
]
