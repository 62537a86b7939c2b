"""Request and response bodies of the JSON API (DESIGN §5). Separate from tables and from the
domain: a column added for storage never leaks into the API.

Amounts are decimal strings in euros; dates are ISO ``YYYY-MM-DD`` strings, nothing else.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import orjson
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationInfo,
    field_validator,
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
            (409, "Conflit (clé d'idempotence déjà utilisée pour un autre contenu)"),
            (413, "Requête trop volumineuse"),
            (415, "Type de contenu non pris en charge"),
            (422, "Champs invalides"),
            (429, "Trop de requêtes"),
            (503, "Service fermé"),
        )
        if s in statuses
    }


# -- invoices (DESIGN §5) --------------------------------------------------------------------

Amount = Annotated[
    StrictStr,
    Field(
        pattern=r"^\d{1,7}\.\d{2}$",
        description="Montant en euros, deux décimales (« 12.34 »).",
        examples=["12.34"],
    ),
]
CODE_PATTERNS = {
    "CIP13": r"^\d{13}$",
    "LPP": r"^\d{7}$",
    "CCAM": r"^[A-Z]{4}\d{3}$",
    "NGAP": r"^[A-Z]{1,3}\d{0,4}$",
}


class BeneficiaryIn(Strict):
    amc_number: StrictStr = Field(pattern=r"^\d{9}$")
    adherent_number: StrictStr = Field(min_length=1, max_length=20, pattern=r"^[A-Za-z0-9]+$")
    rank: StrictInt = Field(default=1, ge=1, le=9)
    birth_date: IsoDate


class _LineIn(Strict):
    # the code's format depends on its system: said in the schema too, so that a generated
    # client (and the contract test) sends what the validator below accepts
    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        json_schema_extra={
            "anyOf": [
                {
                    "properties": {
                        "code_system": {"const": system},
                        "code": {"pattern": pattern},
                    }
                }
                for system, pattern in CODE_PATTERNS.items()
            ]
        },
    )

    domain: CareDomain
    code_system: Literal["CIP13", "LPP", "CCAM", "NGAP"]
    code: StrictStr = Field(min_length=1, max_length=13)
    quantity: StrictInt = Field(ge=1, le=9999)
    unit_price: Amount
    brss: Amount
    amo_rate: StrictInt = Field(ge=0, le=100, description="Taux AMO en % entier.")
    sante_class: Literal["A", "B", "I", "II", "100pct", "maitrise", "libre"] | None = None
    optic_kind: Literal["frame", "lens_simple", "lens_complex", "lens_very_complex"] | None = None
    equipment: StrictStr | None = Field(default=None, min_length=1, max_length=20)
    side: Literal["right", "left"] | None = None
    plv: Amount | None = None

    @field_validator("code")
    @classmethod
    def _code_format(cls, code: str, info: ValidationInfo) -> str:
        system = info.data.get("code_system")
        if system is not None and not re.match(CODE_PATTERNS[system], code):
            raise ValueError(f"code {system} mal formé")
        return code


class InvoiceLineIn(_LineIn):
    amo_amount: Amount
    amc_amount_claimed: Amount


class CalculationLineIn(_LineIn):
    amo_amount: Amount | None = Field(
        default=None, description="Part AMO si connue ; sinon calculée avec le taux."
    )


class CalculationIn(Strict):
    care_date: IsoDate
    beneficiary: BeneficiaryIn
    lines: list[CalculationLineIn] = Field(min_length=1, max_length=99)


class StepOut(BaseModel):
    code: str
    label: str


class CalculationLineOut(BaseModel):
    line_no: int
    expense: Euros
    amo_amount: Euros
    amc_amount: Euros
    patient_amount: Euros
    capped: bool
    trace: list[StepOut]


class CalculationOut(BaseModel):
    calculation_id: UUID
    status: Literal["computed", "unknown"]
    care_date: date
    amc_amount: Euros | None
    patient_amount: Euros | None
    lines: list[CalculationLineOut]


class InvoiceIn(Strict):
    invoice_number: StrictStr = Field(
        min_length=1, max_length=40, pattern=r"^[A-Za-z0-9._/-]+$", description="Votre numéro."
    )
    care_date: IsoDate
    engagement_number: StrictStr | None = Field(default=None, max_length=40)
    pec_number: StrictStr | None = Field(default=None, max_length=40)
    beneficiary: BeneficiaryIn
    lines: list[InvoiceLineIn] = Field(min_length=1, max_length=99)


class InvoiceBatchIn(Strict):
    invoices: list[dict[str, Any]] = Field(
        min_length=1,
        max_length=1000,
        description="Factures au format de POST /api/v1/invoices ; chacune validée à part.",
    )

    @field_validator("invoices")
    @classmethod
    def _hashable(cls, invoices: list[dict[str, Any]]) -> list[dict[str, Any]]:
        try:  # the batch's idempotency hash is over its canonical JSON
            orjson.dumps(invoices, option=orjson.OPT_SORT_KEYS)
        except TypeError:
            raise ValueError("nombre hors limites (entiers de 64 bits au plus)") from None
        return invoices


class InvoiceReceiptOut(BaseModel):
    invoice_id: UUID
    status: Literal["received"]
    received_at: datetime


class ReasonOut(BaseModel):
    code: str
    label: str
    kind: Literal["rejection", "signalement"]


class InvoiceLineOut(BaseModel):
    line_no: int
    status: Literal["accepted", "rejected"]
    amo_amount: Euros
    amc_amount: Euros
    patient_amount: Euros
    reasons: list[ReasonOut]


class InvoiceOut(BaseModel):
    invoice_id: UUID
    invoice_number: str
    status: Literal["received", "accepted", "rejected", "paid", "cancelled"]
    received_at: datetime
    decided_at: datetime | None
    amc_amount: Euros | None
    lines: list[InvoiceLineOut]


class InvoiceSummaryOut(BaseModel):
    invoice_id: UUID
    invoice_number: str
    status: Literal["received", "accepted", "rejected", "paid", "cancelled"]
    care_date: date
    received_at: datetime
    decided_at: datetime | None
    amc_amount: Euros | None


class InvoiceListOut(BaseModel):
    items: list[InvoiceSummaryOut]
    next_cursor: str | None


class ArlInvoiceOut(BaseModel):
    index: int
    invoice_number: str | None
    invoice_id: UUID
    status: Literal["received"]
    replayed: bool = False


class ArlRejectOut(BaseModel):
    index: int
    invoice_number: str | None
    code: str
    errors: list[FieldProblem]


class ArlOut(BaseModel):
    batch_id: UUID
    received_at: datetime
    accepted: int
    invoices: list[ArlInvoiceOut]
    rejected: list[ArlRejectOut]


# -- prises en charge --------------------------------------------------------------------------


class PecIn(Strict):
    care_date: IsoDate = Field(description="Date du devis.")
    beneficiary: BeneficiaryIn
    vision_change: StrictBool = Field(
        default=False, description="Changement de vue attesté (renouvellement anticipé)."
    )
    lines: list[InvoiceLineIn] = Field(
        min_length=1, max_length=20, description="Lignes du devis ; amc_amount_claimed : demandé."
    )


class PecOut(BaseModel):
    pec_id: UUID
    pec_number: str
    status: Literal["accepted", "partial", "refused", "to_review", "cancelled", "consumed"]
    status_label: str
    care_date: date
    valid_until: date | None
    amc_amount: Euros
    reasons: list[ReasonOut]
    lines: list[InvoiceLineOut]


# -- payments ----------------------------------------------------------------------------------


class PaymentOut(BaseModel):
    payment_id: UUID
    run_id: UUID
    amount: Euros
    end_to_end_id: str | None
    remittance_ref: str
    executed_on: date


class RemittanceLineOut(BaseModel):
    invoice_id: UUID
    invoice_number: str
    care_date: date
    status: Literal["paid", "rejected", "cancelled"]
    amc_amount: Euros
    reasons: list[ReasonOut]


class RemittanceOut(BaseModel):
    payment_id: UUID
    remittance_ref: str
    end_to_end_id: str | None
    executed_on: date
    amount: Euros
    advance_netted: Euros = Field(description="Retenu sur ce paiement au titre d'un acompte.")
    lines: list[RemittanceLineOut]
