"""French health and banking identifiers: parse, check, return the compact form.

Every ``parse_*`` function accepts the usual human formatting (spaces, dots, dashes, any
case), checks length, structure and check key (DOMAIN.md §9), and returns the compact form.
A refusal raises ``IdentifierError`` whose ``reason`` is French and never repeats the input:
reasons end up in import reports and logs, where a NIR or an IBAN must never appear.

Rules, briefly:

- NIR: 15 characters. Sex digit 1 or 2 (5 to 8 for temporary numbers), year, month, a
  département (two digits, or 2A/2B for Corsica), commune, order, then a key
  ``97 − (first 13 digits mod 97)``, computed after 2A→19 and 2B→18.
- SIREN / SIRET: 9 / 14 digits, Luhn; La Poste establishments (356000000…, except the head
  office 35600000000048) need a digit sum divisible by 5 instead.
- FINESS (9 characters, département first), RPPS (11 digits), ADELI (9 digits): Luhn key.
- IBAN: ISO 13616 mod-97 key plus the national key (the RIB key for FR and MC).
- BIC: 8 or 11 characters, no key. CIP13: 34009 + 7 digits + EAN-13 key.
- Numéro AMC: exactly 9 digits, no known key.

Worked example, someone born in Corse-du-Sud: ``2 53 07 2A 999 004 05``. 2A counts as 19,
so the body is 2530719999004; 2530719999004 mod 97 = 92 and the key is 97 − 92 = 05.

    >>> nir = parse_nir("2 53 07 2A 999 004 05")
    >>> (nir.value, nir.sex, nir.is_temporary)
    ('253072A99900405', 2, False)
    >>> try:
    ...     parse_nir("2 53 07 2A 999 004 75")     # key computed as if 2A were 20
    ... except IdentifierError as err:
    ...     print(err)
    clé de contrôle invalide (2A et 2B se comptent 19 et 18)
    >>> parse_iban("fr76 9999 9000 0100 0000 0000 115").masked
    'FR76 •••• 0115'
"""

from __future__ import annotations

from dataclasses import dataclass, field

import schwifty
from schwifty import exceptions as schwifty_errors
from stdnum import ean, luhn
from stdnum.fr import siren as stdnum_siren
from stdnum.fr import siret as stdnum_siret

__all__ = [
    "Iban",
    "IdentifierError",
    "Nir",
    "parse_adeli",
    "parse_amc_number",
    "parse_bic",
    "parse_cip13",
    "parse_finess",
    "parse_iban",
    "parse_nir",
    "parse_rpps",
    "parse_siren",
    "parse_siret",
]

KEY_INVALID = "clé de contrôle invalide"
EMPTY = "valeur vide"
DIGITS_ONLY = "ne doit contenir que des chiffres"

_NIR_PERMANENT = frozenset("12")
_NIR_TEMPORARY = frozenset("5678")
_CORSICA = {"2A": "19", "2B": "18"}
_LA_POSTE_PREFIX = "356000000"
_LA_POSTE_HEAD_OFFICE = "35600000000048"
_CIP13_PREFIX = "34009"
_RIB_COUNTRIES = frozenset({"FR", "MC"})  # the countries whose national key is the RIB key


