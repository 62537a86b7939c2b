"""The rights decision: is this person covered for this domain on this date, and until when?

Inputs come from outside (the beneficiary's right period and contract, found by the card's
fields; today's date). Three answers, with the same shape (DESIGN §5):

- ``unknown``: nobody matches the card (or the NIR given does not match). One uniform answer that
  hides which element failed, and the same for a person of another OCAM;
- ``not_covered``: the person exists but has no open right, or the contract has no guarantee for
  the domain, on the care date;
- ``covered``: with the guarantee, and ``valid_until``, the last care date an invoice may cite the
  engagement for: the care date plus the engagement window, never past the end of the right,
  the contract or the guarantee.

A care date more than ``past_days_max`` days before today, or after tomorrow, is a
field error, not an answer (an engagement for a future dispensation would be a blank cheque).

    >>> from rempart.domain.coverage import Formula
    >>> right = Right(date(2026, 1, 1), date(2026, 12, 31))
    >>> phar = Guarantee(CareDomain.PHAR, Formula.PCT_BRSS, rate_pct=100)
    >>> c = Contract("C1", "Essentiel", [phar])
    >>> d = decide(right, c, CareDomain.PHAR, date(2026, 12, 20), engagement_days=15)
    >>> d.status, d.valid_until
    (<Status.COVERED: 'covered'>, datetime.date(2026, 12, 31))
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum

from rempart.domain.care import CareDomain
from rempart.domain.coverage import Contract, Guarantee


class Status(StrEnum):
    COVERED = "covered"
    NOT_COVERED = "not_covered"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Right:
    """One beneficiary's right period under its contract (from the insurer's file)."""

    valid_from: date
    valid_to: date | None  # None: open-ended

    def open_on(self, day: date) -> bool:
        return self.valid_from <= day and (self.valid_to is None or day <= self.valid_to)


@dataclass(frozen=True, slots=True)
class Decision:
    status: Status
    guarantee: Guarantee | None = None
    valid_until: date | None = None


UNKNOWN = Decision(Status.UNKNOWN)
NOT_COVERED = Decision(Status.NOT_COVERED)


def decide(
    right: Right | None,
    contract: Contract | None,
    domain: CareDomain,
    care_date: date,
    *,
    engagement_days: int,
) -> Decision:
    if right is None or contract is None:
        return UNKNOWN
    if not right.open_on(care_date):
        return NOT_COVERED
    guarantee = contract.guarantee_for(domain, care_date)
    if guarantee is None:
        return NOT_COVERED
    ends = [care_date + timedelta(days=engagement_days), guarantee.valid_to, contract.valid_to]
    if right.valid_to is not None:
        ends.append(right.valid_to)
    return Decision(Status.COVERED, guarantee, min(ends))


def care_date_problem(care_date: date, today: date, *, past_days_max: int) -> str | None:
    """Why ``care_date`` cannot be checked, in French, or None."""
    if care_date > today + timedelta(days=1):  # a day of leeway for clocks and time zones
        return "la date de soins ne peut pas être dans le futur"
    if care_date < today - timedelta(days=past_days_max):
        return f"la date de soins ne peut pas remonter à plus de {past_days_max} jours"
    return None
