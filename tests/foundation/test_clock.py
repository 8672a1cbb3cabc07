"""The system clock: monotonic never goes back, wall time is UTC-aware."""

from datetime import UTC

from foundation.clock import SystemClock


def test_monotonic_does_not_go_backwards() -> None:
    clock = SystemClock()
    readings = [clock.monotonic() for _ in range(1000)]
    assert readings == sorted(readings)


def test_now_is_utc() -> None:
    assert SystemClock().now().tzinfo is UTC
