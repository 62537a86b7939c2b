"""The calculation engine: AMO part, AMC part and patient remainder per line, with a trace.

One pure function, ``compute(lines, guarantees, consumption=…, age_years=…)``, serves the CLC,
the PEC quote and adjudication (DOMAIN.md §4, §5, §7). No I/O, no clock. Per line, in integer
cents, rounding only through ``money.pct`` (half-up, once per percentage)::

    expense = unit_price × quantity
    base    = min(brss × quantity, expense)
    amo     = amo_amount if given, else pct(base, amo_rate_pct)
    ceiling = pct(base, r) | amo + pct(base, r) | base | amo + forfait | pct(expense, r)
              (pct_brss      pct_brss_excl_amo    TM     flat           pct_price)
    amc     = max(0, min(ceiling − amo, expense − amo, caps left))
    patient = expense − amo − amc

*Caps left* are the guarantee's ``ceiling_amount`` (and a forfait) per its ``period`` — per
line, or per year / renewal period minus the AMC already paid (``Consumption``) and minus the
lines computed before in the same call — and the legal caps of the contrat responsable
(100 % Santé). Lines are computed in input order, except that the lines of one optical
equipment are computed together, lenses first, then the frame. ``capped`` is set when a cap
made the AMC smaller than ``expense − amo``: the caller emits an R08 signalement. A 15 % drug
under PHAR is excluded (AMC 0, R05), a domain without a guarantee in force is not covered.

100 % Santé (contrat responsable only, ``responsible=True``): optique A, audio I and dentaire
"100pct" get a zero remainder whatever the guarantee (AMC = expense − AMO, within the PLV when
given, and audio I within €950 per ear, €1,400 up to 20). Optique B: AMO + AMC per equipment
≤ half the pair cap per lens (€420 / €700 / €800 a pair), frame AMO + AMC ≤ €100 within it.
Audio II: AMO + AMC ≤ €1,700 per ear. Dentaire "maitrise" / "libre": the generic rule.

DOMAIN.md §7 B, a 150 % BR consultation with a dépassement:

    >>> from datetime import date
    >>> g = Guarantee(CareDomain.MED, Formula.PCT_BRSS, rate_pct=150)
    >>> visit = Line(CodeSystem.NGAP, "G", 1, Money(5000), Money(3000), 70, CareDomain.MED,
    ...              date(2026, 3, 2))
    >>> r = compute([visit], [g]).lines[0]
    >>> (r.amo.cents, r.amc.cents, r.patient.cents, r.capped)
    (2100, 2400, 500, True)
    >>> [str(s.code) for s in r.trace]
    ['amo_computed', 'guarantee_pct_brss', 'cap_line']

Assumptions (DOMAIN.md marks these [unconfirmed], or is silent):

1. The generic rule itself and the half-up rounding are our convention (§7).
2. The AMO base is limited to the expense (``base = min(brss × quantity, expense)``, the
   "dans la limite des frais réels" practice), so the AMO never pays more than was charged;
   an ``amo_amount`` above the expense is refused (the parts could not sum otherwise).
3. A forfait (``flat``) is an AMC amount, TM included (§7 C); ``ceiling_amount`` caps the AMC.
   Per ``line`` they count per unit of quantity ("par acte"), except that the lines of one
   optical equipment share one forfait; per year / renewal they apply per care domain, and
   ``Consumption`` is for the year / period of the care dates of the call.
4. ``capped`` includes the formula's own ceiling (a 150 % BR visit with a dépassement, a drug
   above its TFR): the AMC is below the remainder because of the guarantee.
5. 15 % drugs (CIP13 lines at a 15 % AMO rate) are always excluded under PHAR: an explicit
   guarantee of them is not modelled.
6. Optique B: a mixed pair gets the mean of the two pair caps (half the pair cap per lens, which
   gives €560 / €610 / €750); a single lens half a pair cap; a frame alone only the €100 frame
   cap, itself [unconfirmed]. Class B lines must name their equipment. In an A+B equipment the
   class B caps count the class B lines only; the class A lines get their zero remainder apart.
7. 100 % Santé lines are paid whatever the guarantee's caps (the contract must), but their AMC
   counts in the year / renewal consumption of later lines. A domain without a guarantee in
   force gets AMC 0 even for a 100 % Santé line. Optique A lens and frame PLVs are not tabled
   here: the caller passes ``plv``, which caps AMO + AMC of any line. Audio II €1,700 per ear
   is [unconfirmed]; the dentaire classes per CCAM act [unconfirmed]; audio caps count per unit.
8. "Up to 20" means age ≤ 20 at the care date (the caller gives ``age_years``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import KW_ONLY, dataclass
from datetime import date
from enum import StrEnum

from rempart.domain.care import CareDomain
from rempart.domain.coverage import Formula, Guarantee, Period, guarantee_in_force
from rempart.domain.errors import FieldError, InvalidFields
from rempart.domain.money import ZERO, Money, pct

__all__ = [
    "Calculation",
    "CodeSystem",
    "Consumption",
    "InvalidLines",
    "Line",
    "LineResult",
    "OpticKind",
    "Rule",
    "SanteClass",
    "Side",
    "Step",
    "compute",
]


class CodeSystem(StrEnum):
    CIP13 = "CIP13"  # drug pack
    LPP = "LPP"  # reimbursable device
    CCAM = "CCAM"  # technical act
    NGAP = "NGAP"  # key letter + coefficient


class SanteClass(StrEnum):
    OPTIQUE_A = "A"
    OPTIQUE_B = "B"
    AUDIO_I = "I"
    AUDIO_II = "II"
    DENTAIRE_100 = "100pct"
    DENTAIRE_MAITRISE = "maitrise"
    DENTAIRE_LIBRE = "libre"


class OpticKind(StrEnum):
    FRAME = "frame"
    LENS_SIMPLE = "lens_simple"
    LENS_COMPLEX = "lens_complex"
    LENS_VERY_COMPLEX = "lens_very_complex"


class Side(StrEnum):
    RIGHT = "right"  # eye or ear; informational, caps are per unit
    LEFT = "left"


# Legal caps of the contrat responsable (DOMAIN.md §5).
OPTIQUE_B_PAIR_CAP = {
    OpticKind.LENS_SIMPLE: Money(42000),
    OpticKind.LENS_COMPLEX: Money(70000),
    OpticKind.LENS_VERY_COMPLEX: Money(80000),
}
OPTIQUE_B_FRAME_CAP = Money(10000)
AUDIO_I_CAP = Money(95000)  # per ear, over 20
AUDIO_I_CAP_CHILD = Money(140000)  # per ear, up to 20
AUDIO_CHILD_AGE_MAX = 20
AUDIO_II_CAP = Money(170000)  # per ear, AMO included
# Input sanity bounds: above them the input is a typo, not a price.
UNIT_AMOUNT_MAX = Money(10_000_000)  # €100,000 per unit
QUANTITY_MAX = 9999

_CLASS_DOMAIN = {
    SanteClass.OPTIQUE_A: CareDomain.OPTI,
    SanteClass.OPTIQUE_B: CareDomain.OPTI,
    SanteClass.AUDIO_I: CareDomain.AUDI,
    SanteClass.AUDIO_II: CareDomain.AUDI,
    SanteClass.DENTAIRE_100: CareDomain.DENT,
    SanteClass.DENTAIRE_MAITRISE: CareDomain.DENT,
    SanteClass.DENTAIRE_LIBRE: CareDomain.DENT,
}
_RAC_ZERO = frozenset({SanteClass.OPTIQUE_A, SanteClass.AUDIO_I, SanteClass.DENTAIRE_100})


@dataclass(frozen=True, slots=True)
class Line:
    """One invoice or quote line, as the professional sends it (DOMAIN.md §6)."""

    code_system: CodeSystem
    code: str
    quantity: int
    unit_price: Money
    brss: Money  # BR per unit
    amo_rate_pct: int
    domain: CareDomain
    care_date: date
    _: KW_ONLY
    amo_amount: Money | None = None  # the AMO part when the AMO computed it (not re-checked)
    sante_class: SanteClass | None = None
    optic_kind: OpticKind | None = None
    equipment: str | None = None  # lines of one optical equipment share this id
    side: Side | None = None
    plv: Money | None = None  # prix limite de vente per unit: AMO + AMC never above it

    @property
    def expense(self) -> Money:
        return self.unit_price * self.quantity


@dataclass(frozen=True, slots=True)
class Consumption:
    """AMC already paid for one domain in the current year and the current renewal period."""

    year: Money = ZERO
    renewal: Money = ZERO


class Rule(StrEnum):
    AMO_COMPUTED = "amo_computed"
    AMO_GIVEN = "amo_given"
    BASE_LIMITED = "base_limited_to_price"
    NOT_COVERED = "not_covered"
    EXCLUDED_15PCT_DRUG = "excluded_15pct_drug"
    GUARANTEE_PCT_BRSS = "guarantee_pct_brss"
    GUARANTEE_PCT_BRSS_EXCL_AMO = "guarantee_pct_brss_excl_amo"
    GUARANTEE_TICKET_MODERATEUR = "guarantee_ticket_moderateur"
    GUARANTEE_FLAT = "guarantee_flat"
    GUARANTEE_PCT_PRICE = "guarantee_pct_price"
    RAC_ZERO_100_SANTE = "100_sante_rac_zero"
    CAP_LINE = "cap_line"
    CAP_YEAR = "cap_year"
    CAP_RENEWAL = "cap_renewal"
    CAP_PLV = "cap_plv"
    CAP_OPTIQUE_B = "cap_100_sante_optique_B"
    CAP_OPTIQUE_B_FRAME = "cap_100_sante_optique_B_frame"
    CAP_AUDIO_I = "cap_100_sante_audio_I"
    CAP_AUDIO_II = "cap_100_sante_audio_II"

    @property
    def label(self) -> str:
        return RULE_LABELS[self]


RULE_LABELS: dict[Rule, str] = {
    Rule.AMO_COMPUTED: "Part AMO calculée sur la base de remboursement",
    Rule.AMO_GIVEN: "Part AMO transmise",
    Rule.BASE_LIMITED: "Base de remboursement limitée au montant facturé",
    Rule.NOT_COVERED: "Domaine non couvert à la date des soins",
    Rule.EXCLUDED_15PCT_DRUG: "Médicament remboursé à 15 % : non couvert en pharmacie (PHAR)",
    Rule.GUARANTEE_PCT_BRSS: "Garantie en % de la base de remboursement",
    Rule.GUARANTEE_PCT_BRSS_EXCL_AMO: "Garantie en % de la base en plus de l'Assurance Maladie",
    Rule.GUARANTEE_TICKET_MODERATEUR: "Garantie ticket modérateur",
    Rule.GUARANTEE_FLAT: "Garantie forfaitaire",
    Rule.GUARANTEE_PCT_PRICE: "Garantie en % du prix facturé",
    Rule.RAC_ZERO_100_SANTE: "100 % Santé : reste à charge nul",
    Rule.CAP_LINE: "Plafond de la garantie par acte atteint",
    Rule.CAP_YEAR: "Plafond annuel de la garantie atteint",
    Rule.CAP_RENEWAL: "Plafond de la période de renouvellement atteint",
    Rule.CAP_PLV: "Prix limite de vente atteint",
    Rule.CAP_OPTIQUE_B: "Plafond du contrat responsable par équipement (classe B) atteint",
    Rule.CAP_OPTIQUE_B_FRAME: "Plafond du contrat responsable pour la monture (100 €) atteint",
    Rule.CAP_AUDIO_I: "Prix limite de l'aide auditive de classe I atteint",
    Rule.CAP_AUDIO_II: "Plafond de 1 700 € par oreille (classe II) atteint",
}
_GUARANTEE_RULE = {
    Formula.PCT_BRSS: Rule.GUARANTEE_PCT_BRSS,
    Formula.PCT_BRSS_EXCL_AMO: Rule.GUARANTEE_PCT_BRSS_EXCL_AMO,
    Formula.TICKET_MODERATEUR: Rule.GUARANTEE_TICKET_MODERATEUR,
    Formula.FLAT: Rule.GUARANTEE_FLAT,
    Formula.PCT_PRICE: Rule.GUARANTEE_PCT_PRICE,
}
_PERIOD_CAP = {
    Period.LINE: Rule.CAP_LINE,
    Period.YEAR: Rule.CAP_YEAR,
    Period.RENEWAL: Rule.CAP_RENEWAL,
}


@dataclass(frozen=True, slots=True)
class Step:
    code: Rule
    label: str  # French, for the professional

    @classmethod
    def of(cls, code: Rule, label: str | None = None) -> Step:
        return cls(code, label or code.label)


@dataclass(frozen=True, slots=True)
class LineResult:
    expense: Money
    base: Money  # the BR used, brss × quantity limited to the expense
    amo: Money
    amc: Money
    patient: Money
    trace: tuple[Step, ...]
    capped: bool  # a cap made the AMC smaller than expense − AMO (R08 signalement)

    @property
    def codes(self) -> tuple[Rule, ...]:
        return tuple(s.code for s in self.trace)


@dataclass(frozen=True, slots=True)
class Calculation:
    lines: tuple[LineResult, ...]  # in input order

    @property
    def expense(self) -> Money:
        return Money(sum(r.expense.cents for r in self.lines))

    @property
    def amo(self) -> Money:
        return Money(sum(r.amo.cents for r in self.lines))

    @property
    def amc(self) -> Money:
        return Money(sum(r.amc.cents for r in self.lines))

    @property
    def patient(self) -> Money:
        return Money(sum(r.patient.cents for r in self.lines))

    @property
    def capped(self) -> bool:
        return any(r.capped for r in self.lines)


class InvalidLines(InvalidFields, ValueError):
    """Every problem of the input at once, each naming its field ("lines.0.quantity")."""


Pot = tuple[str, object]  # a running AMC counter: a line, an equipment, a (domain, period)


@dataclass(frozen=True, slots=True)
class _Equipment:
    cap: Money  # AMO + AMC of its class B lines
    amo: Money


def compute(
    lines: Sequence[Line],
    guarantees: Sequence[Guarantee],
    *,
    consumption: Mapping[CareDomain, Consumption] | None = None,
    age_years: int | None = None,
    responsible: bool = True,
) -> Calculation:
    """Split every line into AMO, AMC and patient parts. Raises ``InvalidLines``."""
    consumed = dict(consumption or {})
    _check(lines, consumed, age_years, responsible)
    used: dict[Pot, int] = {}
    for domain, c in consumed.items():
        used[("year", domain)] = c.year.cents
        used[("renewal", domain)] = c.renewal.cents
    equipments = _equipments(lines, responsible)
    results: dict[int, LineResult] = {}
    for i in _allocation_order(lines):
        line = lines[i]
        guarantee = guarantee_in_force(guarantees, line.domain, line.care_date)
        klass = line.sante_class if responsible else None
        result = _line(i, line, guarantee, klass, used, equipments, age_years)
        for pot in _pots(i, line):
            used[pot] = used.get(pot, 0) + result.amc.cents
        results[i] = result
    return Calculation(tuple(results[i] for i in range(len(lines))))


def _line(
    i: int,
    line: Line,
    g: Guarantee | None,
    klass: SanteClass | None,
    used: Mapping[Pot, int],
    equipments: Mapping[str, _Equipment],
    age_years: int | None,
) -> LineResult:
    expense = line.expense
    base, amo, steps = _amo(line)
    room = (expense - amo).cents
    if g is None:
        return _result(line, base, amo, ZERO, [*steps, Step.of(Rule.NOT_COVERED)], capped=False)
    if _excluded(line):
        steps.append(Step.of(Rule.EXCLUDED_15PCT_DRUG))
        return _result(line, base, amo, ZERO, steps, capped=False)
    steps.append(Step.of(_GUARANTEE_RULE[g.formula], g.label))
    if klass in _RAC_ZERO:
        steps.append(Step.of(Rule.RAC_ZERO_100_SANTE))
        caps = _rac_zero_caps(line, klass, amo, age_years)
    else:
        caps = _guarantee_caps(i, line, g, base, amo, used)
        caps += _legal_caps(line, klass, amo, used, equipments)
    amc = max(0, min([room, *(value for _, value in caps)]))
    binding = [code for code, value in caps if max(0, value) == amc] if amc < room else []
    steps += [Step.of(code) for code in dict.fromkeys(binding)]
    return _result(line, base, amo, Money(amc), steps, capped=bool(binding))


def _result(
    line: Line, base: Money, amo: Money, amc: Money, steps: list[Step], *, capped: bool
) -> LineResult:
    expense = line.expense
    patient = expense - amo - amc
    assert min(amo.cents, amc.cents, patient.cents) >= 0
    return LineResult(expense, base, amo, amc, patient, tuple(steps), capped)


def _amo(line: Line) -> tuple[Money, Money, list[Step]]:
    """The base used (BR limited to the expense) and the AMO part, with their steps."""
    full = line.brss * line.quantity
    base = min(full, line.expense)
    steps = [] if base == full else [Step.of(Rule.BASE_LIMITED)]
    if line.amo_amount is not None:
        return base, line.amo_amount, [Step.of(Rule.AMO_GIVEN), *steps]
    label = f"Part AMO : {line.amo_rate_pct} % de {base.french()}"
    return base, pct(base, line.amo_rate_pct), [Step.of(Rule.AMO_COMPUTED, label), *steps]


def _excluded(line: Line) -> bool:
    return (
        line.domain is CareDomain.PHAR
        and line.code_system is CodeSystem.CIP13
        and line.amo_rate_pct == 15
    )


def _ceiling(g: Guarantee, base: Money, amo: Money, expense: Money) -> Money:
    """AMO + AMC allowed by a non-flat formula for one line."""
    rate = g.rate_pct if g.rate_pct is not None else 0  # set for these formulas (Guarantee)
    return {
        Formula.PCT_BRSS: lambda: pct(base, rate),
        Formula.PCT_BRSS_EXCL_AMO: lambda: amo + pct(base, rate),
        Formula.TICKET_MODERATEUR: lambda: base,
        Formula.PCT_PRICE: lambda: pct(expense, rate),
    }[g.formula]()


def _guarantee_caps(
    i: int, line: Line, g: Guarantee, base: Money, amo: Money, used: Mapping[Pot, int]
) -> list[tuple[Rule, int]]:
    caps: list[tuple[Rule, int]] = []
    amounts = [g.ceiling_amount]
    if g.formula is Formula.FLAT:
        amounts.append(g.flat_amount)
    else:
        caps.append((Rule.CAP_LINE, (_ceiling(g, base, amo, line.expense) - amo).cents))
    pot, times = _period_pot(i, line, g.period)
    for amount in amounts:
        if amount is not None:
            caps.append((_PERIOD_CAP[g.period], amount.cents * times - used.get(pot, 0)))
    return caps


def _legal_caps(
    line: Line,
    klass: SanteClass | None,
    amo: Money,
    used: Mapping[Pot, int],
    equipments: Mapping[str, _Equipment],
) -> list[tuple[Rule, int]]:
    caps = _plv_cap(line, amo)
    if klass is SanteClass.OPTIQUE_B:
        key = _equipment_key(line)
        eq = equipments.get(key) if key is not None else None
        if eq is not None and eq.cap > ZERO:
            left = (eq.cap - eq.amo).cents - used.get(("equipment", key), 0)
            caps.append((Rule.CAP_OPTIQUE_B, left))
        if line.optic_kind is OpticKind.FRAME:
            caps.append(
                (Rule.CAP_OPTIQUE_B_FRAME, (OPTIQUE_B_FRAME_CAP * line.quantity - amo).cents)
            )
    elif klass is SanteClass.AUDIO_II:
        caps.append((Rule.CAP_AUDIO_II, (AUDIO_II_CAP * line.quantity - amo).cents))
    return caps


def _rac_zero_caps(
    line: Line, klass: SanteClass | None, amo: Money, age_years: int | None
) -> list[tuple[Rule, int]]:
    caps = _plv_cap(line, amo)
    if klass is SanteClass.AUDIO_I:
        assert age_years is not None  # _check requires it
        cap = AUDIO_I_CAP_CHILD if age_years <= AUDIO_CHILD_AGE_MAX else AUDIO_I_CAP
        caps.append((Rule.CAP_AUDIO_I, (cap * line.quantity - amo).cents))
    return caps


def _plv_cap(line: Line, amo: Money) -> list[tuple[Rule, int]]:
    return [] if line.plv is None else [(Rule.CAP_PLV, (line.plv * line.quantity - amo).cents)]


def _equipment_key(line: Line) -> str | None:
    return line.equipment if line.domain is CareDomain.OPTI and line.equipment else None


def _period_pot(i: int, line: Line, period: Period) -> tuple[Pot, int]:
    """The counter a per-period amount is checked against, and its multiplier."""
    if period is Period.YEAR:
        return ("year", line.domain), 1
    if period is Period.RENEWAL:
        return ("renewal", line.domain), 1
    key = _equipment_key(line)
    return (("equipment_line", key), 1) if key is not None else (("line", i), line.quantity)


def _pots(i: int, line: Line) -> list[Pot]:
    """Every counter a line's AMC adds to."""
    pots: list[Pot] = [("year", line.domain), ("renewal", line.domain)]
    pots.append(_period_pot(i, line, Period.LINE)[0])
    key = _equipment_key(line)
    if key is not None and line.sante_class is SanteClass.OPTIQUE_B:  # always keyed (_check)
        pots.append(("equipment", key))
    return pots


