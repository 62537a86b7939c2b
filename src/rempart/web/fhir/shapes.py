"""The FHIR R4 request shapes Rempart accepts: exactly the elements it reads, each typed as
strictly as FHIR R4B types it (a test parses generated bodies with fhir.resources), nothing else.

An element Rempart would not read is refused (422) rather than ignored, so a client never
believes a field was taken into account. The identifier and code systems are the configured
base URL's (``systems.Systems``), so the models are built per application by ``build``; the
OpenAPI document names the exact URLs a client must send.

Invoice-line amounts that FHIR's ``Claim.item`` has no element for (BRSS, AMO rate and part,
AMC part claimed) are extensions in a fixed order; ``docs/fhir.md`` shows an example.
"""

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    StrictStr,
    WithJsonSchema,
)

from rempart.domain.care import CareDomain
from rempart.web.api.schemas import CODE_PATTERNS, IsoDate
from rempart.web.fhir.systems import NIR, Systems

ORGANIZATION = r"^Organization/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"


class Fhir(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def const(value: str) -> Any:
    """A string that must be exactly ``value`` (a system URL known only at run time)."""

    def check(v: str) -> str:
        if v != value:
            raise ValueError(f"« {value} » attendu")
        return v

    return Annotated[StrictStr, AfterValidator(check), WithJsonSchema({"const": value})]


def _cents_exact(value: float) -> float:
    if abs(round(value * 100) - value * 100) > 1e-6:
        raise ValueError("deux décimales au plus")
    return value


def _euros(description: str) -> Any:
    return Annotated[
        StrictFloat | StrictInt,
        Field(ge=0, le=9_999_999.99, description=description),
        AfterValidator(_cents_exact),
        WithJsonSchema(
            {
                "type": "number",
                "minimum": 0,
                "maximum": 9_999_999.99,
                "multipleOf": 0.01,
                "description": description,
            }
        ),
    ]


Created = Annotated[IsoDate | AwareDatetime, Field(description="Date ou date-heure de création.")]
AMC = Annotated[StrictStr, Field(pattern=r"^\d{9}$", description="Numéro AMC (9 chiffres).")]
Adherent = Annotated[StrictStr, Field(pattern=r"^[A-Za-z0-9]{1,20}$")]
Domain: Any = Literal[tuple(d.value for d in CareDomain)]


@dataclass(frozen=True)
class Shapes:
    eligibility: type[BaseModel]
    claim: type[BaseModel]


def build(sid: Systems) -> Shapes:
    class Identifier(Fhir):
        system: const(sid.amc_number)  # type: ignore[valid-type]
        value: AMC

    class InsurerRef(Fhir):
        identifier: Identifier

    class AdherentId(Fhir):
        system: const(sid.adherent_number)  # type: ignore[valid-type]
        value: Adherent

    class NirId(Fhir):
        system: const(NIR)  # type: ignore[valid-type]
        value: StrictStr = Field(pattern=r"^[0-9][0-9AB]{12}[0-9 ]{0,8}$", max_length=21)

    class RankExt(Fhir):
        url: const(sid.extension("birth-rank"))  # type: ignore[valid-type]
        valueInteger: StrictInt = Field(ge=1, le=9)

    class Patient(Fhir):
        resourceType: Literal["Patient"]
        id: Literal["patient"]
        extension: tuple[RankExt] = Field(  # type: ignore[assignment]  # absent, never null
            default=None, description="Rang de naissance (jumeaux) ; 1 par défaut."
        )
        identifier: tuple[AdherentId] | tuple[AdherentId, NirId] = Field(
            description="Le numéro d'adhérent, puis le NIR lu sur la carte Vitale (facultatif)."
        )
        birthDate: IsoDate

    class PatientRef(Fhir):
        reference: Literal["#patient"]

    class DomainCoding(Fhir):
        system: const(sid.care_domain)  # type: ignore[valid-type]
        code: Domain

    class DomainConcept(Fhir):
        coding: tuple[DomainCoding]

    class EligibilityItem(Fhir):
        category: DomainConcept

    class CoverageEligibilityRequest(Fhir):
        """A rights check: the card's fields, the domain, the care date."""

        resourceType: Literal["CoverageEligibilityRequest"]
        status: Literal["active"]
        purpose: tuple[Literal["benefits"]]
        created: Created
        servicedDate: IsoDate
        contained: tuple[Patient]
        patient: PatientRef
        insurer: InsurerRef
        item: tuple[EligibilityItem]

    class ProviderId(Fhir):
        system: const(sid.finess) | const(sid.rpps)  # type: ignore[valid-type]
        value: StrictStr = Field(pattern=r"^\d{9}$|^\d{11}$")

    class ProviderById(Fhir):
        identifier: ProviderId

    class ProviderByRef(Fhir):
        reference: StrictStr = Field(
            pattern=ORGANIZATION, description="Organization/<structure_id de clients.json>"
        )

    class InvoiceId(Fhir):
        system: const(sid.invoice_number)  # type: ignore[valid-type]
        value: StrictStr = Field(pattern=r"^[A-Za-z0-9._/-]{1,40}$")

    class TypeCoding(Fhir):
        system: const("http://terminology.hl7.org/CodeSystem/claim-type")  # type: ignore[valid-type]
        code: Literal["pharmacy", "vision", "oral", "institutional", "professional"]

    class TypeConcept(Fhir):
        coding: tuple[TypeCoding]

    class PriorityCoding(Fhir):
        system: const("http://terminology.hl7.org/CodeSystem/processpriority")  # type: ignore[valid-type]
        code: Literal["normal"]

    class PriorityConcept(Fhir):
        coding: tuple[PriorityCoding]

    class CoverageRef(Fhir):
        display: StrictStr = Field(pattern=r"^\S(.{0,98}\S)?$")

    class Insurance(Fhir):
        sequence: Literal[1]
        focal: Literal[True]
        coverage: CoverageRef
        preAuthRef: (
            tuple[Annotated[StrictStr, Field(pattern=r"^[A-Z0-9]{1,40}$")]]
            | tuple[
                Annotated[StrictStr, Field(pattern=r"^[A-Z0-9]{1,40}$")],
                Annotated[StrictStr, Field(pattern=r"^[A-Z0-9]{1,40}$")],
            ]
        ) = Field(  # type: ignore[assignment]  # absent, never null
            default=None,
            description="Numéro d'engagement (E…) et/ou de prise en charge (P…).",
        )

    systems_by_url = {url: name for name, url in sid.code_system.items()}

    class ProductCoding(Fhir):
        model_config = ConfigDict(
            extra="forbid",
            frozen=True,
            json_schema_extra={
                "anyOf": [
                    {
                        "properties": {
                            "system": {"const": url},
                            "code": {"pattern": CODE_PATTERNS[name]},
                        }
                    }
                    for url, name in systems_by_url.items()
                ]
            },
        )
        system: Literal[tuple(systems_by_url)]  # type: ignore[valid-type]
        code: StrictStr = Field(pattern=r"^[A-Z0-9]{1,13}$")

    class ProductConcept(Fhir):
        coding: tuple[ProductCoding]

    class Quantity(Fhir):
        value: StrictInt = Field(ge=1, le=9999)

    class Money(Fhir):
        value: _euros("Montant en euros, deux décimales au plus.")  # type: ignore[valid-type]
        currency: Literal["EUR"]

    def money_ext(name: str) -> type[Fhir]:
        class Ext(Fhir):
            url: const(sid.extension(name))  # type: ignore[valid-type]
            valueMoney: Money

        Ext.__name__ = Ext.__qualname__ = "Ext_" + name.replace("-", "_")
        return Ext

    Brss = money_ext("brss")
    AmoAmount = money_ext("amo-amount")
    AmcClaimed = money_ext("amc-amount-claimed")

    class AmoRate(Fhir):
        url: const(sid.extension("amo-rate"))  # type: ignore[valid-type]
        valueInteger: StrictInt = Field(ge=0, le=100)

    class Period(Fhir):
        start: IsoDate = Field(description="Date des soins.")

    class ClaimItem(Fhir):
        sequence: StrictInt = Field(ge=1, le=99)
        extension: tuple[Brss, AmoRate, AmoAmount, AmcClaimed] = Field(  # type: ignore[valid-type]
            description="BRSS, taux AMO (%), part AMO, part AMC demandée : dans cet ordre."
        )
        category: DomainConcept
        productOrService: ProductConcept
        quantity: Quantity
        unitPrice: Money

    class Claim(Fhir):
        """An invoice: received (``queued``), then decided by the worker (``complete``)."""

        resourceType: Literal["Claim"]
        identifier: tuple[InvoiceId]
        status: Literal["active"]
        type: TypeConcept
        use: Literal["claim"]
        contained: tuple[Patient]
        patient: PatientRef
        created: Created
        billablePeriod: Period
        insurer: InsurerRef
        provider: ProviderById | ProviderByRef
        priority: PriorityConcept
        insurance: tuple[Insurance]
        item: list[ClaimItem] = Field(min_length=1, max_length=99)

    return Shapes(CoverageEligibilityRequest, Claim)
