from collections.abc import Sequence
from dataclasses import replace
from datetime import date
from typing import Any, TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rempart.domain.calculation import (
    AUDIO_II_CAP,
    OPTIQUE_B_FRAME_CAP,
    OPTIQUE_B_PAIR_CAP,
    Calculation,
    CodeSystem,
    Consumption,
    InvalidLines,
    Line,
    LineResult,
    OpticKind,
    Rule,
    SanteClass,
    Side,
    compute,
)
from rempart.domain.care import CareDomain
from rempart.domain.coverage import Formula, Guarantee, Period
from rempart.domain.errors import InvalidFields
from rempart.domain.money import Money, pct

DAY = date(2026, 3, 2)
PHAR_100 = Guarantee(CareDomain.PHAR, Formula.PCT_BRSS, rate_pct=100)


def line(
    price: int,
    br: int,
    rate: int,
    domain: CareDomain = CareDomain.PHAR,
    system: CodeSystem = CodeSystem.CIP13,
    quantity: int = 1,
    **kw: Any,
) -> Line:
    return Line(system, "3400900000013", quantity, Money(price), Money(br), rate, domain, DAY, **kw)


def parts(c: Calculation) -> list[tuple[int, int, int]]:
    return [(r.amo.cents, r.amc.cents, r.patient.cents) for r in c.lines]


# -- DOMAIN.md §7 worked examples, to the cent -------------------------------------------------


def test_example_a_pharmacy_phar_100() -> None:
    c = compute(
        [line(1200, 1200, 65), line(1200, 900, 65), line(245, 245, 30), line(499, 499, 15)],
        [PHAR_100],
    )
    assert parts(c) == [(780, 420, 0), (585, 315, 300), (74, 171, 0), (75, 0, 424)]
    assert Rule.EXCLUDED_15PCT_DRUG in c.lines[3].codes and not c.lines[3].capped
    assert c.lines[1].capped and Rule.CAP_LINE in c.lines[1].codes  # TFR: R08 signalement
    assert not c.lines[0].capped and not c.lines[2].capped
    assert (c.expense, c.amo, c.amc, c.patient) == (
        Money(3144),
        Money(1514),
        Money(906),
        Money(724),
    )


@pytest.mark.parametrize(("rate", "amc", "patient"), [(200, 2900, 0), (150, 2400, 500)])
def test_example_b_consultation_with_depassement(rate: int, amc: int, patient: int) -> None:
    g = Guarantee(CareDomain.MED, Formula.PCT_BRSS, rate_pct=rate)
    c = compute([line(5000, 3000, 70, CareDomain.MED, CodeSystem.NGAP)], [g])
    assert parts(c) == [(2100, amc, patient)]
    assert c.lines[0].capped is (patient > 0)


OPTI_FLAT_300 = Guarantee(
    CareDomain.OPTI, Formula.FLAT, flat_amount=Money(30000), period=Period.RENEWAL
)
OPTI_FLAT_500 = replace(OPTI_FLAT_300, flat_amount=Money(50000))


def test_example_c_class_a_frame_rac_zero_whatever_the_forfait() -> None:
    frame = line(
        3000,
        900,
        60,
        CareDomain.OPTI,
        CodeSystem.LPP,
        sante_class=SanteClass.OPTIQUE_A,
        optic_kind=OpticKind.FRAME,
        plv=Money(3000),
    )
    tiny = replace(OPTI_FLAT_300, flat_amount=Money(1000))
    c = compute([frame], [tiny], consumption={CareDomain.OPTI: Consumption(renewal=Money(5000))})
    assert parts(c) == [(540, 2460, 0)]
    assert Rule.RAC_ZERO_100_SANTE in c.lines[0].codes and not c.lines[0].capped


def class_b(kind: OpticKind, price: int, equipment: str = "E1", **kw: Any) -> Line:
    return line(
        price,
        5,
        60,
        CareDomain.OPTI,
        CodeSystem.LPP,
        sante_class=SanteClass.OPTIQUE_B,
        optic_kind=kind,
        equipment=equipment,
        **kw,
    )


