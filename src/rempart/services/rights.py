"""Use case: a professional checks a patient's rights (DESIGN §2.3, §5).

One transaction: the audited read (``access.read_rights``) and, on ``covered``, an engagement
number and a care relationship. The answer has the same keys for the three statuses.

    check → read by full card key → decide (pure) → audit row (verification id)
          → covered? engagement + care relationship (90 days) → answer
"""

from __future__ import annotations

import base64
import secrets
import uuid
from dataclasses import dataclass
from datetime import date, timedelta
from uuid import UUID

from rempart.access import Card, read_rights, record_refusal
from rempart.db.tables import care_relationship, engagement
from rempart.db.upsert import upsert
from rempart.domain.care import PROFESSION_DOMAINS, CareDomain
from rempart.domain.channels import Channel
from rempart.domain.coverage import Contract, Guarantee
from rempart.domain.errors import (
    ChannelClosed,
    FieldError,
    Forbidden,
    InvalidFields,
    NotAuthenticated,
)
from rempart.domain.rights import Decision, Right, Status, care_date_problem, decide
from rempart.domain.roles import Permission
from rempart.security.principal import Principal
from rempart.security.pseudonyms import fingerprint
from rempart.services import channels
from rempart.services.runtime import Runtime

CARE_DATE_PAST_DAYS_MAX = 730


@dataclass(frozen=True, slots=True)
class RightsQuery:
    card: Card
    domain: CareDomain
    care_date: date


@dataclass(frozen=True, slots=True)
class RightsAnswer:
    verification_id: UUID
    status: Status
    domain: CareDomain
    care_date: date
    guarantee: Guarantee | None
    engagement_number: str | None
    valid_until: date | None


async def _refuse(rt: Runtime, actor: Principal, channel: Channel, reason: str) -> None:
    async with rt.db.transaction() as conn:
        await record_refusal(
            conn,
            principal=actor,
            channel=channel.value,
            purpose="rights_check",
            reason=reason,
            now=rt.now(),
        )


def new_engagement_number() -> str:
    """'E' + 26 base32 characters: 128 random bits, unguessable, easy to read aloud."""
    return "E" + base64.b32encode(secrets.token_bytes(16)).decode().rstrip("=")


async def check_rights(
    rt: Runtime, query: RightsQuery, *, actor: Principal, channel: Channel
) -> RightsAnswer:
    now, today = rt.now(), rt.today()
    try:
        await channels.ensure_open(rt, channel)
    except ChannelClosed:
        await _refuse(rt, actor, channel, "channel_closed")
        raise
    if actor.structure_id is None or actor.profession is None:
        raise NotAuthenticated("Seul un professionnel de santé peut vérifier des droits.")
    problem = care_date_problem(query.care_date, today, past_days_max=CARE_DATE_PAST_DAYS_MAX)
    if problem:
        raise InvalidFields([FieldError("care_date", problem)])
    if (
        not actor.may(Permission.CHECK_RIGHTS)
        or query.domain not in PROFESSION_DOMAINS[actor.profession]
    ):
        await _refuse(rt, actor, channel, "domain_not_allowed")
        raise Forbidden(
            f"Le domaine {query.domain.value} ({query.domain.label}) ne fait pas partie "
            f"de ceux que votre profession ({actor.profession.label}) peut facturer.",
            errors=[FieldError("domain", "domaine non autorisé pour votre profession")],
        )

    def decide_for(right: Right | None, contract: Contract | None) -> Decision:
        return decide(
            right,
            contract,
            query.domain,
            query.care_date,
            engagement_days=rt.settings.engagement_validity_days,
        )

    verification_id = uuid.uuid4()
    number = None
    async with rt.db.transaction() as conn:
        read = await read_rights(
            conn,
            rt.keys,
            principal=actor,
            card=query.card,
            domain=query.domain,
            decide=decide_for,
            channel=channel.value,
            now=now,
            verification_id=verification_id,
        )
        decision = read.decision
        if decision.status is Status.COVERED and read.beneficiary_id is not None:
            assert decision.valid_until is not None
            number = new_engagement_number()
            await conn.execute(
                engagement.insert().values(
                    id=uuid.uuid4(),
                    number=number,
                    structure_id=actor.structure_id,
                    beneficiary_id=read.beneficiary_id,
                    verification_id=verification_id,
                    domain=query.domain.value,
                    care_date=query.care_date,
                    valid_until=decision.valid_until,
                    fingerprint=fingerprint(
                        rt.keys,
                        actor.structure_id,
                        read.beneficiary_id,
                        query.domain,
                        query.care_date,
                    ),
                    created_at=now,
                )
            )
            expires = now + timedelta(days=rt.settings.care_relationship_days)
            await conn.execute(
                upsert(
                    rt.db.dialect,
                    care_relationship,
                    {
                        "structure_id": actor.structure_id,
                        "beneficiary_id": read.beneficiary_id,
                        "opened_at": now,
                        "expires_at": expires,
                    },
                    keys=["structure_id", "beneficiary_id"],
                    update={"expires_at": expires},
                )
            )
    return RightsAnswer(
        verification_id,
        decision.status,
        query.domain,
        query.care_date,
        decision.guarantee,
        number,
        decision.valid_until,
    )
