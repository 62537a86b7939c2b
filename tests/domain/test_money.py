from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rempart.domain.money import Money, pct


@pytest.mark.parametrize(
    ("text", "cents"),
    [("12.34", 1234), ("12.3", 1230), ("12", 1200), ("0.05", 5), ("-3.10", -310), (" 7.00 ", 700)],
)
def test_parse(text: str, cents: int) -> None:
    assert Money.parse(text).cents == cents


@pytest.mark.parametrize("text", ["12,34", "1.234", "abc", "", "1e3", "12.", ".5", "1234567890.00"])
def test_parse_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="montant invalide"):
        Money.parse(text)


def test_format() -> None:
    assert str(Money(5)) == "0.05"
    assert str(Money(-310)) == "-3.10"
    assert Money(123450).french() == "1\u202f234,50\u00a0€"


@pytest.mark.parametrize(
    ("cents", "rate", "expected"),
    [(1200, 65, 780), (900, 65, 585), (245, 30, 74), (499, 15, 75), (3000, 70, 2100), (1, 50, 1)],
)
def test_pct_matches_domain_examples(cents: int, rate: int, expected: int) -> None:
    # DOMAIN.md §7: 245 × 30 % = 73.5 → 74, 499 × 15 % = 74.85 → 75 (half-up)
    assert pct(Money(cents), rate) == Money(expected)


@given(st.integers(-(10**9), 10**9), st.integers(0, 1000))
def test_pct_is_exact_value_rounded_half_up(cents: int, rate: int) -> None:
    exact = Fraction(cents * rate, 100)
    got = pct(Money(cents), rate).cents
    assert abs(got - exact) <= Fraction(1, 2)
    if abs(got - exact) == Fraction(1, 2):  # a tie goes away from zero
        assert abs(got) > abs(exact)


@given(st.integers(-(10**11) + 1, 10**11 - 1))
def test_str_parse_round_trip(cents: int) -> None:
    assert Money.parse(str(Money(cents))) == Money(cents)


@given(st.integers(-(10**9), 10**9), st.integers(-1000, 1000))
def test_pct_in_integers_equals_pct_in_fractions(cents: int, rate: int) -> None:
    assert pct(Money(cents), rate) == pct(Money(cents), Fraction(rate))