def equipment_b() -> list[Line]:
    # the frame comes first in the input but is allocated after the lenses
    return [
        class_b(OpticKind.FRAME, 15000),
        class_b(OpticKind.LENS_SIMPLE, 12000, side=Side.RIGHT),
        class_b(OpticKind.LENS_SIMPLE, 12000, side=Side.LEFT),
    ]


def test_example_c_class_b_forfait_300() -> None:
    c = compute(equipment_b(), [OPTI_FLAT_300])
    assert parts(c) == [(3, 6006, 8991), (3, 11997, 0), (3, 11997, 0)]
    assert c.amc == Money(30000)
    assert c.lines[0].codes[-1] is Rule.CAP_RENEWAL and c.lines[0].capped


def test_example_c_class_b_forfait_500_frame_cap_binds() -> None:
    c = compute(equipment_b(), [OPTI_FLAT_500])
    assert parts(c) == [(3, 9997, 5000), (3, 11997, 0), (3, 11997, 0)]
    assert (c.amc, c.patient) == (Money(33991), Money(5000))
    assert c.lines[0].codes[-1] is Rule.CAP_OPTIQUE_B_FRAME


AUDI_TM = Guarantee(CareDomain.AUDI, Formula.TICKET_MODERATEUR)


def audio(klass: SanteClass, price: int, **kw: Any) -> Line:
    return line(price, 40000, 60, CareDomain.AUDI, CodeSystem.LPP, sante_class=klass, **kw)


def test_example_d_audio_class_i() -> None:
    c = compute([audio(SanteClass.AUDIO_I, 95000, side=Side.RIGHT)], [AUDI_TM], age_years=45)
    assert parts(c) == [(24000, 71000, 0)]


# -- guarantees and periods --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("guarantee", "amc"),
    [
        (Guarantee(CareDomain.MED, Formula.PCT_BRSS_EXCL_AMO, rate_pct=50), 1500),
        (Guarantee(CareDomain.MED, Formula.TICKET_MODERATEUR), 900),
        (Guarantee(CareDomain.MED, Formula.PCT_PRICE, rate_pct=90), 2400),
        (Guarantee(CareDomain.MED, Formula.PCT_PRICE, rate_pct=100), 2900),
        (Guarantee(CareDomain.MED, Formula.FLAT, flat_amount=Money(1000)), 1000),
        (Guarantee(CareDomain.MED, Formula.PCT_BRSS, rate_pct=50), 0),  # below the AMO part
    ],
)
def test_formulas(guarantee: Guarantee, amc: int) -> None:
    c = compute([line(5000, 3000, 70, CareDomain.MED, CodeSystem.NGAP)], [guarantee])
    assert parts(c) == [(2100, amc, 2900 - amc)]
    assert c.lines[0].capped is (amc < 2900)


def test_flat_per_line_counts_per_unit() -> None:
    g = Guarantee(CareDomain.AUXM, Formula.FLAT, flat_amount=Money(1000))
    c = compute([line(3000, 0, 0, CareDomain.AUXM, CodeSystem.NGAP, quantity=3)], [g])
    assert parts(c) == [(0, 3000, 6000)]


def year_capped(ceiling: int) -> Guarantee:
    return Guarantee(
        CareDomain.DENT,
        Formula.PCT_PRICE,
        rate_pct=100,
        ceiling_amount=Money(ceiling),
        period=Period.YEAR,
    )


def dental(price: int, **kw: Any) -> Line:
    return line(price, 0, 0, CareDomain.DENT, CodeSystem.CCAM, **kw)


def test_year_ceiling_shared_by_the_lines_of_a_call_and_minus_consumption() -> None:
    used = {CareDomain.DENT: Consumption(year=Money(20000))}
    c = compute([dental(40000), dental(40000)], [year_capped(50000)], consumption=used)
    assert parts(c) == [(0, 30000, 10000), (0, 0, 40000)]
    assert all(r.capped and r.codes[-1] is Rule.CAP_YEAR for r in c.lines)


def test_consumption_exhausted_gives_amc_zero() -> None:
    used = {CareDomain.DENT: Consumption(year=Money(60000))}
    c = compute([dental(40000)], [year_capped(50000)], consumption=used)
    assert parts(c) == [(0, 0, 40000)] and c.lines[0].capped