def _equipments(lines: Sequence[Line], responsible: bool) -> dict[str, _Equipment]:
    """Per optical equipment: the class B cap (half a pair cap per B lens) and AMO of B lines."""
    caps: dict[str, Money] = {}
    amos: dict[str, Money] = {}
    for line in lines:
        key = _equipment_key(line)
        if key is None or line.sante_class is not SanteClass.OPTIQUE_B or not responsible:
            continue
        pair = OPTIQUE_B_PAIR_CAP.get(line.optic_kind) if line.optic_kind else None
        lens_cap = pct(pair, 50) * line.quantity if pair is not None else ZERO
        caps[key] = caps.get(key, ZERO) + lens_cap
        amos[key] = amos.get(key, ZERO) + _amo(line)[1]
    return {key: _Equipment(caps[key], amos[key]) for key in caps}


def _allocation_order(lines: Sequence[Line]) -> list[int]:
    """Input order; an equipment at its first line, lenses before the frame."""
    first: dict[str, int] = {}
    for i, line in enumerate(lines):
        key = _equipment_key(line)
        if key is not None:
            first.setdefault(key, i)

    def rank(i: int) -> tuple[int, bool, int]:
        key = _equipment_key(lines[i])
        group = first[key] if key is not None else i
        return group, lines[i].optic_kind is OpticKind.FRAME, i

    return sorted(range(len(lines)), key=rank)


