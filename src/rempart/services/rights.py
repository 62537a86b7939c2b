"""Use case: a professional checks a patient's rights (DESIGN §2.3, §5).

One transaction: the audited read (``access.read_rights``) and, on ``covered``, an engagement
number and a care relationship. The answer has the same keys for the three statuses.

    check → read by full card key → decide (pure) → audit row (verification id)
          → covered? engagement + care relationship (90 days) → answer

On PostgreSQL the usual check (not contained, no ceiling or threshold crossed, no canary) runs
as two prepared statements on the asyncpg connection (``_check_usual``); anything else rolls
that back and takes the general path, which handles every case.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncConnection

from rempart.access import (
    Card,
    Counted,
    Engagement,
    check_rights_counted,
    read_rights,
    record_refusal,
)
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
from rempart.domain.quotas import STRUCTURE_FACTOR, Ceiling, Verdict, ceiling_for, verdict
from rempart.domain.rights import Decision, Right, Status, care_date_problem, decide
from rempart.domain.roles import Permission
from rempart.domain.sessions import is_fresh
from rempart.security import quotas
from rempart.security.principal import ActorKind, Principal
from rempart.security.pseudonyms import canary_engagement_number, card_index, fingerprint
from rempart.services import channels, step_up
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

    @classmethod
    def of(
        cls, verification_id: UUID, query: RightsQuery, decision: Decision, number: str | None
    ) -> RightsAnswer:
        return cls(
            verification_id,
            decision.status,
            query.domain,
            query.care_date,
            decision.guarantee,
            number,
            decision.valid_until,
        )


class Contained(Forbidden):
    code = "contained"
    title = "Accès suspendu"

    def __init__(self) -> None:
        super().__init__(
            "Cet accès est suspendu par mesure de sécurité. Contactez l'opérateur pour le rétablir."
        )


def _ceilings(rt: Runtime, actor: Principal) -> tuple[Ceiling, int]:
    """The principal's daily ceilings, and its structure's alert threshold: the structure's own,
    the same for all its clients whatever their ceilings."""
    profession = actor.profession
    assert profession is not None
    ceiling = ceiling_for(
        profession,
        overrides=rt.settings.quota_ceilings,
        soft=actor.quota_soft,
        hard=actor.quota_hard,
    )
    structure_hard = ceiling_for(profession, overrides=rt.settings.quota_ceilings).hard
    return ceiling, STRUCTURE_FACTOR * structure_hard


async def _count_subject(
    rt: Runtime, conn: AsyncConnection, actor: Principal, subject: bytes, today: date
) -> tuple[Verdict, bool]:
    """Count this card for the principal and its structure; alert on the soft ceilings.
    Returns the verdict and whether the structure touched this card for the first time."""
    if actor.id is None or actor.structure_id is None or actor.profession is None:
        return Verdict.WITHIN, False
    dialect = rt.db.dialect
    ceiling, structure_max = _ceilings(rt, actor)
    n = await quotas.touch(
        conn, dialect, day=today, kind=actor.kind.value, principal_id=actor.id, subject_bi=subject
    )
    total = await quotas.touch(
        conn,
        dialect,
        day=today,
        kind="structure",
        principal_id=actor.structure_id,
        subject_bi=subject,
    )
    if total is not None and total > structure_max:
        await quotas.open_alert(
            conn,
            dialect,
            kind="structure_quota",
            principal=actor,
            principal_kind="structure",
            principal_id=actor.structure_id,
            day=today,
            now=rt.now(),
            detail={"distinct_subjects": total},
        )
    seen = verdict(new_count=n, ceiling=ceiling)
    if seen is Verdict.SOFT_CROSSED:
        await quotas.open_alert(
            conn,
            dialect,
            kind="soft_quota",
            principal=actor,
            principal_kind=actor.kind.value,
            principal_id=actor.id,
            day=today,
            now=rt.now(),
            detail={"distinct_subjects": n, "soft": ceiling.soft},
        )
    return seen, total is not None


async def _contain(
    rt: Runtime, conn: AsyncConnection, actor: Principal, reason: str, today: date
) -> None:
    assert actor.id is not None
    n = await quotas.count(conn, day=today, kind=actor.kind.value, principal_id=actor.id)
    await quotas.contain(
        conn,
        rt.db.dialect,
        principal=actor,
        reason=reason,
        day=today,
        now=rt.now(),
        detail={"distinct_subjects": n},
    )


def _engagement(
    rt: Runtime,
    actor: Principal,
    query: RightsQuery,
    beneficiary_id: UUID,
    decision: Decision,
    *,
    canary: bool,
) -> Engagement:
    """An engagement number, and the care relationship that lets this PS bill the person."""
    assert decision.valid_until is not None
    assert actor.structure_id is not None
    return Engagement(
        id=uuid.uuid4(),
        number=(
            canary_engagement_number(rt.keys, actor.id, beneficiary_id)
            if canary
            else new_engagement_number()
        ),
        domain=query.domain.value,
        care_date=query.care_date,
        valid_until=decision.valid_until,
        fingerprint=fingerprint(
            rt.keys, actor.structure_id, beneficiary_id, query.domain, query.care_date
        ),
        relationship_expires=rt.now() + timedelta(days=rt.settings.care_relationship_days),
    )


async def _engage(
    rt: Runtime,
    conn: AsyncConnection,
    actor: Principal,
    beneficiary_id: UUID,
    e: Engagement,
    verification_id: UUID,
) -> str:
    now = rt.now()
    await conn.execute(
        engagement.insert().values(
            id=e.id,
            number=e.number,
            structure_id=actor.structure_id,
            beneficiary_id=beneficiary_id,
            verification_id=verification_id,
            domain=e.domain,
            care_date=e.care_date,
            valid_until=e.valid_until,
            fingerprint=e.fingerprint,
            created_at=now,
        )
    )
    await conn.execute(
        upsert(
            rt.db.dialect,
            care_relationship,
            {
                "structure_id": actor.structure_id,
                "beneficiary_id": beneficiary_id,
                "opened_at": now,
                "expires_at": e.relationship_expires,
            },
            keys=["structure_id", "beneficiary_id"],
            update={"expires_at": e.relationship_expires},
        )
    )
    return e.number


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


async def _admit(rt: Runtime, query: RightsQuery, actor: Principal, channel: Channel) -> None:
    """The checks made before anything is looked up; each refusal is audited."""
    try:
        await channels.ensure_open(rt, channel)
    except ChannelClosed:
        await _refuse(rt, actor, channel, "channel_closed")
        raise
    if actor.structure_id is None or actor.profession is None:
        raise NotAuthenticated("Seul un professionnel de santé peut vérifier des droits.")
    problem = care_date_problem(query.care_date, rt.today(), past_days_max=CARE_DATE_PAST_DAYS_MAX)
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


async def _refuse_over_ceiling(
    rt: Runtime,
    conn: AsyncConnection,
    actor: Principal,
    subject: bytes,
    today: date,
    *,
    structure_new: bool,
    channel: Channel,
) -> None:
    """Past the hard ceiling: nothing is read, so the touch is taken back (the scope of an
    incident is what was read), and the principal is contained."""
    assert actor.id is not None
    assert actor.structure_id is not None
    touched = [(actor.kind.value, actor.id)]
    if structure_new:  # only take back the structure's touch if this request made it
        touched.append(("structure", actor.structure_id))
    for kind, pid in touched:
        await quotas.untouch(conn, day=today, kind=kind, principal_id=pid, subject_bi=subject)
    await _contain(rt, conn, actor, "hard_quota", today)
    await record_refusal(
        conn,
        principal=actor,
        channel=channel.value,
        purpose="rights_check",
        reason="contained",
        now=rt.now(),
    )


async def _check_usual(
    rt: Runtime,
    query: RightsQuery,
    actor: Principal,
    channel: Channel,
    subject: bytes,
    decide_for: Callable[[Right | None, Contract | None], Decision],
    verification_id: UUID,
) -> RightsAnswer | None:
    """The usual case on PostgreSQL in two statements (``access.check_rights_counted``); None
    when this check is not usual — contained, a ceiling or threshold crossed, a canary — and
    the general path below must run (nothing was written)."""
    ceiling, structure_max = _ceilings(rt, actor)

    def usual(c: Counted) -> bool:
        return (
            not c.frozen
            and not c.is_canary
            and verdict(new_count=c.new_count, ceiling=ceiling) is Verdict.WITHIN
            # the structure's alert opens when its count first passes the threshold
            and c.structure_total != structure_max + 1
        )

    async with rt.db.driver() as apg:
        done = await check_rights_counted(
            apg,
            rt.keys,
            principal=actor,
            card=query.card,
            card_bi=subject,
            domain=query.domain,
            day=rt.today(),
            hard=ceiling.hard,
            decide=decide_for,
            admit=usual,
            engage=lambda bid, decision, canary: _engagement(
                rt, actor, query, bid, decision, canary=canary
            ),
            channel=channel.value,
            now=rt.now(),
            verification_id=verification_id,
        )
    if done is None:
        return None
    read, number = done
    decision = read.decision
    return RightsAnswer.of(verification_id, query, decision, number)


async def _past_soft_needs_step_up(
    rt: Runtime, actor: Principal, stepped_up_at: datetime | None
) -> None:
    """A portal account past its soft ceiling today answers only after a fresh passkey
    assertion (DESIGN §4.4): a stolen session cannot read on without the person's key."""
    if actor.kind is not ActorKind.ACCOUNT or actor.id is None or actor.profession is None:
        return
    if is_fresh(stepped_up_at, now=rt.now()):
        return
    ceiling, _ = _ceilings(rt, actor)
    async with rt.db.read() as conn:
        n = await quotas.count(conn, day=rt.today(), kind=actor.kind.value, principal_id=actor.id)
    if n >= ceiling.soft:
        await step_up.require(
            rt,
            actor=actor,
            stepped_up_at=stepped_up_at,
            purpose="rights_check",
            channel=Channel.PORTAL_RIGHTS.value,
        )


