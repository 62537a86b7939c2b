"""Reason codes of invoice decisions (DOMAIN.md §6): Rempart's own, one meaning per code.

The table is data: ``docs/formats/rejection-codes.md`` publishes it for the professionals'
software, and a test checks that the two agree code for code and label for label. A reason is a
*rejection* (the line is not paid) or a *signalement* (the line is paid, at the computed amount,
and the professional is told why it is less than claimed).

    >>> Code.R08.label
    'Montant au-delà de la garantie, du plafond ou de la prise en charge (paiement partiel)'
    >>> Reason(Code.R10).as_json()
    {'code': 'R10', 'kind': 'rejection'}
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Code(StrEnum):
    R01 = "R01"
    R02 = "R02"
    R03 = "R03"
    R04 = "R04"
    R05 = "R05"
    R06 = "R06"
    R07 = "R07"
    R08 = "R08"
    R09 = "R09"
    R10 = "R10"
    R11 = "R11"
    R12 = "R12"
    R13 = "R13"
    R14 = "R14"
    R15 = "R15"
    R16 = "R16"

    @property
    def label(self) -> str:
        return LABELS[self]


LABELS: dict[Code, str] = {
    Code.R01: "Professionnel de santé inconnu ou non adhérent au tiers payant",
    Code.R02: "Identifiant du professionnel de santé mal formé",
    Code.R03: "Bénéficiaire inconnu",
    Code.R04: "Droits fermés à la date des soins",
    Code.R05: "Non pris en charge (médicament remboursé à 15 %)",
    Code.R06: "Numéro d'engagement ou de prise en charge absent",
    Code.R07: "Engagement ou prise en charge révoqué ou expiré",
    Code.R08: (
        "Montant au-delà de la garantie, du plafond ou de la prise en charge (paiement partiel)"
    ),
    Code.R09: "Part AMO incohérente",
    Code.R10: "Facture en double",
    Code.R11: "Délai de facturation de l'AMC dépassé",
    Code.R12: "Code inconnu ou non valide à cette date",
    Code.R13: "Période de renouvellement non atteinte",
    Code.R14: "Totaux, dates ou quantités incohérents",
    Code.R15: "Aucune relation de soins entre ce professionnel et ce bénéficiaire",
    Code.R16: "Engagement ou prise en charge d'un autre bénéficiaire ou d'un autre professionnel",
}


class Kind(StrEnum):
    REJECTION = "rejection"
    SIGNALEMENT = "signalement"


@dataclass(frozen=True, slots=True)
class Reason:
    code: Code
    kind: Kind = Kind.REJECTION

    def as_json(self) -> dict[str, str]:
        return {"code": self.code.value, "kind": self.kind.value}

    def as_answer(self) -> dict[str, str]:
        """As the professional reads it: the code, its French label, its kind."""
        return {"code": self.code.value, "label": self.code.label, "kind": self.kind.value}

    @classmethod
    def from_json(cls, value: dict[str, str]) -> Reason:
        return cls(Code(value["code"]), Kind(value["kind"]))
