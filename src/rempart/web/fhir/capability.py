"""The CapabilityStatement (``GET /fhir/r4/metadata``): exactly what the FHIR facade does,
built from one table (``INTERACTIONS``) that a test compares with the routes really mounted.
Also the OpenAPI descriptions of the FHIR answers (their required elements; the full
resources are FHIR R4B's, which tests check with fhir.resources)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from rempart.web.fhir.systems import Systems

FHIR_VERSION = "4.3.0"  # R4B: fhir.resources' R4B models are the reference
INTERACTIONS: dict[str, tuple[str, ...]] = {
    "CoverageEligibilityRequest": ("create",),
    "Claim": ("create",),
    "ClaimResponse": ("read",),
    "PaymentReconciliation": ("search-type",),
}
SEARCH_PARAMS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "PaymentReconciliation": (
        ("requestor", "reference", "Votre structure, `<système FINESS ou RPPS>|<numéro>`."),
    ),
}
DOCS = {
    "CoverageEligibilityRequest": "Vérification des droits : répond par une "
    "CoverageEligibilityResponse (statut, garantie du domaine, numéro d'engagement en preAuthRef).",
    "Claim": "Facture : reçue (ClaimResponse outcome=queued), puis décidée (outcome=complete).",
    "ClaimResponse": "Décision d'une facture, ligne par ligne.",
    "PaymentReconciliation": "Paiements reçus et relevés (RSP), facture par facture.",
}
STATUS_TEXT = {
    400: "Corps illisible",
    401: "Authentification requise",
    403: "Accès refusé",
    404: "Introuvable",
    409: "Conflit (numéro de facture ou clé d'idempotence déjà utilisés)",
    413: "Requête trop volumineuse",
    415: "Type de contenu non pris en charge",
    422: "Éléments invalides",
    429: "Trop de requêtes",
    503: "Service fermé",
}


def statement(sid: Systems, public_base_url: str) -> dict[str, Any]:
    resources = []
    for kind, interactions in INTERACTIONS.items():
        entry: dict[str, Any] = {
            "type": kind,
            "documentation": DOCS[kind],
            "interaction": [{"code": code} for code in interactions],
        }
        if kind in SEARCH_PARAMS:
            entry["searchParam"] = [
                {"name": n, "type": t, "documentation": d} for n, t, d in SEARCH_PARAMS[kind]
            ]
        resources.append(entry)
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-12-02",
        "publisher": "Rempart",
        "kind": "instance",
        "software": {"name": "Rempart", "version": "0.1.0"},
        "implementation": {
            "description": "Rempart, tiers payant : façade FHIR R4 (modèles R4B)",
            "url": f"{sid.base}/r4",
        },
        "fhirVersion": FHIR_VERSION,
        "format": ["application/fhir+json"],
        "rest": [
            {
                "mode": "server",
                "documentation": f"Profils et systèmes : {public_base_url}/docs (docs/fhir.md).",
                "security": {
                    "service": [
                        {
                            "coding": [
                                {
                                    "system": "http://terminology.hl7.org/CodeSystem/"
                                    "restful-security-service",
                                    "code": "OAuth",
                                }
                            ]
                        }
                    ],
                    "description": "OAuth 2.0 client credentials sur /oauth/token, puis "
                    "Authorization: Bearer ….",
                },
                "resource": resources,
            }
        ],
    }


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class Issue(_Open):
    severity: Literal["error"]
    code: str


class OperationOutcomeDoc(_Open):
    """FHIR OperationOutcome: one issue with the stable code, then one per element at fault."""

    resourceType: Literal["OperationOutcome"]
    issue: list[Issue]


class CapabilityDoc(_Open):
    resourceType: Literal["CapabilityStatement"]
    status: Literal["active"]
    fhirVersion: str
    rest: list[dict[str, Any]]


class EligibilityResponseDoc(_Open):
    resourceType: Literal["CoverageEligibilityResponse"]
    id: str
    status: Literal["active"]
    purpose: list[Literal["benefits"]]
    outcome: Literal["complete"]
    patient: dict[str, Any]
    insurer: dict[str, Any]
    request: dict[str, Any]
    created: str


class ClaimResponseDoc(_Open):
    resourceType: Literal["ClaimResponse"]
    id: str
    status: Literal["active"]
    outcome: Literal["queued", "complete"]
    use: Literal["claim"]
    created: str


class BundleDoc(_Open):
    resourceType: Literal["Bundle"]
    type: Literal["searchset"]
    total: int
    entry: list[dict[str, Any]]
