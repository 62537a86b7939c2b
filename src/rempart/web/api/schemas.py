"""Request and response bodies of the JSON API (DESIGN §5). Separate from tables and from the
domain: a column added for storage never leaks into the API.

Amounts are decimal strings in euros; dates are ISO ``YYYY-MM-DD`` strings, nothing else.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
)

from rempart.domain.care import CareDomain
from rempart.domain.identifiers import IdentifierError, parse_nir

_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _iso_date(value: Any) -> date:
    if not isinstance(value, str) or not _ISO.match(value):
        raise ValueError("date invalide (AAAA-MM-JJ attendu)")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError("date inexistante") from None


def _nir(value: str | None) -> str | None:
    """A valid NIR, returned compact; the reason of a bad one never repeats the value."""
    if value is None:
        return None
    try:
        return parse_nir(value).value
    except IdentifierError as e:
        raise ValueError(e.reason) from None


IsoDate = Annotated[
    date, BeforeValidator(_iso_date), Field(json_schema_extra={"type": "string", "format": "date"})
]
Euros = Annotated[str, Field(pattern=r"^-?\d+\.\d{2}$", examples=["12.34"])]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RightsCheckIn(Strict):
    amc_number: StrictStr = Field(
        pattern=r"^\d{9}$", description="Numéro AMC (9 chiffres) de l'attestation."
    )
    adherent_number: StrictStr = Field(
        min_length=1, max_length=20, pattern=r"^[A-Za-z0-9]+$", description="Numéro d'adhérent."
    )
    birth_date: IsoDate
    rank: StrictInt = Field(default=1, ge=1, le=9, description="Rang de naissance (jumeaux).")
    nir: Annotated[StrictStr | None, AfterValidator(_nir)] = Field(
        default=None,
        max_length=21,
        description="NIR lu sur la carte Vitale (15 caractères) ; doit alors correspondre.",
    )
    domain: CareDomain
    care_date: IsoDate


class CoverageOut(BaseModel):
    formula: str
    rate_pct: int | None
    flat_amount: Euros | None
    ceiling_amount: Euros | None
    label: str


class RightsCheckOut(BaseModel):
    verification_id: UUID
    status: Literal["covered", "not_covered", "unknown"]
    domain: CareDomain
    care_date: date
    coverage: CoverageOut | None
    engagement_number: str | None
    valid_until: date | None


class TokenOut(BaseModel):
    access_token: str
    token_type: Literal["Bearer"]
    expires_in: int


class FieldProblem(BaseModel):
    field: str
    reason: str


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str
    title: str
    status: int
    detail: str
    code: str
    errors: list[FieldProblem]


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {
        s: {"model": Problem, "content": {"application/problem+json": {}}, "description": desc}
        for s, desc in (
            (400, "Corps illisible"),
            (401, "Authentification requise"),
            (403, "Accès refusé"),
            (404, "Introuvable"),
            (413, "Requête trop volumineuse"),
            (415, "Type de contenu non pris en charge"),
            (422, "Champs invalides"),
            (429, "Trop de requêtes"),
            (503, "Service fermé"),
        )
        if s in statuses
    }
