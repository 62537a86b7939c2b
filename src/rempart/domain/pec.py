"""Prises en charge (PEC) for optique, audio and dentaire: the automatic decision (DOMAIN.md §5).

A professional sends a quote (the devis's lines, the AMC part it asks for); the decision is a
pure function of the quote and of the facts looked up (the person's rights and guarantees, the
care relationship, the AMC already consumed, the date of the last equipment):

    R15 unknown card or no care relationship (one answer) · R04 rights closed → refused
    R13 renewal period not reached (optique: 1 year up to 16, 2 over; audio: 4 years)
        → refused, or to review when the prescriber notes a change of vision
    the calculation engine per line: a line not covered → that line refused (R04)
    every line refused → refused; an AMC below what was asked on some line (a cap: R08) or a
    line refused → partial; else accepted
    a quote above ``REVIEW_EXPENSE`` → to review, with the computed amounts as the proposal

An accepted or partial PEC guarantees its AMC amount until ``valid_until`` (plus a grace
period for the invoice); the matching invoice consumes it and is never paid above it.

    >>> PecStatus.TO_REVIEW.label
    'À examiner par un gestionnaire'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum

from rempart.domain.adjudication import LineDecision, years_before
from rempart.domain.calculation import Consumption, Line, Rule, compute
from rempart.domain.care import CareDomain
from rempart.domain.coverage import Guarantee
from rempart.domain.money import ZERO, Money
from rempart.domain.reasons import Code, Kind, Reason
from rempart.domain.rights import Right

PEC_DOMAINS = frozenset({CareDomain.OPTI, CareDomain.AUDI, CareDomain.DENT})
REVIEW_EXPENSE = Money(250_000)  # a quote above €2,500 is looked at by an agent
CHILD_OPTIQUE_AGE_MAX = 16


class PecStatus(StrEnum):
    ACCEPTED = "accepted"
    PARTIAL = "partial"
    REFUSED = "refused"
    TO_REVIEW = "to_review"
    CANCELLED = "cancelled"
    CONSUMED = "consumed"

    @property
    def label(self) -> str:
        return STATUS_LABELS[self]


STATUS_LABELS = {
    PecStatus.ACCEPTED: "Accordée",
    PecStatus.PARTIAL: "Accordée partiellement",
    PecStatus.REFUSED: "Refusée",
    PecStatus.TO_REVIEW: "À examiner par un gestionnaire",
    PecStatus.CANCELLED: "Annulée",
    PecStatus.CONSUMED: "Facturée",
}

GRANTED = frozenset({PecStatus.ACCEPTED, PecStatus.PARTIAL})
# A PEC that holds the renewal period (a new one is refused until it is over or cancelled).
HOLDS_PERIOD = frozenset(
    {PecStatus.ACCEPTED, PecStatus.PARTIAL, PecStatus.TO_REVIEW, PecStatus.CONSUMED}
)

TRANSITIONS: Mapping[PecStatus, frozenset[PecStatus]] = {
    PecStatus.TO_REVIEW: frozenset({PecStatus.ACCEPTED, PecStatus.PARTIAL, PecStatus.REFUSED}),
    PecStatus.ACCEPTED: frozenset({PecStatus.CANCELLED, PecStatus.CONSUMED}),
    PecStatus.PARTIAL: frozenset({PecStatus.CANCELLED, PecStatus.CONSUMED}),
    PecStatus.REFUSED: frozenset(),
    PecStatus.CANCELLED: frozenset(),
    PecStatus.CONSUMED: frozenset(),
}


def renewal_years(domain: CareDomain, age_years: int | None) -> int | None:
    """
    >>> renewal_years(CareDomain.OPTI, 12), renewal_years(CareDomain.OPTI, 40)
    (1, 2)
    >>> renewal_years(CareDomain.DENT, 40) is None
    True
    """
    if domain is CareDomain.OPTI:
        return 1 if age_years is not None and age_years <= CHILD_OPTIQUE_AGE_MAX else 2
    if domain is CareDomain.AUDI:
        return 4
    return None


@dataclass(frozen=True, slots=True)
class Quote:
    domain: CareDomain
    care_date: date  # the quote's date
    lines: tuple[Line, ...]
    requested: tuple[Money, ...]  # the AMC part asked for, per line
    vision_change: bool = False
    age_years: int | None = None

    @property
    def expense(self) -> Money:
        return Money(sum(line.expense.cents for line in self.lines))


@dataclass(frozen=True, slots=True)
class PecFacts:
    right: Right | None  # None: unknown card
    guarantees: Sequence[Guarantee] = ()
    responsible: bool = True
    relationship: bool = False
    consumption: Mapping[CareDomain, Consumption] = field(default_factory=dict)
    last_equipment: date | None = None  # of this domain: a PEC holding its period, or billed


@dataclass(frozen=True, slots=True)
class PecDecision:
    status: PecStatus
    reasons: tuple[Reason, ...]
    lines: tuple[LineDecision, ...]  # empty when refused before any calculation

    @property
    def amc(self) -> Money:
        return Money(sum(d.amc.cents for d in self.lines))


def _refused(code: Code) -> PecDecision:
    return PecDecision(PecStatus.REFUSED, (Reason(code),), ())


def decide_pec(quote: Quote, facts: PecFacts) -> PecDecision:
    if facts.right is None or not facts.relationship:
        return _refused(Code.R15)  # unknown and not served look the same (adjudication's rule)
    if not facts.right.open_on(quote.care_date):
        return _refused(Code.R04)
    years = renewal_years(quote.domain, quote.age_years)
    renewal_due = (
        years is not None
        and facts.last_equipment is not None
        and facts.last_equipment > years_before(quote.care_date, years)
    )
    if renewal_due and not quote.vision_change:
        return _refused(Code.R13)
    calc = compute(
        quote.lines,
        facts.guarantees,
        consumption=facts.consumption,
        age_years=quote.age_years,
        responsible=facts.responsible,
    )
    lines = []
    for line, asked, r in zip(quote.lines, quote.requested, calc.lines, strict=True):
        if Rule.NOT_COVERED in r.codes:
            lines.append(
                LineDecision(False, r.amo, ZERO, line.expense - r.amo, (Reason(Code.R04),))
            )
            continue
        granted = min(r.amc, asked)
        below = asked > r.amc
        reasons = (Reason(Code.R08, Kind.SIGNALEMENT),) if below else ()
        lines.append(LineDecision(True, r.amo, granted, r.expense - r.amo - granted, reasons))
    if not any(d.accepted for d in lines):
        return PecDecision(PecStatus.REFUSED, (Reason(Code.R04),), tuple(lines))
    partial = any(not d.accepted or d.reasons for d in lines)
    status = PecStatus.PARTIAL if partial else PecStatus.ACCEPTED
    if renewal_due:  # a change of vision: an agent checks the prescription
        return PecDecision(PecStatus.TO_REVIEW, (Reason(Code.R13),), tuple(lines))
    if quote.expense > REVIEW_EXPENSE:
        return PecDecision(PecStatus.TO_REVIEW, (), tuple(lines))
    return PecDecision(status, (), tuple(lines))


def status_after_review(proposal: Sequence[LineDecision], accept: bool) -> PecStatus:
    """What an agent's decision on a PEC to review makes of it: the computed proposal."""
    if not accept or not any(d.accepted for d in proposal):
        return PecStatus.REFUSED
    partial = any(not d.accepted or d.reasons for d in proposal)
    return PecStatus.PARTIAL if partial else PecStatus.ACCEPTED
