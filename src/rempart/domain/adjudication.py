"""Adjudication: decide a received invoice, line by line, with coded reasons (DOMAIN.md §6).

A pure function of the invoice and of the facts the worker looked up (``Facts``): the
beneficiary found by the card's full key, the care relationship, the engagement quoted, the
lines already paid for the same care, the AMC already consumed. No I/O, no clock: the day the
invoice was received stands for "now".

The controls, in order; an invoice-level failure rejects every line with the same reason:

    R14 care date after reception       R15 card unknown, or no care relationship with the PS
    R11 past the insurer's deadline      R04 rights closed         R06 no engagement quoted
    R16 engagement of another PS/person  R07 engagement revoked or expired for that date
    per line: R06 engagement for another domain, R12 code not valid for the domain,
              R14 AMO part above the expense, R09 AMO part ≠ the rate applied to the base,
              R10 the same care already accepted, then the calculation engine:
              not covered → R04, 15 % drug → R05, AMC claimed above the computed part (a
              formula, a cap, the PEC's amount) → paid at the computed part with an R08
              *signalement*.

A line is never paid more than was claimed. An invoice with every line rejected is
``rejected``; with at least one line accepted it is ``accepted``.

    >>> from rempart.domain.coverage import Formula
    >>> line = ClaimLine(CareDomain.PHAR, CodeSystem.CIP13, "3400930000014", 1, Money(1000),
    ...                  Money(1000), 65, Money(650), Money(350))
    >>> claim = Claim(date(2026, 12, 1), "E1", None, (line,), date(2026, 12, 2), 40)
    >>> g = Guarantee(CareDomain.PHAR, Formula.TICKET_MODERATEUR)
    >>> facts = Facts(Right(date(2026, 1, 1), None), (g,), relationship=True,
    ...               engagement=EngagementFacts(True, True, CareDomain.PHAR, date(2026, 12, 1),
    ...                                          date(2026, 12, 15), False),
    ...               deadline_days=730)
    >>> d = adjudicate(claim, facts)
    >>> d.status, d.lines[0].amc.cents, d.lines[0].reasons
    (<InvoiceStatus.ACCEPTED: 'accepted'>, 350, ())
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from enum import StrEnum
from typing import Any

from stdnum import ean

from rempart.domain.calculation import (
    CodeSystem,
    Consumption,
    Line,
    OpticKind,
    Rule,
    SanteClass,
    Side,
    compute,
    input_problems,
)
from rempart.domain.care import CareDomain
from rempart.domain.coverage import Guarantee
from rempart.domain.errors import FieldError
from rempart.domain.money import ZERO, Money, pct
from rempart.domain.reasons import Code, Kind, Reason
from rempart.domain.rights import Right


class InvoiceStatus(StrEnum):
    RECEIVED = "received"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    PAID = "paid"  # set when its payment is exported (the payments issue)
    CANCELLED = "cancelled"


# The only moves an invoice's status makes. A paid invoice is reversed by a credit note (a new
# ledger entry), never by changing it back — except when the bank returns its transfer: it was
# not paid after all, and goes back to accepted, for the next run.
TRANSITIONS: Mapping[InvoiceStatus, frozenset[InvoiceStatus]] = {
    InvoiceStatus.RECEIVED: frozenset(
        {InvoiceStatus.ACCEPTED, InvoiceStatus.REJECTED, InvoiceStatus.CANCELLED}
    ),
    InvoiceStatus.ACCEPTED: frozenset({InvoiceStatus.PAID, InvoiceStatus.CANCELLED}),
    InvoiceStatus.REJECTED: frozenset({InvoiceStatus.CANCELLED}),
    InvoiceStatus.PAID: frozenset({InvoiceStatus.ACCEPTED}),  # a returned transfer
    InvoiceStatus.CANCELLED: frozenset(),
}


def may_move(current: InvoiceStatus, target: InvoiceStatus) -> bool:
    """
    >>> may_move(InvoiceStatus.ACCEPTED, InvoiceStatus.CANCELLED)
    True
    >>> may_move(InvoiceStatus.PAID, InvoiceStatus.CANCELLED)
    False
    >>> may_move(InvoiceStatus.PAID, InvoiceStatus.ACCEPTED)  # its transfer came back
    True
    """
    return target in TRANSITIONS[current]


# Which code systems a domain bills. A code outside its domain's systems is R12.
CODE_SYSTEMS: Mapping[CareDomain, frozenset[CodeSystem]] = {
    CareDomain.PHAR: frozenset({CodeSystem.CIP13, CodeSystem.LPP}),
    CareDomain.OPTI: frozenset({CodeSystem.LPP}),
    CareDomain.AUDI: frozenset({CodeSystem.LPP}),
    CareDomain.DENT: frozenset({CodeSystem.CCAM, CodeSystem.NGAP}),
    CareDomain.LABO: frozenset({CodeSystem.NGAP}),
    CareDomain.HOSP: frozenset({CodeSystem.CCAM, CodeSystem.NGAP, CodeSystem.LPP}),
    CareDomain.RADL: frozenset({CodeSystem.CCAM, CodeSystem.NGAP}),
    CareDomain.AUXM: frozenset({CodeSystem.NGAP}),
    CareDomain.MED: frozenset({CodeSystem.CCAM, CodeSystem.NGAP}),
    CareDomain.EXTE: frozenset({CodeSystem.CCAM, CodeSystem.NGAP, CodeSystem.LPP}),
}


@dataclass(frozen=True, slots=True)
class ClaimLine:
    domain: CareDomain
    code_system: CodeSystem
    code: str
    quantity: int
    unit_price: Money
    brss: Money  # per unit
    amo_rate: int
    amo_amount: Money
    amc_claimed: Money
    sante_class: SanteClass | None = None
    optic_kind: OpticKind | None = None
    equipment: str | None = None
    side: Side | None = None
    plv: Money | None = None

    @property
    def expense(self) -> Money:
        return self.unit_price * self.quantity


@dataclass(frozen=True, slots=True)
class Claim:
    care_date: date
    engagement_number: str | None
    pec_number: str | None
    lines: tuple[ClaimLine, ...]
    received_on: date
    age_years: int | None = None


@dataclass(frozen=True, slots=True)
class EngagementFacts:
    """The engagement the invoice quotes, as found by its number."""

    same_structure: bool
    same_beneficiary: bool
    domain: CareDomain
    care_date: date  # the date the rights were checked for
    valid_until: date
    revoked: bool


@dataclass(frozen=True, slots=True)
class PecRef:
    """The prise en charge the invoice quotes, as found by its number."""

    same_structure: bool
    same_beneficiary: bool
    domain: CareDomain
    granted: bool  # accepted or partial, not cancelled, consumed, refused or to review
    valid_until: date  # the last care date it covers, grace period included
    amc: Money  # the AMC amount it guarantees: the invoice is never paid above it


@dataclass(frozen=True, slots=True)
class Facts:
    right: Right | None  # None: no beneficiary has this card (answered R15)
    guarantees: Sequence[Guarantee] = ()
    responsible: bool = True
    relationship: bool = False  # an open care relationship between this PS and the person
    engagement: EngagementFacts | None = None  # None: no engagement has the number quoted
    pec: PecRef | None = None  # None: no PEC has the number quoted (or none quoted)
    deadline_days: int = 730
    duplicates: frozenset[int] = frozenset()  # lines whose care was already accepted
    consumption: Mapping[CareDomain, Consumption] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class LineDecision:
    accepted: bool
    amo: Money
    amc: Money
    patient: Money
    reasons: tuple[Reason, ...]


@dataclass(frozen=True, slots=True)
class InvoiceDecision:
    status: InvoiceStatus
    lines: tuple[LineDecision, ...]

    @property
    def amc(self) -> Money:
        return Money(sum(d.amc.cents for d in self.lines))

    @property
    def amo(self) -> Money:
        return Money(sum(d.amo.cents for d in self.lines))

    @property
    def patient(self) -> Money:
        return Money(sum(d.patient.cents for d in self.lines))


def _reject(line: ClaimLine, code: Code) -> LineDecision:
    amo = min(line.amo_amount, line.expense)
    return LineDecision(False, amo, ZERO, line.expense - amo, (Reason(code),))


def _invoice_problem(claim: Claim, facts: Facts) -> Code | None:
    if claim.care_date > claim.received_on:
        return Code.R14
    if facts.right is None or not facts.relationship:
        # an unknown card and a person this PS does not serve get the same answer: intake has
        # no quota, so an R03 would tell a prober which cards exist (DESIGN §2, "not yours")
        return Code.R15
    if (claim.received_on - claim.care_date).days > facts.deadline_days:
        return Code.R11
    if not facts.right.open_on(claim.care_date):
        return Code.R04
    if claim.pec_number is not None:  # a PEC stands for the engagement
        p = facts.pec
        if p is None:
            return Code.R06
        if not (p.same_structure and p.same_beneficiary):
            return Code.R16
        if not p.granted or claim.care_date > p.valid_until:
            return Code.R07
        return None
    e = facts.engagement
    if claim.engagement_number is None or e is None:
        return Code.R06
    if not (e.same_structure and e.same_beneficiary):
        return Code.R16
    if e.revoked or not (e.care_date <= claim.care_date <= e.valid_until):
        return Code.R07
    return None


def _code_valid(line: ClaimLine) -> bool:
    if line.code_system not in CODE_SYSTEMS[line.domain]:
        return False
    return line.code_system is not CodeSystem.CIP13 or ean.is_valid(line.code)


def _line_problem(i: int, line: ClaimLine, claim: Claim, facts: Facts) -> Code | None:
    covered_by = facts.pec if claim.pec_number is not None else facts.engagement
    assert covered_by is not None
    if line.domain is not covered_by.domain:
        return Code.R06
    if not _code_valid(line):
        return Code.R12
    if line.amo_amount > line.expense:
        return Code.R14
    base = min(line.brss * line.quantity, line.expense)
    if abs((line.amo_amount - pct(base, line.amo_rate)).cents) > line.quantity:
        return Code.R09  # beyond a cent of rounding per unit
    if i in facts.duplicates:
        return Code.R10
    return None


def adjudicate(claim: Claim, facts: Facts) -> InvoiceDecision:
    problem = _invoice_problem(claim, facts)
    if problem is not None:
        return InvoiceDecision(
            InvoiceStatus.REJECTED, tuple(_reject(line, problem) for line in claim.lines)
        )
    decided: dict[int, LineDecision] = {}
    for i, line in enumerate(claim.lines):
        code = _line_problem(i, line, claim, facts)
        if code is not None:
            decided[i] = _reject(line, code)
    payable = [i for i in range(len(claim.lines)) if i not in decided]
    calc = compute(
        [to_line(claim.lines[i], claim.care_date) for i in payable],
        facts.guarantees,
        consumption=facts.consumption,
        age_years=claim.age_years,
        responsible=facts.responsible,
    )
    for i, result in zip(payable, calc.lines, strict=True):
        line = claim.lines[i]
        codes = result.codes
        if Rule.NOT_COVERED in codes:
            decided[i] = _reject(line, Code.R04)
        elif Rule.EXCLUDED_15PCT_DRUG in codes:
            decided[i] = _reject(line, Code.R05)
        else:
            paid = min(result.amc, line.amc_claimed)
            over = line.amc_claimed > result.amc  # paid less than claimed: say why
            reasons = (Reason(Code.R08, Kind.SIGNALEMENT),) if over else ()
            decided[i] = LineDecision(
                True, result.amo, paid, result.expense - result.amo - paid, reasons
            )
    if claim.pec_number is not None and facts.pec is not None:
        _within_pec(decided, facts.pec.amc)
    lines = tuple(decided[i] for i in range(len(claim.lines)))
    status = InvoiceStatus.ACCEPTED if any(d.accepted for d in lines) else InvoiceStatus.REJECTED
    return InvoiceDecision(status, lines)


def _within_pec(decided: dict[int, LineDecision], amc: Money) -> None:
    """Never pay above the PEC: its amount is spent line by line, in order (R08 where cut)."""
    left = amc.cents
    for i in sorted(decided):
        d = decided[i]
        if not d.accepted:
            continue
        paid = min(d.amc.cents, left)
        left -= paid
        if paid < d.amc.cents:
            signal = Reason(Code.R08, Kind.SIGNALEMENT)
            reasons = d.reasons if signal in d.reasons else (*d.reasons, signal)
            decided[i] = LineDecision(
                True, d.amo, Money(paid), d.patient + Money(d.amc.cents - paid), reasons
            )


def to_line(line: ClaimLine, care_date: date) -> Line:
    return Line(
        line.code_system,
        line.code,
        line.quantity,
        line.unit_price,
        line.brss,
        line.amo_rate,
        line.domain,
        care_date,
        amo_amount=line.amo_amount,
        sante_class=line.sante_class,
        optic_kind=line.optic_kind,
        equipment=line.equipment,
        side=line.side,
        plv=line.plv,
    )


# -- from the stored body (canonical JSON, validated for form at intake) -----------------------

# the calculation's names for the fields whose invoice name differs
_CALC_FIELD = {"amo_rate_pct": "amo_rate"}


def age_on(birth: date, day: date) -> int:
    """
    >>> age_on(date(2006, 12, 2), date(2026, 12, 1)), age_on(date(2006, 12, 2), date(2026, 12, 2))
    (19, 20)
    """
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def _money(value: str | None) -> Money | None:
    return Money.parse(value) if value is not None else None


def claim_line(doc: Mapping[str, Any]) -> ClaimLine:
    def opt(name: str, kind: Any) -> Any:
        value = doc.get(name)
        return kind(value) if value is not None else None

    return ClaimLine(
        CareDomain(doc["domain"]),
        CodeSystem(doc["code_system"]),
        doc["code"],
        doc["quantity"],
        Money.parse(doc["unit_price"]),
        Money.parse(doc["brss"]),
        doc["amo_rate"],
        Money.parse(doc["amo_amount"]),
        Money.parse(doc["amc_amount_claimed"]),
        sante_class=opt("sante_class", SanteClass),
        optic_kind=opt("optic_kind", OpticKind),
        equipment=doc.get("equipment"),
        side=opt("side", Side),
        plv=_money(doc.get("plv")),
    )


def claim_from_doc(doc: Mapping[str, Any], received_on: date) -> Claim:
    care_date = date.fromisoformat(doc["care_date"])
    birth = date.fromisoformat(doc["beneficiary"]["birth_date"])
    return Claim(
        care_date,
        doc.get("engagement_number"),
        doc.get("pec_number"),
        tuple(claim_line(line) for line in doc["lines"]),
        received_on,
        age_years=age_on(birth, care_date) if birth <= care_date else None,
    )


def form_problems(claim: Claim) -> list[FieldError]:
    """The calculation's input checks on the invoice's lines, in the invoice's field names."""
    return request_problems([to_line(line, claim.care_date) for line in claim.lines])


