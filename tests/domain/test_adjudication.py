"""Adjudication as a pure function: each control gives its own code, amounts add up, and the
published code table agrees with the code."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rempart.domain.adjudication import (
    TRANSITIONS,
    Claim,
    ClaimLine,
    EngagementFacts,
    Facts,
    InvoiceStatus,
    adjudicate,
    consumption,
    may_move,
)
from rempart.domain.calculation import CodeSystem, Consumption
from rempart.domain.care import CareDomain
from rempart.domain.coverage import Formula, Guarantee, Period
from rempart.domain.money import Money
from rempart.domain.reasons import LABELS, Code, Kind, Reason
from rempart.domain.rights import Right

DOC = Path(__file__).resolve().parents[2] / "docs" / "formats" / "rejection-codes.md"
CARE = date(2026, 12, 1)
DRUG = ClaimLine(
    CareDomain.PHAR,
    CodeSystem.CIP13,
    "3400930000014",
    1,
    Money(1000),
    Money(1000),
    65,
    Money(650),
    Money(350),
)
TM = Guarantee(CareDomain.PHAR, Formula.TICKET_MODERATEUR)
ENGAGED = EngagementFacts(True, True, CareDomain.PHAR, CARE, date(2026, 12, 15), False)
FACTS = Facts(Right(date(2026, 1, 1), None), (TM,), relationship=True, engagement=ENGAGED)


def claim(*lines: ClaimLine, **over: object) -> Claim:
    c = Claim(CARE, "E1", None, lines or (DRUG,), date(2026, 12, 2))
    return replace(c, **over)  # type: ignore[arg-type]


def codes(c: Claim, f: Facts) -> list[list[str]]:
    return [[r.code.value for r in d.reasons] for d in adjudicate(c, f).lines]


def test_a_clean_invoice_is_accepted_at_the_computed_parts() -> None:
    d = adjudicate(claim(), FACTS)
    assert d.status is InvoiceStatus.ACCEPTED
    [ln] = d.lines
    assert (ln.accepted, ln.amo.cents, ln.amc.cents, ln.patient.cents, ln.reasons) == (
        True,
        650,
        350,
        0,
        (),
    )


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"right": None}, "R15"),  # unknown: the same answer as not served
        ({"relationship": False}, "R15"),
        ({"right": Right(date(2026, 1, 1), date(2026, 11, 30))}, "R04"),
        ({"engagement": None}, "R06"),
        ({"engagement": replace(ENGAGED, same_structure=False)}, "R16"),
        ({"engagement": replace(ENGAGED, same_beneficiary=False)}, "R16"),
        ({"engagement": replace(ENGAGED, revoked=True)}, "R07"),
        ({"engagement": replace(ENGAGED, valid_until=date(2026, 11, 30))}, "R07"),
        ({"engagement": replace(ENGAGED, care_date=date(2026, 12, 2))}, "R07"),
        ({"deadline_days": 0}, "R11"),
        ({"duplicates": frozenset({0})}, "R10"),
        ({"guarantees": ()}, "R04"),
        ({"engagement": replace(ENGAGED, domain=CareDomain.OPTI)}, "R06"),
    ],
)
def test_each_failed_control_rejects_with_its_code(change: dict[str, object], code: str) -> None:
    d = adjudicate(claim(), replace(FACTS, **change))  # type: ignore[arg-type]
    assert d.status is InvoiceStatus.REJECTED
    assert [[r.code.value for r in ln.reasons] for ln in d.lines] == [[code]]
    assert d.amc.cents == 0
    assert d.lines[0].patient.cents == 350  # the remainder, AMO left as sent


@pytest.mark.parametrize(
    ("line", "code"),
    [
        (replace(DRUG, code="3400930000015"), "R12"),  # CIP13 check digit
        (replace(DRUG, code_system=CodeSystem.CCAM, code="HBLD001"), "R12"),  # not a PHAR code
        (replace(DRUG, amo_amount=Money(700)), "R09"),
        (replace(DRUG, amo_amount=Money(1200)), "R14"),
        (replace(DRUG, amo_rate=15, amo_amount=Money(150), amc_claimed=Money(850)), "R05"),
    ],
)
def test_a_line_level_problem_rejects_that_line_only(line: ClaimLine, code: str) -> None:
    other = replace(DRUG, code="3400930000021", unit_price=Money(2000), brss=Money(2000))
    other = replace(other, amo_amount=Money(1300), amc_claimed=Money(700))
    d = adjudicate(claim(line, other), FACTS)
    assert d.status is InvoiceStatus.ACCEPTED
    assert codes(claim(line, other), FACTS) == [[code], []]
    assert [ln.accepted for ln in d.lines] == [False, True]


def test_care_after_reception_is_r14_and_a_late_invoice_r11() -> None:
    assert codes(claim(care_date=date(2026, 12, 3)), FACTS) == [["R14"]]
    late = claim(received_on=date(2028, 12, 2))
    assert codes(late, replace(FACTS, deadline_days=730)) == [["R11"]]


def test_claiming_more_than_computed_is_paid_at_the_computed_part_with_a_signalement() -> None:
    greedy = replace(DRUG, amc_claimed=Money(900))
    [ln] = adjudicate(claim(greedy), FACTS).lines
    assert (ln.accepted, ln.amc.cents, ln.patient.cents) == (True, 350, 0)
    assert ln.reasons == (Reason(Code.R08, Kind.SIGNALEMENT),)
    modest = replace(DRUG, amc_claimed=Money(300))  # never more than claimed, no reason
    [ln] = adjudicate(claim(modest), FACTS).lines
    assert (ln.amc.cents, ln.patient.cents, ln.reasons) == (300, 50, ())


def test_a_year_cap_counts_what_was_already_paid() -> None:
    capped = Guarantee(
        CareDomain.PHAR, Formula.TICKET_MODERATEUR, ceiling_amount=Money(500), period=Period.YEAR
    )
    facts = replace(
        FACTS,
        guarantees=(capped,),
        consumption={CareDomain.PHAR: Consumption(year=Money(300))},
    )
    [ln] = adjudicate(claim(), facts).lines
    assert (ln.amc.cents, ln.patient.cents) == (200, 150)
    assert [r.code for r in ln.reasons] == [Code.R08]


@settings(max_examples=300, deadline=None)
@given(
    price=st.integers(1, 100_000),
    brss=st.integers(0, 100_000),
    rate=st.sampled_from([0, 30, 60, 65, 70, 100]),
    claimed=st.integers(0, 200_000),
    quantity=st.integers(1, 5),
)
def test_parts_add_up_and_are_never_negative(
    price: int, brss: int, rate: int, claimed: int, quantity: int
) -> None:
    base = min(brss * quantity, price * quantity)
    amo = (base * rate * 2 + 100) // 200  # half-up
    line = replace(
        DRUG,
        quantity=quantity,
        unit_price=Money(price),
        brss=Money(brss),
        amo_rate=rate,
        amo_amount=Money(amo),
        amc_claimed=Money(claimed),
    )
    for ln in adjudicate(claim(line), FACTS).lines:
        assert ln.amo.cents + ln.amc.cents + ln.patient.cents == price * quantity
        assert min(ln.amo.cents, ln.amc.cents, ln.patient.cents) >= 0
        assert ln.amc.cents <= claimed


def test_consumption_sums_the_year_and_the_renewal_period() -> None:
    history = [
        (CareDomain.OPTI, date(2024, 12, 2), 1000),  # renewal started 2024-12-01: in
        (CareDomain.OPTI, date(2024, 11, 30), 2000),  # before it: out
        (CareDomain.OPTI, date(2026, 3, 1), 400),
        (CareDomain.PHAR, date(2026, 2, 1), 70),
        (CareDomain.PHAR, date(2025, 12, 31), 90),  # another year, within the one-year period
    ]
    got = consumption(CARE, history)
    assert got[CareDomain.OPTI] == Consumption(Money(400), Money(1400))
    assert got[CareDomain.PHAR] == Consumption(Money(70), Money(160))


def test_status_moves_only_along_the_table() -> None:
    assert may_move(InvoiceStatus.RECEIVED, InvoiceStatus.ACCEPTED)
    assert not may_move(InvoiceStatus.REJECTED, InvoiceStatus.ACCEPTED)
    assert not may_move(InvoiceStatus.CANCELLED, InvoiceStatus.RECEIVED)
    assert TRANSITIONS[InvoiceStatus.PAID] == {InvoiceStatus.ACCEPTED}  # a returned transfer
    assert set(TRANSITIONS) == set(InvoiceStatus)


def test_the_published_code_table_is_the_codes_table() -> None:
    rows = re.findall(r"^\| (R\d\d) \| ([^|]+) \| (\w+) \|", DOC.read_text(), re.M)
    assert [(c, label.strip()) for c, label, _ in rows] == [
        (c.value, label) for c, label in LABELS.items()
    ]
    assert {c for c, _, kind in rows if kind == "signalement"} == {"R08"}
