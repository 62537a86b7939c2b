"""The automatic decision on a prise en charge, as a pure function."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest

from rempart.domain.calculation import CodeSystem, Line
from rempart.domain.care import CareDomain
from rempart.domain.coverage import Formula, Guarantee, Period
from rempart.domain.money import Money
from rempart.domain.pec import (
    REVIEW_EXPENSE,
    PecFacts,
    PecStatus,
    Quote,
    decide_pec,
    status_after_review,
)
from rempart.domain.rights import Right

DAY = date(2026, 12, 1)
LENS = Line(
    CodeSystem.LPP,
    "2203240",
    1,
    Money(15000),
    Money(5),
    60,
    CareDomain.OPTI,
    DAY,
    amo_amount=Money(3),
)
FORFAIT = Guarantee(CareDomain.OPTI, Formula.FLAT, flat_amount=Money(10000), period=Period.RENEWAL)
FACTS = PecFacts(Right(date(2024, 1, 1), None), (FORFAIT,), relationship=True)


def quote(*requested: int, **over: object) -> Quote:
    asked = requested or (8000,)
    q = Quote(
        CareDomain.OPTI, DAY, (LENS,) * len(asked), tuple(Money(a) for a in asked), age_years=40
    )
    return replace(q, **over)  # type: ignore[arg-type]


def test_within_the_guarantee_is_accepted_at_what_was_asked() -> None:
    d = decide_pec(quote(8000), FACTS)
    assert (d.status, d.amc.cents, d.reasons) == (PecStatus.ACCEPTED, 8000, ())


def test_above_the_forfait_is_partial_with_r08_on_the_line_cut() -> None:
    d = decide_pec(quote(14997, 14997), FACTS)
    assert (d.status, d.amc.cents) == (PecStatus.PARTIAL, 10000)
    assert [[r.code.value for r in ln.reasons] for ln in d.lines] == [["R08"], ["R08"]]


@pytest.mark.parametrize(
    ("facts", "code"),
    [
        (PecFacts(None), "R15"),
        (replace(FACTS, relationship=False), "R15"),
        (replace(FACTS, right=Right(date(2024, 1, 1), date(2026, 6, 30))), "R04"),
        (replace(FACTS, last_equipment=date(2025, 6, 1)), "R13"),
        (replace(FACTS, guarantees=()), "R04"),
    ],
)
def test_refusals_carry_their_code(facts: PecFacts, code: str) -> None:
    d = decide_pec(quote(), facts)
    assert (d.status, [r.code.value for r in d.reasons]) == (PecStatus.REFUSED, [code])


def test_renewal_is_two_years_for_adults_one_for_children_and_review_on_a_change() -> None:
    older = replace(FACTS, last_equipment=date(2024, 11, 30))
    assert decide_pec(quote(), older).status is PecStatus.ACCEPTED
    recent = replace(FACTS, last_equipment=date(2025, 11, 30))
    assert decide_pec(quote(age_years=12), recent).status is PecStatus.ACCEPTED
    assert decide_pec(quote(age_years=17), recent).status is PecStatus.REFUSED
    review = decide_pec(quote(vision_change=True), recent)
    assert (review.status, review.amc.cents) == (PecStatus.TO_REVIEW, 8000)
    assert status_after_review(review.lines, True) is PecStatus.ACCEPTED
    assert status_after_review(review.lines, False) is PecStatus.REFUSED


def test_a_large_quote_goes_to_review_with_its_proposal() -> None:
    big = replace(LENS, unit_price=Money(REVIEW_EXPENSE.cents + 1))
    d = decide_pec(replace(quote(5000), lines=(big,)), FACTS)
    assert (d.status, d.amc.cents) == (PecStatus.TO_REVIEW, 5000)