def test_consumption_of_another_domain_or_period_does_not_count() -> None:
    used = {
        CareDomain.OPTI: Consumption(year=Money(60000)),
        CareDomain.DENT: Consumption(renewal=Money(60000)),
    }
    c = compute([dental(40000)], [year_capped(50000)], consumption=used)
    assert parts(c) == [(0, 40000, 0)] and not c.capped


def test_renewal_forfait_partly_used() -> None:
    used = {CareDomain.OPTI: Consumption(year=Money(0), renewal=Money(25000))}
    c = compute(
        [line(20000, 5, 60, CareDomain.OPTI, CodeSystem.LPP)], [OPTI_FLAT_300], consumption=used
    )
    assert parts(c) == [(3, 5000, 14997)] and c.lines[0].codes[-1] is Rule.CAP_RENEWAL


def test_not_covered_without_guarantee_in_force() -> None:
    later = Guarantee(CareDomain.PHAR, Formula.PCT_BRSS, rate_pct=100, valid_from=date(2027, 1, 1))
    other = Guarantee(CareDomain.OPTI, Formula.PCT_BRSS, rate_pct=100)
    c = compute([line(1200, 1200, 65)], [later, other])
    assert parts(c) == [(780, 0, 420)]
    assert c.lines[0].codes == (Rule.AMO_COMPUTED, Rule.NOT_COVERED) and not c.capped


def test_latest_starting_guarantee_wins() -> None:
    amended = Guarantee(CareDomain.MED, Formula.PCT_BRSS, rate_pct=200, valid_from=date(2026, 1, 1))
    base = Guarantee(CareDomain.MED, Formula.PCT_BRSS, rate_pct=100)
    c = compute([line(5000, 3000, 70, CareDomain.MED, CodeSystem.NGAP)], [amended, base])
    assert parts(c) == [(2100, 2900, 0)]


def test_amo_amount_given_is_used_as_is() -> None:
    c = compute([line(1200, 1200, 65, amo_amount=Money(1000))], [PHAR_100])
    assert parts(c) == [(1000, 200, 0)] and c.lines[0].codes[0] is Rule.AMO_GIVEN


def test_base_limited_to_the_expense() -> None:
    c = compute([line(800, 1000, 65, CareDomain.PHAR, CodeSystem.LPP)], [PHAR_100])
    assert parts(c) == [(520, 280, 0)] and Rule.BASE_LIMITED in c.lines[0].codes
    assert c.lines[0].base == Money(800)


def test_15pct_lpp_is_not_a_drug_exclusion() -> None:
    c = compute([line(499, 499, 15, system=CodeSystem.LPP)], [PHAR_100])
    assert parts(c) == [(75, 424, 0)]


def test_trace_labels_are_french() -> None:
    r = compute([line(1200, 900, 65)], [PHAR_100]).lines[0]
    assert [s.label for s in r.trace] == [
        "Part AMO : 65 % de 9,00\u00a0€",
        "100 % de la base de remboursement",
        "Plafond de la garantie par acte atteint",
    ]


# -- 100 % Santé -------------------------------------------------------------------------------


def test_class_b_mixed_pair_gets_the_mean_of_the_caps() -> None:
    eq = [
        class_b(OpticKind.LENS_SIMPLE, 40000),
        class_b(OpticKind.LENS_COMPLEX, 40000),
        class_b(OpticKind.FRAME, 5000),
    ]
    rich = replace(OPTI_FLAT_300, flat_amount=Money(200000))
    c = compute(eq, [rich])
    assert sum(r.amo.cents + r.amc.cents for r in c.lines) == 56000  # (420 + 700) / 2
    assert parts(c) == [(3, 39997, 0), (3, 15994, 24003), (3, 0, 4997)]
    assert c.lines[1].codes[-1] is Rule.CAP_OPTIQUE_B and c.lines[2].capped


def test_class_b_frame_alone_has_only_the_frame_cap() -> None:
    rich = replace(OPTI_FLAT_300, flat_amount=Money(200000))
    c = compute([class_b(OpticKind.FRAME, 25000)], [rich])
    assert parts(c) == [(3, 9997, 15000)]


