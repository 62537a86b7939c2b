from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rempart.domain.care import PROFESSION_DOMAINS, CareDomain, Profession, may_check
from rempart.domain.coverage import Contract, Formula, Guarantee, Period
from rempart.domain.money import Money
from rempart.domain.rights import Right, Status, care_date_problem, decide

PHAR = Guarantee(CareDomain.PHAR, Formula.PCT_BRSS, rate_pct=100)
OPTI_2025 = Guarantee(
    CareDomain.OPTI,
    Formula.FLAT,
    flat_amount=Money(10000),
    period=Period.RENEWAL,
    valid_from=date(2025, 1, 1),
    valid_to=date(2025, 12, 31),
)
OPTI_2026 = Guarantee(
    CareDomain.OPTI,
    Formula.FLAT,
    flat_amount=Money(25000),
    period=Period.RENEWAL,
    valid_from=date(2026, 1, 1),
    valid_to=date(2026, 12, 31),
)
CONTRACT = Contract(
    "CONF",
    "Confort",
    (PHAR, OPTI_2025, OPTI_2026),
    valid_from=date(2024, 1, 1),
    valid_to=date(2027, 6, 30),
)
OPEN = Right(date(2024, 1, 1), None)


def test_guarantee_for_picks_the_one_in_force() -> None:
    assert CONTRACT.guarantee_for(CareDomain.OPTI, date(2025, 6, 1)) is OPTI_2025
    assert CONTRACT.guarantee_for(CareDomain.OPTI, date(2026, 6, 1)) is OPTI_2026
    assert CONTRACT.guarantee_for(CareDomain.DENT, date(2026, 6, 1)) is None
    assert (
        CONTRACT.guarantee_for(CareDomain.PHAR, date(2023, 12, 31)) is None
    )  # before the contract


def test_labels_are_french() -> None:
    assert PHAR.label == "100 % de la base de remboursement"
    assert OPTI_2026.label == "Forfait de 250,00\u00a0€ par période"
    capped = Guarantee(
        CareDomain.DENT,
        Formula.PCT_PRICE,
        rate_pct=80,
        ceiling_amount=Money(50000),
        period=Period.YEAR,
    )
    assert capped.label == "80 % du prix facturé, plafonné à 500,00\u00a0€ par an"


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"formula": Formula.PCT_BRSS}, "taux"),
        ({"formula": Formula.PCT_BRSS, "rate_pct": 1001}, "taux"),
        ({"formula": Formula.FLAT}, "forfait"),
        ({"formula": Formula.FLAT, "flat_amount": Money(-1)}, "forfait"),
        (
            {
                "formula": Formula.TICKET_MODERATEUR,
                "valid_from": date(2026, 2, 1),
                "valid_to": date(2026, 1, 1),
            },
            "inversée",
        ),
    ],
)
def test_guarantee_rejects_nonsense(kwargs: dict[str, object], reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        Guarantee(CareDomain.PHAR, **kwargs)  # type: ignore[arg-type]


CARE = date(2026, 12, 1)


@pytest.mark.parametrize(
    ("right", "contract", "domain", "status", "until"),
    [
        (None, None, CareDomain.PHAR, Status.UNKNOWN, None),
        (OPEN, CONTRACT, CareDomain.PHAR, Status.COVERED, date(2026, 12, 16)),
        (OPEN, CONTRACT, CareDomain.OPTI, Status.COVERED, date(2026, 12, 16)),
        (OPEN, CONTRACT, CareDomain.DENT, Status.NOT_COVERED, None),  # domain not in the grid
        (
            Right(date(2024, 1, 1), date(2026, 11, 30)),
            CONTRACT,
            CareDomain.PHAR,
            Status.NOT_COVERED,
            None,
        ),
        (Right(date(2026, 12, 2), None), CONTRACT, CareDomain.PHAR, Status.NOT_COVERED, None),
        # the engagement never outlives the right, the guarantee or the contract
        (
            Right(date(2024, 1, 1), date(2026, 12, 5)),
            CONTRACT,
            CareDomain.PHAR,
            Status.COVERED,
            date(2026, 12, 5),
        ),
    ],
)
def test_decide(
    right: Right | None,
    contract: Contract | None,
    domain: CareDomain,
    status: Status,
    until: date | None,
) -> None:
    d = decide(right, contract, domain, CARE, engagement_days=15)
    assert d.status is status
    assert d.valid_until == until
    assert (d.guarantee is not None) == (status is Status.COVERED)


def test_engagement_capped_by_guarantee_end() -> None:
    d = decide(OPEN, CONTRACT, CareDomain.OPTI, date(2026, 12, 28), engagement_days=15)
    assert d.valid_until == date(2026, 12, 31)


@pytest.mark.parametrize(
    ("care", "problem"),
    [
        (date(2026, 12, 2), None),
        (date(2026, 12, 3), None),
        (date(2026, 12, 4), "futur"),
        (date(2024, 12, 2), None),
        (date(2024, 12, 1), "730 jours"),
    ],
)
def test_care_date_window(care: date, problem: str | None) -> None:
    found = care_date_problem(care, date(2026, 12, 2), past_days_max=730)
    assert (found is None) if problem is None else (problem in (found or ""))


def test_every_profession_checks_at_least_one_domain_and_pharmacy_only_phar() -> None:
    assert all(PROFESSION_DOMAINS[p] for p in Profession)
    assert PROFESSION_DOMAINS[Profession.PHARMACY] == {CareDomain.PHAR}
    assert not may_check(Profession.OPTICIAN, CareDomain.PHAR)


days = st.integers(0, 3000).map(lambda n: date(2022, 1, 1) + timedelta(days=n))


@given(
    start=days,
    length=st.one_of(st.none(), st.integers(0, 1500)),
    care=days,
    g_start=days,
    g_length=st.integers(0, 1500),
    window=st.integers(0, 60),
    domain=st.sampled_from(list(CareDomain)),
)
def test_decide_properties(
    start: date,
    length: int | None,
    care: date,
    g_start: date,
    g_length: int,
    window: int,
    domain: CareDomain,
) -> None:
    right = Right(start, None if length is None else start + timedelta(days=length))
    g = Guarantee(
        CareDomain.PHAR,
        Formula.PCT_BRSS,
        rate_pct=100,
        valid_from=g_start,
        valid_to=g_start + timedelta(days=g_length),
    )
    contract = Contract("C", "C", (g,))
    d = decide(right, contract, domain, care, engagement_days=window)
    in_force = right.open_on(care) and domain is CareDomain.PHAR and g.applies_on(care)
    assert (d.status is Status.COVERED) == in_force
    assert d.status is not Status.UNKNOWN
    if d.status is Status.COVERED:
        assert d.valid_until is not None
        assert care <= d.valid_until <= care + timedelta(days=window)
        assert d.valid_until <= g.valid_to
        assert right.valid_to is None or d.valid_until <= right.valid_to
    else:
        assert d.valid_until is None and d.guarantee is None
    assert decide(None, contract, domain, care, engagement_days=window).status is Status.UNKNOWN
