"""FHIR R4 views under ``/fhir/r4/`` (DESIGN §5): parse → call the same service as the JSON API
→ render. Same bearer tokens, quotas, audit and access rules: each view calls the function the
JSON view calls, with the same principal; only the shapes differ.

    POST CoverageEligibilityRequest → rights.check_rights   → CoverageEligibilityResponse
    POST Claim                      → invoices.submit       → ClaimResponse (queued)
    GET  ClaimResponse/{id}         → invoices.get          → ClaimResponse (queued | complete)
    GET  PaymentReconciliation      → payments.remittance   → Bundle of PaymentReconciliation
    GET  metadata                   → the CapabilityStatement (``capability``)

No ``from __future__ import annotations`` here: the request models are built per application
(their system URLs are the configured base URL's) and FastAPI reads the views' annotations.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any
from uuid import UUID

import orjson
from fastapi import APIRouter, Body, Depends, Header, Query, Request
from pydantic import ValidationError
from starlette.responses import JSONResponse, Response

from rempart.config import Settings
from rempart.domain.errors import FieldError, Forbidden, InvalidFields, RempartError
from rempart.security.principal import Principal
from rempart.services import invoices, payments, registry
from rempart.web.api.routes import answer_rights_check
from rempart.web.api.schemas import InvoiceIn, RightsCheckIn
from rempart.web.deps import NO_STORE, api_principal, replay_headers, runtime
from rempart.web.fhir import capability, resources
from rempart.web.fhir.outcome import FHIR_JSON, fhir_path
from rempart.web.fhir.shapes import ORGANIZATION, build
from rempart.web.fhir.systems import Systems
from rempart.web.problems import field_errors

PREFIX = "/fhir/r4"


class UnsupportedMediaType(RempartError):
    code = "unsupported_media_type"
    status = 415
    title = "Type de contenu non pris en charge"


class FhirResponse(JSONResponse):
    media_type = FHIR_JSON

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


async def require_fhir_json(request: Request) -> None:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype not in (FHIR_JSON, "application/json"):
        raise UnsupportedMediaType("Le corps doit être envoyé en application/fhir+json.")


def _outcomes(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {
        s: {"model": capability.OperationOutcomeDoc, "description": capability.STATUS_TEXT[s]}
        for s in statuses
    }


def fhir_response(body: dict[str, Any], status: int = 200, **headers: str) -> Response:
    return FhirResponse(body, status_code=status, headers={**NO_STORE, **headers})


def _rights_query(body: Any) -> RightsCheckIn:
    patient = body.contained[0]
    identifiers = patient.identifier
    try:
        return RightsCheckIn.model_validate(
            {
                "amc_number": body.insurer.identifier.value,
                "adherent_number": identifiers[0].value,
                "birth_date": patient.birthDate.isoformat(),
                "rank": patient.extension[0].valueInteger if patient.extension else 1,
                "nir": identifiers[1].value if len(identifiers) > 1 else None,
                "domain": body.item[0].category.coding[0].code,
                "care_date": body.servicedDate.isoformat(),
            }
        )
    except ValidationError as e:
        raise InvalidFields(_renamed(field_errors(e), ELIGIBILITY_FIELDS)) from None


ELIGIBILITY_FIELDS = {
    "amc_number": "CoverageEligibilityRequest.insurer.identifier.value",
    "adherent_number": "CoverageEligibilityRequest.contained[0].identifier[0].value",
    "birth_date": "CoverageEligibilityRequest.contained[0].birthDate",
    "rank": "CoverageEligibilityRequest.contained[0].extension[0].valueInteger",
    "nir": "CoverageEligibilityRequest.contained[0].identifier[1].value",
    "domain": "CoverageEligibilityRequest.item[0].category.coding[0].code",
    "care_date": "CoverageEligibilityRequest.servicedDate",
}
_LINE_FIELDS = {
    "brss": "extension[0].valueMoney.value",
    "amo_rate": "extension[1].valueInteger",
    "amo_amount": "extension[2].valueMoney.value",
    "amc_amount_claimed": "extension[3].valueMoney.value",
    "domain": "category",
    "code_system": "productOrService.coding[0].system",
    "code": "productOrService.coding[0].code",
    "quantity": "quantity.value",
    "unit_price": "unitPrice.value",
}
CLAIM_FIELDS = {
    "invoice_number": "Claim.identifier[0].value",
    "care_date": "Claim.billablePeriod.start",
    "engagement_number": "Claim.insurance[0].preAuthRef",
    "pec_number": "Claim.insurance[0].preAuthRef",
    "beneficiary.amc_number": "Claim.insurer.identifier.value",
    "beneficiary.adherent_number": "Claim.contained[0].identifier[0].value",
    "beneficiary.birth_date": "Claim.contained[0].birthDate",
    "beneficiary.rank": "Claim.contained[0].extension[0].valueInteger",
    "beneficiary": "Claim.contained[0]",
    "lines": "Claim.item",
}


def _renamed(errors: list[FieldError], table: dict[str, str]) -> list[FieldError]:
    out = []
    for e in errors:
        name = table.get(e.field)
        if name is None and e.field.startswith("lines."):
            _, index, *rest = e.field.split(".")
            leaf = _LINE_FIELDS.get(rest[0], ".".join(rest)) if rest else ""
            name = f"Claim.item[{index}]" + (f".{leaf}" if leaf else "")
        root = next(iter(table.values())).split(".")[0]
        out.append(FieldError(name or fhir_path(e.field.split("."), root), e.reason))
    return out


@contextmanager
def _named(table: dict[str, str]) -> Iterator[None]:
    """A service's refusal names the JSON API's fields: here, the FHIR elements they come from."""
    try:
        yield
    except RempartError as exc:
        exc.errors = tuple(_renamed(list(exc.errors), table))
        raise


def _euros(value: float) -> str:
    return f"{value:.2f}"


def _invoice_doc(body: Any, systems_by_url: dict[str, str]) -> dict[str, Any]:
    patient = body.contained[0]
    refs = body.insurance[0].preAuthRef or ()
    doc: dict[str, Any] = {
        "invoice_number": body.identifier[0].value,
        "care_date": body.billablePeriod.start.isoformat(),
        "beneficiary": {
            "amc_number": body.insurer.identifier.value,
            "adherent_number": patient.identifier[0].value,
            "rank": patient.extension[0].valueInteger if patient.extension else 1,
            "birth_date": patient.birthDate.isoformat(),
        },
        "lines": [
            {
                "domain": item.category.coding[0].code,
                "code_system": systems_by_url[item.productOrService.coding[0].system],
                "code": item.productOrService.coding[0].code,
                "quantity": item.quantity.value,
                "unit_price": _euros(item.unitPrice.value),
                "brss": _euros(item.extension[0].valueMoney.value),
                "amo_rate": item.extension[1].valueInteger,
                "amo_amount": _euros(item.extension[2].valueMoney.value),
                "amc_amount_claimed": _euros(item.extension[3].valueMoney.value),
            }
            for item in sorted(body.item, key=lambda i: i.sequence)
        ],
    }
    for ref in refs:
        doc["pec_number" if ref.startswith("P") else "engagement_number"] = ref
    try:
        valid = InvoiceIn.model_validate(doc)
    except ValidationError as e:
        raise InvalidFields(_renamed(field_errors(e), CLAIM_FIELDS)) from None
    return valid.model_dump(mode="json", exclude_none=True)


def _is_own(sid: Systems, ids: registry.StructureIds, principal: Principal, given: Any) -> bool:
    """Whether ``given`` (a Claim.provider, or a requestor search value) names the caller's
    own structure: its FINESS or RPPS under our systems, or ``Organization/<its id>``."""
    if isinstance(given, str):
        system, bar, value = given.partition("|")
        if not bar:
            return given == f"Organization/{principal.structure_id}"
    elif getattr(given, "reference", None) is not None:
        return bool(given.reference == f"Organization/{principal.structure_id}")
    else:
        system, value = given.identifier.system, given.identifier.value
    own = {(sid.finess, ids.finess), (sid.rpps, ids.rpps)}
    return value is not None and (system, value) in own


def router(settings: Settings) -> APIRouter:
    sid = Systems.under(settings.public_base_url)
    shapes = build(sid)
    systems_by_url = {url: name for name, url in sid.code_system.items()}
    statement = capability.statement(sid, settings.public_base_url)
    r = APIRouter(prefix=PREFIX, tags=["FHIR R4"], default_response_class=FhirResponse)
    Eligibility: Any = shapes.eligibility
    Claim: Any = shapes.claim

    @r.get(
        "/metadata",
        summary="CapabilityStatement : ce que ce serveur FHIR sait faire",
        response_model=capability.CapabilityDoc,
        responses=_outcomes(429),
    )
    async def metadata() -> Response:
        return FhirResponse(statement)

    @r.post(
        "/CoverageEligibilityRequest",
        summary="Vérifier les droits (CoverageEligibilityRequest → CoverageEligibilityResponse)",
        response_model=capability.EligibilityResponseDoc,
        dependencies=[Depends(require_fhir_json)],
        responses=_outcomes(400, 401, 403, 413, 415, 422, 429, 503),
    )
    async def eligibility(
        body: Annotated[Eligibility, Body(media_type=FHIR_JSON)],
        request: Request,
        principal: Annotated[Principal, Depends(api_principal)],
    ) -> Response:
        rt = runtime(request)
        query = _rights_query(body)
        with _named(ELIGIBILITY_FIELDS):
            answer = await answer_rights_check(rt, query, principal)
        return fhir_response(
            resources.eligibility_response(
                sid,
                answer,
                amc_number=query.amc_number,
                adherent_number=body.contained[0].identifier[0].value,
                now=rt.now(),
            )
        )

    @r.post(
        "/Claim",
        status_code=202,
        summary="Envoyer une facture (Claim → ClaimResponse « queued »)",
        response_model=capability.ClaimResponseDoc,
        dependencies=[Depends(require_fhir_json)],
        responses=_outcomes(400, 401, 403, 409, 413, 415, 422, 429, 503),
    )
    async def claim(
        body: Annotated[Claim, Body(media_type=FHIR_JSON)],
        request: Request,
        principal: Annotated[Principal, Depends(api_principal)],
        idempotency_key: Annotated[
            str | None,
            Header(alias="Idempotency-Key", max_length=100, pattern=r"^[\x21-\x7e]+$"),
        ] = None,
    ) -> Response:
        rt = runtime(request)
        doc = _invoice_doc(body, systems_by_url)
        ids = await registry.own_identifiers(rt, principal)
        if not _is_own(sid, ids, principal, body.provider):
            raise Forbidden(
                "Claim.provider doit être la structure du jeton (son FINESS, son RPPS ou "
                "Organization/<son identifiant>).",
                errors=[FieldError("Claim.provider", "pas votre structure")],
            )
        with _named(CLAIM_FIELDS):
            receipt = await invoices.submit(
                rt, principal, doc, idempotency_key=idempotency_key, channel="fhir"
            )
        found = await invoices.get(rt, principal, receipt.invoice_id)
        return fhir_response(
            resources.claim_response(sid, found.row, found.lines, principal.profession),
            status=202,
            **replay_headers(receipt.replayed),
            Location=f"{sid.base}/r4/ClaimResponse/{receipt.invoice_id}",
        )

    @r.get(
        "/ClaimResponse/{claim_response_id}",
        summary="Lire la décision d'une facture (ClaimResponse)",
        response_model=capability.ClaimResponseDoc,
        responses=_outcomes(401, 404, 422, 429),
    )
    async def claim_response(
        claim_response_id: UUID,
        request: Request,
        principal: Annotated[Principal, Depends(api_principal)],
    ) -> Response:
        found = await invoices.get(runtime(request), principal, claim_response_id)
        return fhir_response(
            resources.claim_response(sid, found.row, found.lines, principal.profession)
        )

    @r.get(
        "/PaymentReconciliation",
        summary="Paiements reçus et relevés (RSP) de votre structure",
        response_model=capability.BundleDoc,
        responses=_outcomes(401, 403, 422, 429),
    )
    async def reconciliations(
        request: Request,
        principal: Annotated[Principal, Depends(api_principal)],
        requestor: Annotated[
            str,
            Query(
                pattern=rf"^[\x21-\x7b\x7d\x7e]{{1,200}}\|\d{{9,11}}$|{ORGANIZATION}",
                description="Votre structure : `<système FINESS ou RPPS>|<numéro>` ou "
                "`Organization/<structure_id>`.",
            ),
        ],
        count: Annotated[int, Query(alias="_count", ge=1, le=50)] = 10,
    ) -> Response:
        rt = runtime(request)
        ids = await registry.own_identifiers(rt, principal)
        if not _is_own(sid, ids, principal, requestor):
            raise Forbidden(
                "Seuls les paiements de votre propre structure sont consultables.",
                errors=[FieldError("requestor", "pas votre structure")],
            )
        found = []
        for p in (await payments.list_payments(rt, principal))[:count]:
            head, lines = await payments.remittance(rt, principal, p.id)
            found.append(resources.reconciliation(sid, head, lines, ids))
        return fhir_response(resources.bundle(sid, found))

    return r
