"""Money is integer cents, never a float.

``Money`` is a small value type; amounts cross the API as decimal strings in euros
("12.34"). Rounding of percentages happens in exactly one function, ``pct``: half-up to the
cent, once per line (DOMAIN.md §7).

    >>> pct(Money(245), 30)        # 73.5 cents rounds half-up
    Money(cents=74)
    >>> str(Money.parse("12.3"))
    '12.30'
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

_EUROS = re.compile(r"^(-?)(\d{1,9})(?:\.(\d{1,2}))?$")


@dataclass(frozen=True, slots=True, order=True)
class Money:
    cents: int

    @classmethod
    def parse(cls, text: str) -> Money:
        """Parse a decimal string in euros, at most two decimals. Raises ValueError (French)."""
        m = _EUROS.match(text.strip())
        if not m:
            raise ValueError("montant invalide (format attendu : 12.34)")
        sign, whole, frac = m.groups()
        cents = int(whole) * 100 + int((frac or "0").ljust(2, "0"))
        return cls(-cents if sign else cents)

    def __add__(self, other: Money) -> Money:
        return Money(self.cents + other.cents)

    def __sub__(self, other: Money) -> Money:
        return Money(self.cents - other.cents)

    def __mul__(self, quantity: int) -> Money:
        return Money(self.cents * quantity)

    def __str__(self) -> str:
        sign = "-" if self.cents < 0 else ""
        whole, frac = divmod(abs(self.cents), 100)
        return f"{sign}{whole}.{frac:02d}"

    def french(self) -> str:
        """'1 234,50 €' for people."""
        sign = "-" if self.cents < 0 else ""
        whole, frac = divmod(abs(self.cents), 100)
        return f"{sign}{whole:,}".replace(",", "\u202f") + f",{frac:02d}\u00a0€"

    @property
    def decimal(self) -> Decimal:
        return Decimal(self.cents) / 100


ZERO = Money(0)


def pct(amount: Money, rate_pct: int | Fraction) -> Money:
    """``amount × rate / 100``, rounded half-up to the cent. The one rounding place."""
    if type(rate_pct) is int:  # the usual case, in integers: the same result, without Fraction
        scaled = amount.cents * rate_pct  # hundredths of a cent
        rounded = (2 * abs(scaled) + 100) // 200
        return Money(rounded if scaled >= 0 else -rounded)
    exact = Fraction(amount.cents) * Fraction(rate_pct) / 100
    num, den = abs(exact.numerator), exact.denominator
    rounded = (2 * num + den) // (2 * den)  # half-up, away from zero for negatives
    return Money(rounded if exact >= 0 else -rounded)
