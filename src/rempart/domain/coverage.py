"""Contracts, their guarantee grid per domain, and the French wording of a guarantee.

A contract (``Contract``) belongs to one OCAM and holds, per care domain, one or more
effective-dated guarantees (``Guarantee``). The grid answers one question for the rights check:
*which guarantee applies to this domain on this date?* (``guarantee_for``). The amounts it implies
are computed by the calculation engine (claims issue) from the same ``Guarantee``.

Formulas (DOMAIN.md §3, §7):

- ``pct_brss``: a percentage of the BRSS *including* the AMO part ("PHAR 100" = 100 % BR,
  i.e. the ticket modérateur; "200 % BR" for a consultation with dépassement);
- ``pct_brss_excl_amo``: a percentage of the BRSS on top of the AMO part;
- ``ticket_moderateur``: the TM, BR − AMO (= ``pct_brss`` at 100, kept apart for its wording);
- ``flat``: a forfait in cents (per line, year or renewal period, ``period``);
- ``pct_price``: a percentage of the price charged.

    >>> g = Guarantee(CareDomain.PHAR, Formula.PCT_BRSS, rate_pct=100)
    >>> g.label
    '100 % de la base de remboursement'
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum

from rempart.domain.care import CareDomain
from rempart.domain.money import Money


class Formula(StrEnum):
    PCT_BRSS = "pct_brss"
    PCT_BRSS_EXCL_AMO = "pct_brss_excl_amo"
    TICKET_MODERATEUR = "ticket_moderateur"
    FLAT = "flat"
    PCT_PRICE = "pct_price"


class Period(StrEnum):
    LINE = "line"
    YEAR = "year"
    RENEWAL = "renewal"  # the renewal period of the domain (optics: 2 years over 16)


_PERIOD_WORDS = {Period.LINE: "par acte", Period.YEAR: "par an", Period.RENEWAL: "par période"}

FOREVER = date(9999, 12, 31)


@dataclass(frozen=True, slots=True)
class Guarantee:
    domain: CareDomain
    formula: Formula
    rate_pct: int | None = None
    flat_amount: Money | None = None
    ceiling_amount: Money | None = None
    period: Period = Period.LINE
    valid_from: date = date.min
    valid_to: date = FOREVER

    def __post_init__(self) -> None:
        needs_rate = self.formula in (
            Formula.PCT_BRSS,
            Formula.PCT_BRSS_EXCL_AMO,
            Formula.PCT_PRICE,
        )
        if needs_rate and (self.rate_pct is None or not 0 <= self.rate_pct <= 1000):
            raise ValueError("taux de garantie manquant ou hors bornes (0 à 1000 %)")
        if self.formula is Formula.FLAT and (
            self.flat_amount is None or self.flat_amount.cents < 0
        ):
            raise ValueError("forfait manquant ou négatif")
        if self.valid_to < self.valid_from:
            raise ValueError("période de validité inversée")

    def applies_on(self, day: date) -> bool:
        return self.valid_from <= day <= self.valid_to

    @property
    def label(self) -> str:
        """The French wording shown to the professional."""
        text = {
            Formula.PCT_BRSS: f"{self.rate_pct} % de la base de remboursement",
            Formula.PCT_BRSS_EXCL_AMO: f"{self.rate_pct} % de la base de remboursement "
            "en plus de l'Assurance Maladie",
            Formula.TICKET_MODERATEUR: "Ticket modérateur",
            Formula.FLAT: f"Forfait de {self.flat_amount.french() if self.flat_amount else ''} "
            f"{_PERIOD_WORDS[self.period]}",
            Formula.PCT_PRICE: f"{self.rate_pct} % du prix facturé",
        }[self.formula]
        if self.ceiling_amount is not None:
            text += f", plafonné à {self.ceiling_amount.french()} {_PERIOD_WORDS[self.period]}"
        return text


@dataclass(frozen=True, slots=True)
class Contract:
    code: str
    label: str
    guarantees: Sequence[Guarantee] = field(default_factory=tuple)
    valid_from: date = date.min
    valid_to: date = FOREVER
    responsible: bool = True  # "contrat responsable": the R on the card

    def guarantee_for(self, domain: CareDomain, day: date) -> Guarantee | None:
        """The guarantee of ``domain`` in force on ``day``, or None (domain not covered)."""
        if not self.valid_from <= day <= self.valid_to:
            return None
        return guarantee_in_force(self.guarantees, domain, day)

    @property
    def domains(self) -> frozenset[CareDomain]:
        return frozenset(g.domain for g in self.guarantees)


def guarantee_in_force(
    guarantees: Sequence[Guarantee], domain: CareDomain, day: date
) -> Guarantee | None:
    """The guarantee of ``domain`` in force on ``day`` among ``guarantees``, or None."""
    found = [g for g in guarantees if g.domain is domain and g.applies_on(day)]
    # The latest-starting guarantee wins when an amendment overlaps its predecessor.
    return max(found, key=lambda g: g.valid_from, default=None)