def test_two_equipments_are_capped_apart_but_share_the_renewal_forfait() -> None:
    eqs = [class_b(OpticKind.LENS_SIMPLE, 30000, "E1"), class_b(OpticKind.LENS_SIMPLE, 30000, "E2")]
    c = compute(eqs, [OPTI_FLAT_300])
    assert parts(c) == [(3, 20997, 9000), (3, 9003, 20994)]
    assert c.lines[0].codes[-1] is Rule.CAP_OPTIQUE_B and c.lines[1].codes[-1] is Rule.CAP_RENEWAL


def test_non_responsible_contract_ignores_100_sante() -> None:
    rich = replace(OPTI_FLAT_300, flat_amount=Money(200000))
    c = compute([class_b(OpticKind.FRAME, 25000)], [rich], responsible=False)
    assert parts(c) == [(3, 24997, 0)]
    a = compute([audio(SanteClass.AUDIO_I, 95000)], [AUDI_TM], responsible=False)
    assert parts(a) == [(24000, 16000, 55000)]


@pytest.mark.parametrize(("age", "amc", "patient"), [(20, 116000, 0), (21, 71000, 45000)])
def test_audio_class_i_child_cap(age: int, amc: int, patient: int) -> None:
    c = compute([audio(SanteClass.AUDIO_I, 140000)], [AUDI_TM], age_years=age)
    assert parts(c) == [(24000, amc, patient)]
    assert c.lines[0].capped is (patient > 0)
    if patient:
        assert c.lines[0].codes[-1] is Rule.CAP_AUDIO_I


def test_audio_class_ii_cap_includes_amo() -> None:
    rich = Guarantee(CareDomain.AUDI, Formula.PCT_PRICE, rate_pct=100)
    c = compute([audio(SanteClass.AUDIO_II, 200000, quantity=1)], [rich])
    assert parts(c) == [(24000, 146000, 30000)] and c.lines[0].codes[-1] is Rule.CAP_AUDIO_II


@pytest.mark.parametrize(
    ("klass", "amc", "patient"),
    [(SanteClass.DENTAIRE_100, 50000, 0), (SanteClass.DENTAIRE_MAITRISE, 10000, 40000)],
)
def test_dental_classes(klass: SanteClass, amc: int, patient: int) -> None:
    g = Guarantee(CareDomain.DENT, Formula.FLAT, flat_amount=Money(10000))
    c = compute([dental(50000, sante_class=klass)], [g])
    assert parts(c) == [(0, amc, patient)]


def test_plv_caps_a_class_a_line() -> None:
    frame = line(
        4000,
        900,
        60,
        CareDomain.OPTI,
        CodeSystem.LPP,
        sante_class=SanteClass.OPTIQUE_A,
        plv=Money(3000),
    )
    c = compute([frame], [OPTI_FLAT_300])
    assert parts(c) == [(540, 2460, 1000)] and c.lines[0].codes[-1] is Rule.CAP_PLV


def test_rac_zero_lines_consume_the_allowance_of_later_lines() -> None:
    a = line(3000, 900, 60, CareDomain.OPTI, CodeSystem.LPP, sante_class=SanteClass.OPTIQUE_A)
    plain = line(30000, 5, 60, CareDomain.OPTI, CodeSystem.LPP)
    small = replace(OPTI_FLAT_300, flat_amount=Money(2000))
    c = compute([a, plain], [small])
    assert parts(c) == [(540, 2460, 0), (3, 0, 29997)]


# -- invalid input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field", "reason"),
    [
        ({"unit_price": Money(-1)}, "lines.0.unit_price", "négatif"),
        ({"quantity": 0}, "lines.0.quantity", "quantité"),
        ({"quantity": True}, "lines.0.quantity", "quantité"),
        ({"amo_rate_pct": 101}, "lines.0.amo_rate_pct", "taux AMO"),
        ({"brss": Money(10_000_001)}, "lines.0.brss", "supérieur"),
        ({"amo_amount": Money(1201)}, "lines.0.amo_amount", "part AMO"),
        ({"plv": Money(-5)}, "lines.0.plv", "négatif"),
        ({"code": " "}, "lines.0.code", "code"),
        ({"sante_class": SanteClass.OPTIQUE_A}, "lines.0.sante_class", "incompatible"),
        ({"equipment": "E1"}, "lines.0.equipment", "optique"),
    ],
)
def test_invalid_line(changes: dict[str, object], field: str, reason: str) -> None:
    bad = replace(line(1200, 1200, 65), **changes)  # type: ignore[arg-type]
    with pytest.raises(InvalidLines) as caught:
        compute([bad], [PHAR_100])
    assert isinstance(caught.value, ValueError) and isinstance(caught.value, InvalidFields)
    assert [e.field for e in caught.value.errors] == [field]
    assert reason in caught.value.errors[0].reason
    assert field in caught.value.message


