from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from rempart.domain.ratelimit import gcra

T0 = datetime(2026, 12, 2, 10, tzinfo=UTC)


def test_a_burst_then_the_steady_rate() -> None:
    tat = None
    allowed = []
    for _ in range(10):  # ten requests at the same instant
        d = gcra(tat, T0, rate_per_s=1, burst=4)
        allowed.append(d.allowed)
        tat = d.tat
    assert allowed == [True] * 5 + [False] * 5  # the request itself plus a burst of four
    refused = gcra(tat, T0, rate_per_s=1, burst=4)
    assert refused.retry_after_seconds == 1
    assert gcra(tat, T0 + timedelta(seconds=1), rate_per_s=1, burst=4).allowed


@given(st.lists(st.floats(0, 5), min_size=1, max_size=200), st.integers(0, 10), st.floats(0.5, 50))
def test_never_more_than_burst_plus_rate_times_elapsed(
    gaps: list[float], burst: int, rate: float
) -> None:
    tat, now, ok = None, T0, 0
    for gap in gaps:
        now += timedelta(seconds=gap)
        d = gcra(tat, now, rate_per_s=rate, burst=burst)
        if d.allowed:
            ok += 1
            tat = d.tat
    elapsed = (now - T0).total_seconds()
    assert ok <= burst + 1 + rate * elapsed + 1e-6
