"""Blind indexes: keyed HMACs that let us find a row by a value without storing the value.

Each value is normalised first (compact, upper case) so that the same card typed two ways
finds the same person. The card index needs every element a card and a present patient give
(numéro AMC, numéro d'adhérent, birth date, rank): there is no partial index to search by.
"""

from __future__ import annotations

import base64
from datetime import date

from rempart.security.keys import KeyRing


def card_index(
    keys: KeyRing, amc_number: str, adherent_number: str, birth: date, rank: int
) -> bytes:
    return keys.blind_index(
        "card", f"{amc_number}|{adherent_number.upper()}|{birth.isoformat()}|{rank}"
    )


def adherent_index(keys: KeyRing, amc_number: str, adherent_number: str) -> bytes:
    return keys.blind_index("adherent", f"{amc_number}|{adherent_number.upper()}")


def nir_index(keys: KeyRing, nir: str) -> bytes:
    return keys.blind_index("nir", nir)


def iban_index(keys: KeyRing, iban: str) -> bytes:
    return keys.blind_index("iban", iban)


def canary_engagement_number(keys: KeyRing, principal_id: object, beneficiary_id: object) -> str:
    """The engagement number a principal gets for a canary: it looks like any other (E + 26
    base32 characters) but is a keyed mark of (principal, canary), so a number found in a dump
    names the credential that read it (``rempart security identify``)."""
    mark = keys.blind_index("canary-mark", f"{principal_id}|{beneficiary_id}")
    return "E" + base64.b32encode(mark).decode().rstrip("=")


def fingerprint(keys: KeyRing, *parts: object) -> bytes:
    """A keyed hash of a record's content: equal content, equal fingerprint; reveals nothing."""
    return keys.blind_index("fingerprint", "\x1f".join(str(p) for p in parts))