def test_every_problem_is_reported_at_once() -> None:
    bad = [line(-1, 1200, 65), line(1200, 1200, 65, quantity=0), line(100, 100, 200)]
    with pytest.raises(InvalidLines) as caught:
        compute(bad, [PHAR_100], consumption={CareDomain.PHAR: Consumption(year=Money(-1))})
    assert [e.field for e in caught.value.errors] == [
        "lines.0.unit_price",
        "lines.1.quantity",
        "lines.2.amo_rate_pct",
        "consumption.PHAR.year",
    ]


def test_class_b_needs_a_kind_and_at_most_one_frame_two_lenses() -> None:
    no_kind = replace(class_b(OpticKind.FRAME, 100), optic_kind=None)
    with pytest.raises(InvalidLines, match=r"lines\.0\.optic_kind"):
        compute([no_kind], [OPTI_FLAT_300])
    no_equipment = replace(class_b(OpticKind.FRAME, 100), equipment=None)
    with pytest.raises(InvalidLines, match=r"lines\.0\.equipment"):
        compute([no_equipment], [OPTI_FLAT_300])
    two_frames = [class_b(OpticKind.FRAME, 100), class_b(OpticKind.FRAME, 100)]
    with pytest.raises(InvalidLines, match=r"lines\.1\.equipment"):
        compute(two_frames, [OPTI_FLAT_300])
    three_lenses = [
        class_b(OpticKind.LENS_SIMPLE, 100, quantity=2),
        class_b(OpticKind.LENS_COMPLEX, 100),
    ]
    with pytest.raises(InvalidLines, match=r"lines\.1\.equipment"):
        compute(three_lenses, [OPTI_FLAT_300])


@pytest.mark.parametrize("age", [None, -1, 131])
def test_audio_class_i_needs_a_plausible_age(age: int | None) -> None:
    with pytest.raises(InvalidLines, match="age_years"):
        compute([audio(SanteClass.AUDIO_I, 95000)], [AUDI_TM], age_years=age)


# -- properties --------------------------------------------------------------------------------
#
# Hypothesis spends about 0.3 ms per drawn value, so 10,000 examples of rich invoices drawn
# field by field take a minute. The core property therefore decodes a whole example (lines,
# guarantees, consumption, age) from one drawn integer: still shrinkable, since a smaller integer
# decodes to fewer lines and smaller choices, and 0 to a single all-zero line.

T = TypeVar("T")
DOMAINS = [CareDomain.PHAR, CareDomain.OPTI, CareDomain.AUDI, CareDomain.DENT]
CLASSES: dict[CareDomain, list[SanteClass | None]] = {
    CareDomain.PHAR: [None],
    CareDomain.OPTI: [None, SanteClass.OPTIQUE_A, SanteClass.OPTIQUE_B],
    CareDomain.AUDI: [None, SanteClass.AUDIO_I, SanteClass.AUDIO_II],
    CareDomain.DENT: [None, SanteClass.DENTAIRE_100, SanteClass.DENTAIRE_LIBRE],
}
RATES = [0, 15, 30, 60, 65, 70, 100]
SYSTEMS, KINDS, FORMULAS, PERIODS = list(CodeSystem), list(OpticKind), list(Formula), list(Period)
EQUIPMENTS = ["E1", "E2", None]
SPECIAL_CENTS = [0, 1, 5, 3000, 10000, 42000, 95000, 300_000]
RAC_ZERO = (SanteClass.OPTIQUE_A, SanteClass.AUDIO_I, SanteClass.DENTAIRE_100)


class Bits:
    def __init__(self, n: int) -> None:
        self.n = n

    def take(self, k: int) -> int:
        self.n, r = divmod(self.n, k)
        return r

    def pick(self, items: Sequence[T]) -> T:
        return items[self.take(len(items))]

    def cents(self) -> int:
        return self.pick(SPECIAL_CENTS) if self.take(4) == 0 else self.take(300_001)


