"""Use case: a professional simulates what the insurer will pay (a CLC, DOMAIN.md §4).

The same engine as adjudication (``domain.calculation``), on the person's guarantees and what
they already consumed this year and renewal period. Only for a person the structure serves (an
open care relationship, from a covered rights check): anyone else gets the one ``unknown``
answer, as an unknown card does. Audited like a rights check: one row per simulation, naming
the person whose coverage was read.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any
from uuid import UUID

from rempart import access
from rempart.domain.adjudication import (
    RENEWAL_YEARS_MAX,
    age_on,
    calculation_line,
    consumption,
    request_problems,
    years_before,
)
from rempart.domain.calculation import Calculation, compute
from rempart.domain.care import PROFESSION_DOMAINS
from rempart.domain.channels import Channel
from rempart.domain.errors import FieldError, InvalidFields
from rempart.domain.roles import Permission
from rempart.security import audit
from rempart.security.principal import Principal
from rempart.security.pseudonyms import card_index
from rempart.services import admission
from rempart.services.runtime import Runtime


@dataclass(frozen=True, slots=True)
class Simulation:
    calculation_id: UUID
    care_date: date
    result: Calculation | None  # None: unknown card, or a person this structure does not serve


async def simulate(rt: Runtime, actor: Principal, doc: Mapping[str, Any]) -> Simulation:
    await admission.admit(
        rt,
        actor,
        channel=Channel.API_RIGHTS,
        permission=Permission.SUBMIT_INVOICES,
        purpose="calculation",
        refusal="Seul un professionnel de santé peut simuler une prise en charge.",
    )
    care_date = date.fromisoformat(doc["care_date"])
    lines = [calculation_line(line, care_date) for line in doc["lines"]]
    allowed = PROFESSION_DOMAINS[actor.profession] if actor.profession else frozenset()
    errors = request_problems(lines) + [
        FieldError(f"lines.{i}.domain", "domaine non autorisé pour votre profession")
        for i, line in enumerate(lines)
        if line.domain not in allowed
    ]
    if care_date > rt.today():
        errors.append(FieldError("care_date", "la date de soins ne peut pas être dans le futur"))
    who = doc["beneficiary"]
    birth = date.fromisoformat(who["birth_date"])
    if birth > care_date:  # checked before anything is read: the engine needs the age
        errors.append(FieldError("beneficiary.birth_date", "postérieure à la date des soins"))
    if errors:
        raise InvalidFields(errors)
    bi = card_index(rt.keys, who["amc_number"], who["adherent_number"], birth, who.get("rank", 1))
    assert actor.structure_id is not None
    calculation_id = uuid.uuid4()
    now = rt.now()
    async with rt.db.transaction() as conn:
        look = await access.claim_lookups(
            conn,
            cards=[bi],
            structures=[actor.structure_id],
            numbers=[],
            history_since=years_before(care_date, RENEWAL_YEARS_MAX + 1),
            domains=list({line.domain for line in lines}),
        )
        person = look.insured.get(bi)
        expires = look.relationships.get((actor.structure_id, person.id)) if person else None
        served = person is not None and expires is not None and expires >= now
        result = None
        if person is not None and served:
            result = compute(
                lines,
                person.guarantees,
                consumption=consumption(care_date, look.history.get(person.id, [])),
                age_years=age_on(birth, care_date),
                responsible=person.responsible,
            )
        await audit.record(
            conn,
            event_id=calculation_id,
            at=now,
            actor=actor,
            channel="api",
            purpose="calculation",
            result="computed" if result is not None else "unknown",
            # the person whose card was used is named even when not served: probing is traced
            subject_kind="beneficiary" if person is not None else None,
            subject_id=person.id if person is not None else None,
            ocam_id=person.ocam_id if person is not None else None,
            categories=("coverage",) if result is not None else (),
            detail=None if served or person is None else {"reason": "no_care_relationship"},
        )
    return Simulation(calculation_id, care_date, result)
