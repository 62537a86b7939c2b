"""Transitional passwords (DESIGN §4.1): only where an operator allows them, and never enough
alone — a sign-in also needs a TOTP code (``security.totp``), see ``services.passwords``.

- argon2id (argon2-cffi, its RFC 9106 defaults), the PHC string stored, never the password;
- at least 15 characters, no composition rules (NIST SP 800-63B);
- refused when it is one of the 30,000 most common passwords (``data/common-passwords.txt``,
  shipped in the package: no online service is reachable), a list entry repeated
  (``passwordpassword``) or padded with digits and signs (``password123456789``), one
  character repeated, a sequence (``123456789012345`` counts: ``1234567890`` is listed), or
  contains the user name;
- an unknown account is checked against a dummy hash, so that its answer takes as long.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from itertools import pairwise

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

CHARS_MIN = 15
CHARS_MAX = 256  # argon2 takes any length; a bound keeps one request's hashing bounded

_HASHER = PasswordHasher()  # argon2id, RFC 9106 low-memory profile


@cache
def common_passwords() -> frozenset[str]:
    text = files("rempart.security").joinpath("data/common-passwords.txt").read_text("utf-8")
    return frozenset(
        line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")
    )


def problems(password: str, *, username: str = "") -> list[str]:
    """Why a new password is refused (French, for the form), or an empty list.

    >>> problems("court")
    ['15 caractères au moins']
    >>> problems("passwordpassword")
    ['trop courant : il figure parmi les mots de passe les plus utilisés']
    >>> problems("pharmacie des Lilas, comptoir 2")
    []
    """
    if len(password) < CHARS_MIN:
        return [f"{CHARS_MIN} caractères au moins"]
    if len(password) > CHARS_MAX:
        return [f"{CHARS_MAX} caractères au plus"]
    folded = password.casefold()
    common = common_passwords()
    core = folded.strip(_PADDING)
    if (
        folded in common
        or _repeats_common(folded, common)
        or len(set(folded)) == 1
        or (core in common or _repeats_common(core, common) or _sequence(core))
        or _sequence(folded)
    ):
        return ["trop courant : il figure parmi les mots de passe les plus utilisés"]
    if username and username.casefold() in folded:
        return ["ne doit pas contenir votre identifiant"]
    return []


_PADDING = "0123456789 !?.,;:-_*#@&$%+=/\\'\"()[]{}"


def _sequence(folded: str) -> bool:
    """Characters that run up or down by one (``abcdef…``), or cycle over digits; also what
    is left of a password once its padding is stripped, when that is almost nothing."""
    if len(folded) < 4:
        return True
    steps = {(ord(b) - ord(a)) % 10 if a.isdigit() and b.isdigit() else ord(b) - ord(a)
             for a, b in pairwise(folded)}  # fmt: skip
    return steps in ({1}, {-1}, {9})


def _repeats_common(folded: str, common: frozenset[str]) -> bool:
    for size in range(1, len(folded) // 2 + 1):
        if len(folded) % size == 0 and folded[:size] * (len(folded) // size) == folded:
            return folded[:size] in common
    return False


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


@cache
def _dummy() -> str:
    return _HASHER.hash("rempart: no account has this password")


def verify(stored: str | None, password: str) -> bool:
    """Whether ``password`` matches ``stored``; with no stored hash, the same work is done
    against a dummy one and the answer is False."""
    try:
        return _HASHER.verify(stored or _dummy(), password[:CHARS_MAX]) and stored is not None
    except (VerificationError, InvalidHashError):
        return False