def decode_generic_line(b: Bits) -> Line:
    domain = b.pick(DOMAINS)
    optic = domain is CareDomain.OPTI
    x = Line(
        b.pick(SYSTEMS),
        "X",
        1 + b.take(3),
        Money(b.cents()),
        Money(b.cents()),
        b.pick(RATES),
        domain,
        DAY,
        sante_class=b.pick(CLASSES[domain]),
        optic_kind=b.pick(KINDS) if optic else None,
        equipment=b.pick(EQUIPMENTS) if optic else None,
        plv=Money(b.cents()) if b.take(2) else None,
    )
    b_alone = x.sante_class is SanteClass.OPTIQUE_B and x.equipment is None
    return replace(x, equipment="E3") if b_alone else x


def decode_line(b: Bits) -> Line:
    x = decode_generic_line(b)
    given = b.take(4) == 0  # the AMO part sent by the AMO, anything up to the expense
    return replace(x, amo_amount=Money(b.take(x.expense.cents + 1))) if given else x


def fit_equipments(lines: list[Line]) -> list[Line]:
    """Take a line out of its equipment when it would hold a second frame or a third lens."""
    count: dict[tuple[str, bool], int] = {}
    fitted = []
    for x in lines:
        if x.equipment is not None:
            key = (x.equipment, x.optic_kind is OpticKind.FRAME)
            count[key] = count.get(key, 0) + x.quantity
            if count[key] > (1 if key[1] else 2):
                count[key] -= x.quantity
                klass = None if x.sante_class is SanteClass.OPTIQUE_B else x.sante_class
                x = replace(x, equipment=None, sante_class=klass)
        fitted.append(x)
    return fitted


def decode_cover(b: Bits) -> tuple[list[Guarantee], dict[CareDomain, Consumption], int]:
    guarantees = [
        Guarantee(
            domain,
            b.pick(FORMULAS),
            rate_pct=b.take(401),
            flat_amount=Money(b.cents()),
            ceiling_amount=Money(b.cents()) if b.take(2) else None,
            period=b.pick(PERIODS),
        )
        for domain in DOMAINS
        if b.take(5)
    ]
    used = {d: Consumption(Money(b.cents()), Money(b.cents())) for d in DOMAINS}
    return guarantees, used, b.take(101)


Example = tuple[list[Line], list[Guarantee], dict[CareDomain, Consumption], int]


def decode_example(n: int) -> Example:
    b = Bits(n)
    lines = fit_equipments([decode_line(b) for _ in range(1 + b.take(4))])
    return (lines, *decode_cover(b))


examples = st.integers(0, 2**1024).map(decode_example)


def line_ceiling(g: Guarantee, x: Line, r: LineResult) -> int:
    """AMO + AMC allowed by a non-flat formula, from DOMAIN.md §7."""
    rate = g.rate_pct or 0
    if g.formula is Formula.PCT_BRSS:
        return pct(r.base, rate).cents
    if g.formula is Formula.PCT_BRSS_EXCL_AMO:
        return (r.amo + pct(r.base, rate)).cents
    if g.formula is Formula.TICKET_MODERATEUR:
        return r.base.cents
    return pct(x.expense, rate).cents