def request_problems(lines: Sequence[Line]) -> list[FieldError]:
    """The calculation's input checks, each naming the field as the request names it
    (``lines.0.amo_rate``, not the engine's ``amo_rate_pct``)."""
    out = []
    for p in input_problems(lines):
        head, _, name = p.field.rpartition(".")
        out.append(FieldError(f"{head}.{_CALC_FIELD.get(name, name)}", p.reason))
    return out


# -- AMC already consumed, for the year and renewal-period caps --------------------------------

# Renewal periods in years (DOMAIN.md §5: optics every two years for adults, hearing aids four);
# elsewhere a guarantee's "renewal" period is the year.
RENEWAL_YEARS: Mapping[CareDomain, int] = {CareDomain.OPTI: 2, CareDomain.AUDI: 4}
RENEWAL_YEARS_MAX = max(RENEWAL_YEARS.values())


def years_before(day: date, years: int) -> date:
    """
    >>> years_before(date(2028, 2, 29), 2)
    datetime.date(2026, 2, 28)
    """
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February
        return day.replace(year=day.year - years, day=28)


def consumption(
    care_date: date, history: Sequence[tuple[CareDomain, date, int]]
) -> dict[CareDomain, Consumption]:
    """The AMC already paid per domain in the care date's calendar year and in the renewal
    period ending on it, from (domain, care date, AMC cents) of accepted lines.

    >>> h = [(CareDomain.OPTI, date(2025, 3, 1), 10000), (CareDomain.OPTI, date(2026, 1, 5), 5000)]
    >>> c = consumption(date(2026, 6, 1), h)[CareDomain.OPTI]
    >>> c.year.cents, c.renewal.cents
    (5000, 15000)
    """
    year: dict[CareDomain, int] = {}
    renewal: dict[CareDomain, int] = {}
    for domain, day, cents in history:
        if day.year == care_date.year:
            year[domain] = year.get(domain, 0) + cents
        start = years_before(care_date, RENEWAL_YEARS.get(domain, 1))
        if start < day <= care_date:
            renewal[domain] = renewal.get(domain, 0) + cents
    return {
        d: Consumption(Money(year.get(d, 0)), Money(renewal.get(d, 0)))
        for d in year.keys() | renewal.keys()
    }


def calculation_line(doc: Mapping[str, Any], care_date: date) -> Line:
    """A line of a simulation (``POST /api/v1/calculations``): an invoice line whose AMO part
    is optional (computed from the rate when absent) and with nothing claimed."""
    amo = doc.get("amo_amount")
    full = {**doc, "amo_amount": amo or "0.00", "amc_amount_claimed": "0.00"}
    line = to_line(claim_line(full), care_date)
    return line if amo is not None else replace(line, amo_amount=None)
