"""The URLs Rempart's FHIR resources name things with, all under the configured base URL
(DESIGN §5): identifier systems (``…/fhir/sid/…``), code systems (``…/fhir/CodeSystem/…``) and
extensions (``…/fhir/StructureDefinition/…``). ``docs/fhir.md`` publishes them.

    >>> Systems.under("https://rempart.example").amc_number
    'https://rempart.example/fhir/sid/amc-number'
"""

from __future__ import annotations

from dataclasses import dataclass

# The INS-NIR's OID (ANS): the NIR read from the carte Vitale, accepted in requests only,
# never written in a response.
NIR = "urn:oid:1.2.250.1.213.1.4.8"
ADJUDICATION = "http://terminology.hl7.org/CodeSystem/adjudication"
CLAIM_TYPE = "http://terminology.hl7.org/CodeSystem/claim-type"
BENEFIT_TYPE = "http://terminology.hl7.org/CodeSystem/benefit-type"
PAYMENT_TYPE = "http://terminology.hl7.org/CodeSystem/payment-type"
EUR = "EUR"


@dataclass(frozen=True, slots=True)
class Systems:
    base: str  # ``…/fhir``

    @classmethod
    def under(cls, public_base_url: str) -> Systems:
        return cls(public_base_url.rstrip("/") + "/fhir")

    # identifier systems
    @property
    def amc_number(self) -> str:
        return f"{self.base}/sid/amc-number"

    @property
    def adherent_number(self) -> str:
        return f"{self.base}/sid/adherent-number"

    @property
    def finess(self) -> str:
        return f"{self.base}/sid/finess"

    @property
    def rpps(self) -> str:
        return f"{self.base}/sid/rpps"

    @property
    def invoice_number(self) -> str:
        """The structure's own invoice number (unique per structure)."""
        return f"{self.base}/sid/invoice-number"

    @property
    def verification_id(self) -> str:
        return f"{self.base}/sid/verification-id"

    @property
    def remittance_ref(self) -> str:
        return f"{self.base}/sid/remittance-ref"

    @property
    def end_to_end_id(self) -> str:
        """The SEPA transfer's EndToEndId."""
        return f"{self.base}/sid/end-to-end-id"

    # code systems
    @property
    def benefit(self) -> str:
        """flat-amount | ceiling-amount: benefit types FHIR's own code system lacks."""
        return f"{self.base}/CodeSystem/benefit"

    @property
    def care_domain(self) -> str:
        return f"{self.base}/CodeSystem/care-domain"

    @property
    def reason(self) -> str:
        """R01–R16 (DOMAIN.md §6)."""
        return f"{self.base}/CodeSystem/reason"

    @property
    def reason_kind(self) -> str:
        """rejection | signalement: what an adjudication entry carrying a reason is."""
        return f"{self.base}/CodeSystem/reason-kind"

    @property
    def amount(self) -> str:
        """amo | patient: the parts of a line that are not the AMC's benefit."""
        return f"{self.base}/CodeSystem/amount"

    @property
    def rights_status(self) -> str:
        return f"{self.base}/CodeSystem/rights-status"

    @property
    def code_system(self) -> dict[str, str]:
        """The product and act code systems of invoice lines."""
        return {s: f"{self.base}/CodeSystem/{s.lower()}" for s in ("CIP13", "LPP", "CCAM", "NGAP")}

    # extensions
    def extension(self, name: str) -> str:
        return f"{self.base}/StructureDefinition/{name}"
