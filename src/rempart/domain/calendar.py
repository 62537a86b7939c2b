"""French business days (Europe/Paris days, weekends and public holidays off).

The holidays come from outside (``holidays.France`` in the service layer), so the rule stays
pure and testable:

    >>> from datetime import date
    >>> add_business_days(date(2026, 12, 24), 2, holidays={date(2026, 12, 25)})  # Thu → Tue
    datetime.date(2026, 12, 29)
"""

from __future__ import annotations

from collections.abc import Container
from datetime import date, timedelta


def is_business_day(day: date, holidays: Container[date]) -> bool:
    return day.weekday() < 5 and day not in holidays


def add_business_days(day: date, n: int, *, holidays: Container[date]) -> date:
    """The n-th business day after ``day`` (``day`` itself does not count)."""
    if n < 0:
        raise ValueError("n must be positive")
    current = day
    while n:
        current += timedelta(days=1)
        if is_business_day(current, holidays):
            n -= 1
    return current