async def check_rights(
    rt: Runtime,
    query: RightsQuery,
    *,
    actor: Principal,
    channel: Channel,
    stepped_up_at: datetime | None = None,
) -> RightsAnswer:
    """``stepped_up_at``: for a portal account, its session's last passkey assertion."""
    await _admit(rt, query, actor, channel)
    await _past_soft_needs_step_up(rt, actor, stepped_up_at)
    now, today = rt.now(), rt.today()

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
    card = query.card
    subject = card_index(rt.keys, card.amc_number, card.adherent_number, card.birth_date, card.rank)
    if rt.db.dialect == "postgresql":
        fast = await _check_usual(rt, query, actor, channel, subject, decide_for, verification_id)
        if fast is not None:
            return fast
    async with rt.db.transaction() as conn:
        # Reads stay frozen from the containment's commit on, whatever a process still caches
        # about the token and for people already touched today.
        frozen = await quotas.is_contained(conn, actor)
        seen, structure_new = (
            (Verdict.CONTAIN, False)
            if frozen
            else await _count_subject(rt, conn, actor, subject, today)
        )
        if frozen:
            await record_refusal(
                conn,
                principal=actor,
                channel=channel.value,
                purpose="rights_check",
                reason="contained",
                now=now,
            )
        elif seen is not Verdict.CONTAIN:
            read = await read_rights(
                conn,
                rt.keys,
                principal=actor,
                card=card,
                domain=query.domain,
                decide=decide_for,
                channel=channel.value,
                now=now,
                verification_id=verification_id,
                card_bi=subject,
            )
            decision = read.decision
            if read.is_canary:  # no legitimate flow reaches a canary: contain, answer as usual
                await _contain(rt, conn, actor, "canary", today)
            if decision.status is Status.COVERED and read.beneficiary_id is not None:
                e = _engagement(
                    rt, actor, query, read.beneficiary_id, decision, canary=read.is_canary
                )
                number = await _engage(rt, conn, actor, read.beneficiary_id, e, verification_id)
        else:
            await _refuse_over_ceiling(
                rt, conn, actor, subject, today, structure_new=structure_new, channel=channel
            )
    if seen is Verdict.CONTAIN or read.is_canary:
        rt.principals.clear()  # nothing cached in this process outlives the containment
    if seen is Verdict.CONTAIN:
        raise Contained()
    if seen in (Verdict.SOFT_CROSSED, Verdict.SLOW) and actor.kind is ActorKind.CLIENT:
        # past the soft ceiling answers slow down: a scraper still meets the hard ceiling
        await asyncio.sleep(rt.settings.quota_slowdown_seconds)
    return RightsAnswer.of(verification_id, query, decision, number)