# -- validation: every problem at once, each naming its field ------------------------------


def input_problems(lines: Sequence[Line]) -> list[FieldError]:
    """What is wrong with the lines themselves (bounds, classes, equipments), each naming its
    field ("lines.0.quantity"): the form check of intake, before anything is stored."""
    errors = [e for i, line in enumerate(lines) for e in _line_problems(f"lines.{i}", line)]
    return errors + _equipment_problems(lines)


def _check(
    lines: Sequence[Line],
    consumed: Mapping[CareDomain, Consumption],
    age_years: int | None,
    responsible: bool,
) -> None:
    errors = input_problems(lines)
    for domain, c in consumed.items():
        for name, amount in (("year", c.year), ("renewal", c.renewal)):
            if amount.cents < 0:
                errors.append(FieldError(f"consumption.{domain}.{name}", "montant négatif"))
    audio_i = any(line.sante_class is SanteClass.AUDIO_I for line in lines)
    if age_years is None and audio_i and responsible:
        errors.append(FieldError("age_years", "âge requis pour une aide auditive de classe I"))
    if age_years is not None and not 0 <= age_years <= 130:
        errors.append(FieldError("age_years", "âge hors bornes (0 à 130 ans)"))
    if errors:
        raise InvalidLines(errors)


def _line_problems(at: str, line: Line) -> list[FieldError]:
    problems: list[FieldError] = []
    if not line.code.strip():
        problems.append(FieldError(f"{at}.code", "code manquant"))
    if isinstance(line.quantity, bool) or not 1 <= line.quantity <= QUANTITY_MAX:
        problems.append(FieldError(f"{at}.quantity", f"quantité hors bornes (1 à {QUANTITY_MAX})"))
    limit = UNIT_AMOUNT_MAX.french()
    for name, amount in (("unit_price", line.unit_price), ("brss", line.brss), ("plv", line.plv)):
        if amount is not None and not ZERO <= amount <= UNIT_AMOUNT_MAX:
            problems.append(FieldError(f"{at}.{name}", f"montant négatif ou supérieur à {limit}"))
    if isinstance(line.amo_rate_pct, bool) or not 0 <= line.amo_rate_pct <= 100:
        problems.append(FieldError(f"{at}.amo_rate_pct", "taux AMO hors bornes (0 à 100 %)"))
    if line.amo_amount is not None and not ZERO <= line.amo_amount <= max(line.expense, ZERO):
        problems.append(
            FieldError(f"{at}.amo_amount", "part AMO négative ou supérieure au montant facturé")
        )
    return problems + _class_problems(at, line)


