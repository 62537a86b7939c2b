"""The insurer's beneficiary file (DESIGN §5, ``docs/formats/beneficiaries.md``): parsing and
validation of every row, problems reported as values.

A file is CSV, UTF-8, with a header row; the separator (``;`` or ``,``) is read from the header.
Required columns, in any order: ``adherent_number, rank, nir, birth_date, last_name,
first_name, contract_code, valid_from, valid_to``. Unknown columns are refused. Each row gives a
``Row`` or one ``Reject`` per faulty field:

    >>> header = parse_header(";".join(COLUMNS))
    >>> header.delimiter
    ';'
    >>> check_row(3, {"adherent_number": "A1", "rank": "0", "nir": "185037599900118",
    ...   "birth_date": "1985-03-01", "last_name": "Durand", "first_name": "Anne",
    ...   "contract_code": "ESS", "valid_from": "2026-01-01", "valid_to": ""},
    ...   contract_codes={"ESS"}, today=date(2026, 12, 2))
    [Reject(line=3, field='rank', reason='rang entre 1 et 9 attendu')]

What is wrong with the *file* rather than a row (encoding, header, a truncated last line, an
over-long line) raises ``FileFormatError``, and nothing is imported.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import date

from rempart.domain.errors import RempartError
from rempart.domain.identifiers import IdentifierError, Nir, parse_nir

COLUMNS = (
    "adherent_number",
    "rank",
    "nir",
    "birth_date",
    "last_name",
    "first_name",
    "contract_code",
    "valid_from",
    "valid_to",
)
LINE_CHARS_MAX = 2_000
NAME_CHARS_MAX = 100
_ADHERENT = re.compile(r"^[A-Za-z0-9]{1,20}$")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_COLUMN_NAME = re.compile(r"^[a-z][a-z_]{0,39}$")
_RANK = re.compile(r"^[1-9]$")
OLDEST_BIRTH = date(1900, 1, 1)


class FileFormatError(RempartError):
    code = "malformed_file"
    status = 422
    title = "Fichier illisible"

    def __init__(self, message: str, *, line: int | None = None) -> None:
        self.line = line
        super().__init__(f"ligne {line} : {message}" if line else message)


@dataclass(frozen=True, slots=True)
class Header:
    delimiter: str
    columns: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Reject:
    line: int
    field: str
    reason: str


@dataclass(frozen=True, slots=True)
class Row:
    line: int
    adherent_number: str
    rank: int
    nir: Nir
    birth_date: date
    last_name: str
    first_name: str
    contract_code: str
    valid_from: date
    valid_to: date | None

    @property
    def card_key(self) -> tuple[str, date, int]:
        return (self.adherent_number, self.birth_date, self.rank)


def parse_header(line: str) -> Header:
    text = line.lstrip("\ufeff").rstrip("\r\n")
    delimiter = ";" if text.count(";") >= text.count(",") else ","
    columns = tuple(c.strip().lower() for c in text.split(delimiter))
    missing = [c for c in COLUMNS if c not in columns]
    unknown = [c for c in columns if c not in COLUMNS]
    dupes = sorted({c for c in columns if columns.count(c) > 1})
    if len(missing) == len(COLUMNS):
        raise FileFormatError(
            "aucune des colonnes attendues : la première ligne doit être l'en-tête "
            f"({', '.join(COLUMNS)})",
            line=1,
        )
    problems = []
    if missing:
        problems.append("colonnes manquantes : " + ", ".join(missing))
    # Unknown names are echoed only when they look like column names: a file without its header
    # would otherwise put its first person's NIR and names into the error message.
    shown = [c for c in unknown if _COLUMN_NAME.match(c)]
    if shown:
        problems.append("colonnes inconnues : " + ", ".join(shown[:10]))
    if len(shown) < len(unknown):
        problems.append(
            f"{len(unknown) - len(shown)} colonne(s) au nom invalide "
            "(la première ligne est-elle bien l'en-tête ?)"
        )
    if dupes:
        problems.append("colonnes en double : " + ", ".join(dupes))
    if problems:
        raise FileFormatError("en-tête invalide — " + " ; ".join(problems), line=1)
    return Header(delimiter, columns)


def _date(value: str, field: str, line: int, rejects: list[Reject]) -> date | None:
    if not _ISO_DATE.match(value):
        rejects.append(Reject(line, field, "date invalide (AAAA-MM-JJ attendu)"))
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        rejects.append(Reject(line, field, "date inexistante"))
        return None


def _name(value: str, field: str, line: int, rejects: list[Reject]) -> str:
    if not value:
        rejects.append(Reject(line, field, "obligatoire"))
    elif len(value) > NAME_CHARS_MAX:
        rejects.append(Reject(line, field, f"{NAME_CHARS_MAX} caractères au plus"))
    elif _CONTROL.search(value):
        rejects.append(Reject(line, field, "caractères de contrôle interdits"))
    return value


def check_row(
    line: int, values: Mapping[str, str], *, contract_codes: Collection[str], today: date
) -> Row | list[Reject]:
    """One row, every field checked; returns the row or every problem found in it."""
    return check_fields(
        line,
        tuple(values.get(k) or "" for k in COLUMNS),
        contract_codes=contract_codes,
        today=today,
    )


def check_fields(
    line: int, values: Sequence[str], *, contract_codes: Collection[str], today: date
) -> Row | list[Reject]:
    """``check_row`` for the values in ``COLUMNS`` order (what the file reader gives)."""
    adherent, rank_text, nir_text, birth_text, last, first, code, start_text, end_text = (
        v.strip() for v in values
    )
    rejects: list[Reject] = []
    adherent = adherent.upper()
    if not _ADHERENT.match(adherent):
        rejects.append(Reject(line, "adherent_number", "1 à 20 lettres ou chiffres attendus"))
    rank = int(rank_text) if _RANK.match(rank_text) else 0
    if not rank:
        rejects.append(Reject(line, "rank", "rang entre 1 et 9 attendu"))
    nir: Nir | None = None
    try:
        nir = parse_nir(nir_text)
    except IdentifierError as e:
        rejects.append(Reject(line, "nir", e.reason))
    birth = _date(birth_text, "birth_date", line, rejects)
    if birth is not None and not OLDEST_BIRTH <= birth <= today:
        rejects.append(Reject(line, "birth_date", "date de naissance hors bornes"))
    _name(last, "last_name", line, rejects)
    _name(first, "first_name", line, rejects)
    if code not in contract_codes:
        rejects.append(Reject(line, "contract_code", "contrat inconnu pour cet organisme"))
    start = _date(start_text, "valid_from", line, rejects)
    end = _date(end_text, "valid_to", line, rejects) if end_text else None
    if start is not None and end is not None and end < start:
        rejects.append(Reject(line, "valid_to", "antérieure au début de validité"))
    if rejects:
        return rejects
    assert nir is not None
    assert birth is not None
    assert start is not None
    return Row(line, adherent, rank, nir, birth, last, first, code, start, end)
