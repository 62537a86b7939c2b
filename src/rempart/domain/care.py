"""Care domains (the codes printed on the attestation) and which professions bill which.

The domain code, not free text, defines the cover (DOMAIN.md §3). A structure may check rights
only for the domains its profession bills: a pharmacy checks PHAR, an optician OPTI. The table
is ``PROFESSION_DOMAINS`` and is documented in ``docs/professions.md``.

    >>> may_check(Profession.PHARMACY, CareDomain.PHAR)
    True
    >>> may_check(Profession.PHARMACY, CareDomain.OPTI)
    False
"""

from __future__ import annotations

from enum import StrEnum


class CareDomain(StrEnum):
    PHAR = "PHAR"  # pharmacy: 65 % and 30 % drugs, LPP
    OPTI = "OPTI"  # optics
    DENT = "DENT"  # dental care and prostheses
    AUDI = "AUDI"  # hearing aids
    LABO = "LABO"  # medical biology
    HOSP = "HOSP"  # hospital stays
    RADL = "RADL"  # radiology
    AUXM = "AUXM"  # auxiliaries (nurses, physiotherapists)
    MED = "MED"  # consultations
    EXTE = "EXTE"  # hospital outpatient care

    @property
    def label(self) -> str:
        return DOMAIN_LABELS[self]


DOMAIN_LABELS: dict[CareDomain, str] = {
    CareDomain.PHAR: "Pharmacie",
    CareDomain.OPTI: "Optique",
    CareDomain.DENT: "Dentaire",
    CareDomain.AUDI: "Audioprothèses",
    CareDomain.LABO: "Biologie médicale",
    CareDomain.HOSP: "Hospitalisation",
    CareDomain.RADL: "Radiologie",
    CareDomain.AUXM: "Auxiliaires médicaux",
    CareDomain.MED: "Consultations",
    CareDomain.EXTE: "Soins externes",
}


class Profession(StrEnum):
    PHARMACY = "pharmacy"
    OPTICIAN = "optician"
    DENTIST = "dentist"
    AUDIOLOGIST = "audiologist"
    LABORATORY = "laboratory"
    HOSPITAL = "hospital"
    PHYSICIAN = "physician"

    @property
    def label(self) -> str:
        return PROFESSION_LABELS[self]


PROFESSION_LABELS: dict[Profession, str] = {
    Profession.PHARMACY: "Pharmacie",
    Profession.OPTICIAN: "Opticien",
    Profession.DENTIST: "Chirurgien-dentiste",
    Profession.AUDIOLOGIST: "Audioprothésiste",
    Profession.LABORATORY: "Laboratoire de biologie",
    Profession.HOSPITAL: "Établissement de santé",
    Profession.PHYSICIAN: "Médecin",
}

PROFESSION_DOMAINS: dict[Profession, frozenset[CareDomain]] = {
    Profession.PHARMACY: frozenset({CareDomain.PHAR}),
    Profession.OPTICIAN: frozenset({CareDomain.OPTI}),
    Profession.DENTIST: frozenset({CareDomain.DENT}),
    Profession.AUDIOLOGIST: frozenset({CareDomain.AUDI}),
    Profession.LABORATORY: frozenset({CareDomain.LABO}),
    Profession.HOSPITAL: frozenset(
        {CareDomain.HOSP, CareDomain.EXTE, CareDomain.LABO, CareDomain.RADL}
    ),
    Profession.PHYSICIAN: frozenset({CareDomain.MED, CareDomain.RADL}),
}


def may_check(profession: Profession, domain: CareDomain) -> bool:
    return domain in PROFESSION_DOMAINS[profession]
