"""GCRA (generic cell rate algorithm) rate limiting, as a pure function over one timestamp.

Each key keeps a *theoretical arrival time* (TAT). A request at ``now`` is allowed when
``TAT − now ≤ burst × interval``; it then moves the TAT one ``interval`` on. No counters, no
windows: one value per key, exact under any request pattern.

    >>> from datetime import datetime, timezone
    >>> t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    >>> d = gcra(None, t0, rate_per_s=1, burst=2)
    >>> d.allowed, (d.tat - t0).total_seconds()
    (True, 1.0)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    tat: datetime  # the key's new theoretical arrival time (unchanged when refused)
    retry_after_seconds: int


def gcra(tat: datetime | None, now: datetime, *, rate_per_s: float, burst: int) -> Decision:
    interval = timedelta(seconds=1 / rate_per_s)
    start = max(tat or now, now)
    if start - now > interval * burst:
        wait = (start - now - interval * burst).total_seconds()
        return Decision(False, start, max(1, int(wait + 0.999)))
    return Decision(True, start + interval, 0)
