"""docs/time.md stays true: the tunables it quotes are the code's, and every state is described."""

from __future__ import annotations

from pathlib import Path

from drivers.gps import TIME_HOLDOVER_S
from gateway.timekeeping import (
    BACKSTEP_HOLD_MAX_S,
    GPS_TIME_MIN,
    LABEL_CLOCK_AHEAD_MAX_S,
    LABEL_FRAME_MAX_AGE_S,
    LABEL_HISTORY_MAX_AGE_S,
    ClockState,
    LabelTimeIssue,
)
from gateway.timekeeping.chrony import CHRONY_QUERY_TIMEOUT_S
from gateway.timekeeping.system import MAX_SYNCED_ERROR_US
from protocols.chrony import MAX_SYNCED_ERROR_S

DOC = (Path(__file__).resolve().parents[3] / "docs" / "time.md").read_text()


def test_quoted_tunables_match_the_code() -> None:
    assert f"`BACKSTEP_HOLD_MAX_S` ({BACKSTEP_HOLD_MAX_S:g} s" in DOC
    assert f"`LABEL_CLOCK_AHEAD_MAX_S` ({LABEL_CLOCK_AHEAD_MAX_S:g} s)" in DOC
    assert LABEL_FRAME_MAX_AGE_S == 86_400
    assert "`LABEL_FRAME_MAX_AGE_S` (1 day)" in DOC
    assert f"`LABEL_HISTORY_MAX_AGE_S` ({LABEL_HISTORY_MAX_AGE_S / 86_400:g} days)" in DOC
    assert f"`TIME_HOLDOVER_S` ({TIME_HOLDOVER_S / 60:g} min" in DOC
    assert f"GPS times before {GPS_TIME_MIN.year}" in DOC
    assert f"below\n{MAX_SYNCED_ERROR_US // 1_000_000} s" in DOC
    assert MAX_SYNCED_ERROR_S == MAX_SYNCED_ERROR_US / 1e6
    assert f"`CHRONY_QUERY_TIMEOUT_S` ({CHRONY_QUERY_TIMEOUT_S:g} s)" in DOC


def test_every_state_and_reason_is_described() -> None:
    for state in ClockState:
        assert f"| `{state.value}` |" in DOC
    for issue in LabelTimeIssue:
        if issue is LabelTimeIssue.LABEL_UNSYNCED:
            assert f"`{issue.value}`" in DOC
        else:
            assert f"| `{issue.value}` |" in DOC
