from datetime import date

import holidays
import pytest

from rempart.domain.calendar import add_business_days, is_business_day

FR = holidays.France(years=range(2026, 2028))


@pytest.mark.parametrize(
    ("start", "n", "expected"),
    [
        (date(2026, 12, 2), 5, date(2026, 12, 9)),  # Wednesday + 5 → next Wednesday
        (date(2026, 12, 24), 5, date(2027, 1, 4)),  # Christmas and New Year's Day skipped
        (date(2026, 12, 5), 1, date(2026, 12, 7)),  # from a Saturday: Monday
        (date(2026, 12, 2), 0, date(2026, 12, 2)),
    ],
)
def test_add_business_days(start: date, n: int, expected: date) -> None:
    assert add_business_days(start, n, holidays=FR) == expected


def test_holidays_and_weekends_are_off() -> None:
    assert not is_business_day(date(2026, 7, 14), FR)
    assert not is_business_day(date(2026, 12, 6), FR)
    assert is_business_day(date(2026, 12, 7), FR)