class IdentifierError(ValueError):
    """An identifier was refused. ``reason`` is French and never contains the input."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    def __str__(self) -> str:
        return self.reason


def _compact(raw: str) -> str:
    """Drop whitespace (any Unicode space), dots and dashes; upper-case."""
    return "".join(raw.split()).replace(".", "").replace("-", "").upper()


def _is_digits(text: str) -> bool:
    # str.isdigit alone accepts "²" or Arabic-Indic digits, which int() and stdnum would not.
    return text.isascii() and text.isdigit()


def _digits(raw: str, length: int) -> str:
    number = _compact(raw)
    if not number:
        raise IdentifierError(EMPTY)
    if not _is_digits(number):
        raise IdentifierError(DIGITS_ONLY)
    if len(number) != length:
        raise IdentifierError(f"doit comporter {length} chiffres")
    return number


def _luhn_digits(raw: str, length: int) -> str:
    number = _digits(raw, length)
    if not luhn.is_valid(number):
        raise IdentifierError(KEY_INVALID)
    return number


# --- NIR -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Nir:
    """A checked NIR, compact (``185037599900118``; Corsica stays ``2A``/``2B``).

    ``repr`` hides the number so that a stray ``log.info(nir=...)`` leaks nothing.
    """

    value: str = field(repr=False)

    @property
    def sex(self) -> int:
        """1 (male) or 2 (female); for a temporary number, its first digit (5 to 8)."""
        return int(self.value[0])

    @property
    def is_temporary(self) -> bool:
        return self.value[0] in _NIR_TEMPORARY

    def __repr__(self) -> str:
        return "Nir(value=<masqué>)"


def parse_nir(raw: str) -> Nir:
    """Check a NIR (numéro de sécurité sociale) and return it compact.

    Months are not range-checked: INSEE issues months outside 01–12 (DOMAIN.md §9,
    unconfirmed), and a NIR is the person's identity, not ours to correct.
    """
    number = _compact(raw)
    if not number:
        raise IdentifierError(EMPTY)
    if len(number) != 15:
        raise IdentifierError("doit comporter 15 caractères")
    first = number[0]
    if first not in _NIR_PERMANENT and first not in _NIR_TEMPORARY:
        raise IdentifierError("premier chiffre invalide (1, 2, ou 5 à 8 attendu)")
    department = number[5:7]
    if not _is_digits(number[:5]) or not _is_digits(number[7:]):
        raise IdentifierError("seuls des chiffres sont admis, hors département 2A ou 2B")
    if not _is_digits(department) and department not in _CORSICA:
        raise IdentifierError("département inconnu (deux chiffres, 2A ou 2B attendus)")
    if not 1 <= int(number[13:]) <= 97:
        raise IdentifierError("clé hors de l'intervalle 01–97")
    if _nir_key(number) != number[13:]:
        if department in _CORSICA and _nir_key_as_if_20(number) == number[13:]:
            raise IdentifierError(f"{KEY_INVALID} (2A et 2B se comptent 19 et 18)")
        raise IdentifierError(KEY_INVALID)
    return Nir(number)


def _nir_key(number: str) -> str:
    """The mod-97 key, Corsica's 2A and 2B counted as 19 and 18 (what ``stdnum.fr.nir`` does,
    without its second compaction and format checks, already done by ``parse_nir``)."""
    department = number[5:7]
    body = number[:5] + _CORSICA.get(department, department) + number[7:13]
    return f"{97 - int(body) % 97:02d}"


def _nir_key_as_if_20(number: str) -> str:
    """The key a program that reads 2A/2B as 20 would have computed (a common mistake)."""
    return f"{97 - int(number[:5] + '20' + number[7:13]) % 97:02d}"


# --- Companies and health establishments ----------------------------------------------------


def parse_siren(raw: str) -> str:
    """Check a SIREN (9 digits, Luhn)."""
    number = _digits(raw, 9)
    if not stdnum_siren.is_valid(number):
        raise IdentifierError(KEY_INVALID)
    return number


def parse_siret(raw: str) -> str:
    """Check a SIRET (14 digits, Luhn; La Poste's digit-sum rule, which stdnum implements)."""
    number = _digits(raw, 14)
    if stdnum_siret.is_valid(number):
        return number
    if not stdnum_siren.is_valid(number[:9]):
        raise IdentifierError("SIREN (9 premiers chiffres) invalide")
    if number.startswith(_LA_POSTE_PREFIX) and number != _LA_POSTE_HEAD_OFFICE:
        raise IdentifierError(f"{KEY_INVALID} (La Poste : somme des chiffres multiple de 5)")
    raise IdentifierError(KEY_INVALID)


def parse_finess(raw: str) -> str:
    """Check a FINESS number: 9 characters, département first, Luhn key.

    The Luhn key is unofficial (DOMAIN.md §9, unconfirmed); existence is checked elsewhere,
    against the open data. Corsican numbers (2A/2B…) are checked for format only: where the
    letters go in the key is unknown, and refusing a real establishment costs more than
    letting a typo reach the existence check.
    """
    number = _compact(raw)
    if not number:
        raise IdentifierError(EMPTY)
    if len(number) != 9:
        raise IdentifierError("doit comporter 9 caractères")
    department = number[:2]
    if not _is_digits(department) and department not in _CORSICA:
        raise IdentifierError("département inconnu (deux chiffres, 2A ou 2B attendus)")
    if not _is_digits(number[2:]):
        raise IdentifierError("seuls des chiffres sont admis après le département")
    if department not in _CORSICA and not luhn.is_valid(number):
        raise IdentifierError(KEY_INVALID)
    return number


# --- Health professionals -------------------------------------------------------------------


def parse_rpps(raw: str) -> str:
    """Check an RPPS number (11 digits, the last a Luhn key)."""
    return _luhn_digits(raw, 11)


def parse_adeli(raw: str) -> str:
    """Check an ADELI / AM number (9 digits, Luhn key; assumed, DOMAIN.md §9)."""
    return _luhn_digits(raw, 9)


# --- Banking --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Iban:
    """A checked IBAN, compact and upper-case. ``repr`` shows only the masked form."""

    value: str = field(repr=False)

    @property
    def last4(self) -> str:
        return self.value[-4:]

    @property
    def masked(self) -> str:
        """Country, IBAN key and last four characters: ``FR76 •••• 0115``."""
        return f"{self.value[:4]} •••• {self.last4}"

    def __repr__(self) -> str:
        return f"Iban({self.masked})"


def parse_iban(raw: str) -> Iban:
    """Check an IBAN: structure and length for its country, IBAN key, national key.

    For FR and MC the national key is the RIB key (``stdnum.iban`` skips it; schwifty checks
    it). For the few countries whose national key schwifty cannot compute (HU, SE in 2026.10.1)
    schwifty accepts the IBAN and emits a ``NationalChecksumNotVerified`` warning.
    """
    number = _compact(raw)
    if not number:
        raise IdentifierError(EMPTY)
    reason = ""
    try:
        iban = schwifty.IBAN(number, validate_bban=True)
    except schwifty_errors.SchwiftyException as exc:
        reason = _iban_reason(exc, number)
    else:
        return Iban(iban.compact)
    # Raised outside the except block: schwifty's messages quote the IBAN, so its exception
    # must not ride along as __context__ into a traceback or an error report.
    raise IdentifierError(reason)


def _iban_reason(exc: schwifty_errors.SchwiftyException, number: str) -> str:
    if isinstance(exc, schwifty_errors.InvalidCountryCode):
        return "pays inconnu"
    if isinstance(exc, schwifty_errors.InvalidLength):
        return "longueur invalide pour ce pays"
    if isinstance(exc, schwifty_errors.InvalidChecksumDigits):
        return "clé IBAN invalide"
    if isinstance(exc, schwifty_errors.InvalidBBANChecksum):
        return "clé RIB invalide" if number[:2] in _RIB_COUNTRIES else "clé nationale invalide"
    if isinstance(exc, schwifty_errors.InvalidStructure):
        return "structure invalide (lettres et chiffres attendus, selon le pays)"
    return "IBAN invalide"


def parse_bic(raw: str) -> str:
    """Check a BIC's format (8 or 11 characters, ISO 9362). No key exists.

    A BIC absent from schwifty's bank registry is accepted: the registry is incomplete, and
    the bank itself is what tells us whether the BIC exists.
    """
    number = _compact(raw)
    if not number:
        raise IdentifierError(EMPTY)
    reason = ""
    try:
        bic = schwifty.BIC(number)
    except schwifty_errors.SchwiftyException as exc:
        reason = _bic_reason(exc, number)
    else:
        return str(bic.compact)
    raise IdentifierError(reason)


def _bic_reason(exc: schwifty_errors.SchwiftyException, number: str) -> str:
    if isinstance(exc, schwifty_errors.InvalidLength):
        return "doit comporter 8 ou 11 caractères"
    country = number[4:6]
    if isinstance(exc, schwifty_errors.InvalidCountryCode) or not (
        country.isascii() and country.isalpha()
    ):
        return "code pays invalide"
    return "structure invalide"


# --- Medicines and insurers -----------------------------------------------------------------


def parse_cip13(raw: str) -> str:
    """Check a CIP13 code: 34009, 7 digits, EAN-13 key."""
    number = _digits(raw, 13)
    if not ean.is_valid(number):
        raise IdentifierError(KEY_INVALID)
    if not number.startswith(_CIP13_PREFIX):
        raise IdentifierError(f"doit commencer par {_CIP13_PREFIX}")
    return number


def parse_amc_number(raw: str) -> str:
    """Check a numéro AMC's format: exactly 9 digits, no key.

    DOMAIN.md §9 allows up to 10 digits (unconfirmed); every number we hold has 9, so a
    10-digit number is refused until one is seen. Existence is checked in the annuaire.
    """
    return _digits(raw, 9)