def _class_problems(at: str, line: Line) -> list[FieldError]:
    problems: list[FieldError] = []
    klass = line.sante_class
    if klass is not None and _CLASS_DOMAIN[klass] is not line.domain:
        problems.append(
            FieldError(f"{at}.sante_class", f"classe {klass} incompatible avec le domaine")
        )
    optic = line.optic_kind is not None or line.equipment is not None
    if optic and line.domain is not CareDomain.OPTI:
        field = "optic_kind" if line.optic_kind is not None else "equipment"
        problems.append(FieldError(f"{at}.{field}", "réservé aux lignes d'optique"))
    if klass is SanteClass.OPTIQUE_B and line.optic_kind is None:
        problems.append(
            FieldError(f"{at}.optic_kind", "monture ou type de verre requis (classe B)")
        )
    if klass is SanteClass.OPTIQUE_B and not line.equipment:
        problems.append(FieldError(f"{at}.equipment", "équipement requis (classe B)"))
    return problems


def _equipment_problems(lines: Sequence[Line]) -> list[FieldError]:
    """An equipment holds at most one frame and two lenses."""
    frames: dict[str, int] = {}
    lenses: dict[str, int] = {}
    problems: list[FieldError] = []
    for i, line in enumerate(lines):
        key = _equipment_key(line)
        if key is None or line.optic_kind is None or isinstance(line.quantity, bool):
            continue
        count = frames if line.optic_kind is OpticKind.FRAME else lenses
        count[key] = count.get(key, 0) + line.quantity
        if frames.get(key, 0) > 1 or lenses.get(key, 0) > 2:
            problems.append(
                FieldError(f"lines.{i}.equipment", "au plus une monture et deux verres")
            )
    return problems