def check_line(x: Line, r: LineResult, g: Guarantee | None, age: int) -> None:
    amo, amc, room = r.amo.cents, r.amc.cents, (x.expense - r.amo).cents
    assert r.amo + r.amc + r.patient == x.expense
    assert min(amo, amc, r.patient.cents) >= 0
    computed = pct(min(x.brss * x.quantity, x.expense), x.amo_rate_pct)
    assert r.amo == (computed if x.amo_amount is None else x.amo_amount)
    excluded = g is None or Rule.EXCLUDED_15PCT_DRUG in r.codes
    assert r.capped is (not excluded and amc < room)
    if g is None or excluded:
        assert amc == 0
        return
    if x.plv is not None:
        assert amc <= max(0, (x.plv * x.quantity).cents - amo)
    if x.sante_class is SanteClass.AUDIO_I:
        cap = (140000 if age <= 20 else 95000) * x.quantity
        assert amc == max(
            0, min(room, cap - amo, *([] if x.plv is None else [(x.plv * x.quantity).cents - amo]))
        )
    elif x.sante_class in RAC_ZERO and x.plv is None:
        assert r.patient == Money(0)
    if x.sante_class in RAC_ZERO:
        return
    if g.formula is not Formula.FLAT:
        assert amc <= max(0, line_ceiling(g, x, r) - amo)
    for amount in (g.ceiling_amount, g.flat_amount if g.formula is Formula.FLAT else None):
        if amount is not None and g.period is Period.LINE and x.equipment is None:
            assert amc <= amount.cents * x.quantity
    if x.sante_class is SanteClass.AUDIO_II:
        assert amc <= max(0, (AUDIO_II_CAP * x.quantity).cents - amo)
    if x.sante_class is SanteClass.OPTIQUE_B and x.optic_kind is OpticKind.FRAME:
        assert amc <= max(0, (OPTIQUE_B_FRAME_CAP * x.quantity).cents - amo)


def check_periods(
    lines: list[Line],
    c: Calculation,
    guarantees: list[Guarantee],
    used: dict[CareDomain, Consumption],
) -> None:
    """The AMC of the lines under the guarantee's rules stays within what the period has left."""
    for g in guarantees:
        spent = {Period.YEAR: used[g.domain].year, Period.RENEWAL: used[g.domain].renewal}.get(
            g.period
        )
        total = sum(
            r.amc.cents
            for x, r in zip(lines, c.lines, strict=True)
            if x.domain is g.domain and x.sante_class not in RAC_ZERO
        )
        for amount in (g.ceiling_amount, g.flat_amount if g.formula is Formula.FLAT else None):
            if amount is not None and spent is not None:
                assert total <= max(0, (amount - spent).cents)


def check_equipments(lines: list[Line], c: Calculation) -> None:
    """AMO + AMC of the class B lines of an equipment: at most half a pair cap per lens."""
    for eq in ("E1", "E2", "E3"):
        group = [
            (x, r)
            for x, r in zip(lines, c.lines, strict=True)
            if x.equipment == eq and x.sante_class is SanteClass.OPTIQUE_B
        ]
        lens_cap = sum(
            OPTIQUE_B_PAIR_CAP[x.optic_kind].cents // 2 * x.quantity
            for x, _ in group
            if x.optic_kind is not None and x.optic_kind is not OpticKind.FRAME
        )
        if lens_cap:
            amo = sum(r.amo.cents for _, r in group)
            assert sum(r.amc.cents for _, r in group) <= max(0, lens_cap - amo)


@settings(max_examples=10_000, deadline=None)
@given(examples)
def test_parts_sum_to_the_expense_and_respect_every_cap(example: Example) -> None:
    lines, guarantees, used, age = example
    c = compute(lines, guarantees, consumption=used, age_years=age)
    by_domain = {g.domain: g for g in guarantees}
    for x, r in zip(lines, c.lines, strict=True):
        check_line(x, r, by_domain.get(x.domain), age)
    check_periods(lines, c, guarantees, used)
    check_equipments(lines, c)
    assert c.amo + c.amc + c.patient == c.expense
    assert c.capped is any(r.capped for r in c.lines)


@given(examples)
def test_without_guarantee_amc_is_zero(example: Example) -> None:
    lines, _, _, age = example
    c = compute(lines, [], age_years=age)
    assert c.amc == Money(0) and not c.capped
    assert c.amo + c.patient == c.expense


@given(
    price=st.integers(0, 300_000),
    br=st.integers(0, 300_000),
    rate=st.integers(0, 100),
    spent=st.integers(0, 300_000),
    ceiling=st.integers(0, 300_000),
)
def test_more_consumption_never_pays_more(
    price: int, br: int, rate: int, spent: int, ceiling: int
) -> None:
    g = year_capped(ceiling)
    x = line(price, br, rate, CareDomain.DENT, CodeSystem.CCAM)

    def amc(used: int) -> int:
        found = compute([x], [g], consumption={CareDomain.DENT: Consumption(year=Money(used))})
        return found.amc.cents

    assert amc(spent + 1) <= amc(spent)
    assert amc(ceiling) == 0
