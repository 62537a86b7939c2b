"""Synthetic but valid data for the demo: NIRs, IBANs, FINESS, SIRET, names, contracts.

Every generator takes a seeded ``random.Random`` so that ``rempart demo --seed S`` is
deterministic. Identifiers are valid by their check digits and point at nothing real
(commune 999, bank 99999 — see DOMAIN.md §9).
"""

from __future__ import annotations

import random
from datetime import date, timedelta

from stdnum import luhn

from rempart.domain.care import CareDomain
from rempart.domain.coverage import Contract, Formula, Guarantee, Period
from rempart.domain.money import Money

LAST_NAMES = [
    "Martin",
    "Bernard",
    "Thomas",
    "Petit",
    "Robert",
    "Richard",
    "Durand",
    "Dubois",
    "Moreau",
    "Laurent",
    "Simon",
    "Michel",
    "Lefebvre",
    "Leroy",
    "Roux",
    "David",
    "Bertrand",
    "Morel",
    "Fournier",
    "Girard",
    "Bonnet",
    "Dupont",
    "Lambert",
    "Fontaine",
    "Rousseau",
    "Vincent",
    "Muller",
    "Lefèvre",
    "Faure",
    "André",
    "Mercier",
    "Blanc",
    "Guérin",
    "Boyer",
    "Garnier",
    "Chevalier",
    "François",
    "Legrand",
    "Gauthier",
    "Garcia",
    "Perrin",
    "Robin",
    "Clément",
    "Morin",
    "Nicolas",
    "Henry",
    "Roussel",
    "Mathieu",
]
FIRST_NAMES = [
    "Jeanne",
    "Marie",
    "Louise",
    "Camille",
    "Léa",
    "Manon",
    "Chloé",
    "Inès",
    "Jade",
    "Lucie",
    "Emma",
    "Zoé",
    "Anne",
    "Claire",
    "Hélène",
    "Jean",
    "Pierre",
    "Louis",
    "Lucas",
    "Hugo",
    "Gabriel",
    "Arthur",
    "Jules",
    "Léo",
    "Paul",
    "Nathan",
    "Théo",
    "Marc",
    "Yves",
    "Éric",
    "Noé",
]
DEPARTMENTS = ("75", "69", "13", "33", "59", "67", "2A", "2B", "44", "31", "06", "35")


def nir(rng: random.Random, birth: date, sex: int) -> str:
    dept = rng.choice(DEPARTMENTS)
    body = f"{sex}{birth.year % 100:02d}{birth.month:02d}{dept}999{rng.randint(1, 999):03d}"
    numeric = int(body.replace("2A", "19").replace("2B", "18"))
    return f"{body}{97 - numeric % 97:02d}"


def iban(rng: random.Random) -> str:
    bank, branch = "99999", f"{rng.randint(0, 99999):05d}"
    account = f"{rng.randint(0, 10**11 - 1):011d}"
    key = 97 - (89 * int(bank) + 15 * int(branch) + 3 * int(account)) % 97
    bban = f"{bank}{branch}{account}{key:02d}"
    check = 98 - int(bban + "152700") % 97  # F=15, R=27, then "00"
    return f"FR{check:02d}{bban}"


def finess(rng: random.Random, dept: str = "75") -> str:
    body = f"{dept}{rng.randint(0, 999999):06d}"
    return body + luhn.calc_check_digit(body)


def siret(rng: random.Random) -> str:
    siren = f"{rng.randint(100000000, 999999999)}"[:8]
    siren += luhn.calc_check_digit(siren)
    body = siren + f"{rng.randint(1, 9999):04d}"
    return body + luhn.calc_check_digit(body)


def rpps(rng: random.Random) -> str:
    body = f"10{rng.randint(0, 10**8 - 1):08d}"
    return body + luhn.calc_check_digit(body)


def birth_date(rng: random.Random, today: date, *, child: bool) -> date:
    years = rng.randint(1, 17) if child else rng.randint(18, 90)
    return today - timedelta(days=years * 365 + rng.randint(0, 364))


START = date(2024, 1, 1)
END = date(2030, 12, 31)


def _pct(domain: CareDomain, rate: int) -> Guarantee:
    return Guarantee(domain, Formula.PCT_BRSS, rate_pct=rate, valid_from=START, valid_to=END)


def _flat(domain: CareDomain, euros: int, period: Period = Period.RENEWAL) -> Guarantee:
    return Guarantee(
        domain,
        Formula.FLAT,
        flat_amount=Money(euros * 100),
        period=period,
        valid_from=START,
        valid_to=END,
    )


D = CareDomain
CONTRACTS = (
    Contract(
        "ESS",
        "Essentiel",
        (
            _pct(D.PHAR, 100),
            _pct(D.MED, 100),
            _pct(D.LABO, 100),
            _pct(D.HOSP, 100),
            _pct(D.RADL, 100),
            _pct(D.AUXM, 100),
            _pct(D.DENT, 125),
            _flat(D.OPTI, 100),
        ),
        START,
        END,
    ),
    Contract(
        "CONF",
        "Confort",
        (
            _pct(D.PHAR, 100),
            _pct(D.MED, 150),
            _pct(D.LABO, 100),
            _pct(D.HOSP, 150),
            _pct(D.RADL, 100),
            _pct(D.EXTE, 100),
            _pct(D.DENT, 200),
            _flat(D.OPTI, 250),
            _flat(D.AUDI, 400),
        ),
        START,
        END,
    ),
    Contract(
        "SER",
        "Sérénité",
        (
            _pct(D.PHAR, 100),
            _pct(D.MED, 200),
            _pct(D.LABO, 100),
            _pct(D.HOSP, 200),
            _pct(D.RADL, 150),
            _pct(D.EXTE, 150),
            _pct(D.AUXM, 150),
            _pct(D.DENT, 300),
            _flat(D.OPTI, 400),
            _flat(D.AUDI, 800),
        ),
        START,
        END,
    ),
)

OCAMS = (
    ("900000001", "Mutuelle des Tilleuls"),
    ("900000002", "Prévoyance Rhône-Alpes Santé"),
    ("900000003", "Assurance Santé Atlantique"),
    ("900000004", "Mutuelle du Littoral"),
)
