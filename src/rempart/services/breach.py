"""Breach scoping (``rempart incident scope``): from the audit log, the exact set of
beneficiaries (per OCAM) and PS structures whose data a principal's reads exposed, with the
categories exposed and an inclusion proof of one audit row per subject.

The audit log is the only source (DESIGN §4.3): a read that returned nothing (``unknown``
answers, refusals) exposed nothing and puts nobody in scope; every read that returned data
did. One ``INSERT … SELECT … GROUP BY`` does the work (index ``ix_audit_event_actor_at``),
on PostgreSQL and SQLite alike; proofs come from one pass over the sealed leaves for all the
evidence rows at once (``domain.incidents.ProofPlan``).

    scope = await breach.scope(rt, client_id=leaked.id, actor=officer)
    scope.beneficiaries   # {ocam_id: [beneficiary ids]}
"""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import bindparam, func, select, text, update

from rempart.db.tables import (
    account,
    api_client,
    audit_checkpoint,
    audit_event,
    care_relationship,
    incident_scope,
    incident_subject,
)
from rempart.domain.errors import FieldError, Forbidden, InvalidFields, NotFound
from rempart.domain.incidents import ProofPlan, PsExposure, StreamFold, merge_categories
from rempart.domain.roles import Permission
from rempart.security import audit
from rempart.security.principal import ActorKind, Principal
from rempart.services import audit_log
from rempart.services.runtime import Runtime

_STREAM_ROWS = 50_000


@dataclass(frozen=True, slots=True)
class Subject:
    kind: str  # beneficiary | structure
    id: UUID
    ocam_id: UUID | None
    categories: tuple[str, ...]
    reads: int
    first_at: datetime
    last_at: datetime
    evidence_event_id: UUID
    proof: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class Scope:
    id: UUID
    principal_kind: str | None
    principal_id: UUID | None
    structure_id: UUID | None
    since: datetime | None
    until: datetime | None
    reads: int
    tree_size: int | None
    subjects: list[Subject]
    structures: dict[UUID, PsExposure] = field(default_factory=dict)

    @property
    def beneficiaries(self) -> dict[UUID, list[UUID]]:
        out: dict[UUID, list[UUID]] = defaultdict(list)
        for s in self.subjects:
            if s.kind == "beneficiary" and s.ocam_id is not None:
                out[s.ocam_id].append(s.id)
        return {k: sorted(v) for k, v in out.items()}


def need_officer(actor: Principal) -> None:
    """Scoping and notification packs name people: a security account, never a bare shell."""
    if actor.kind is not ActorKind.ACCOUNT or not actor.may(Permission.MANAGE_INCIDENTS):
        raise Forbidden("Réservé aux comptes du back-office ayant le rôle sécurité (--actor).")


def _aggregates(dialect: str) -> tuple[Any, Any]:
    """(union of the categories, the earliest row's id) as SQL, per dialect."""
    if dialect == "postgresql":
        return (
            text("string_agg(DISTINCT categories, ',')"),
            text("(array_agg(id ORDER BY at, id))[1]"),
        )
    # SQLite: timestamps are fixed-width text (26 chars), ids 32 hex characters
    return text("group_concat(DISTINCT categories)"), text("substr(min(at || id), 27)")


async def _principal(conn: Any, kind: str, pid: UUID) -> UUID | None:
    table = account if kind == "account" else api_client
    row = (await conn.execute(select(table.c.structure_id).where(table.c.id == pid))).first()
    if row is None:
        raise NotFound("Compte ou client API inconnu.")
    return row.structure_id  # type: ignore[no-any-return]


async def scope(
    rt: Runtime,
    *,
    account_id: UUID | None = None,
    client_id: UUID | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    incident_id: UUID | None = None,
    proofs: bool = True,
    actor: Principal,
) -> Scope:
    need_officer(actor)
    if (account_id is not None) + (client_id is not None) > 1:
        raise InvalidFields([FieldError("client", "un compte ou un client, pas les deux")])
    if account_id is None and client_id is None and (since is None or until is None):
        raise InvalidFields([FieldError("since", "sans compte ni client, --since et --until")])
    kind = "account" if account_id else "client" if client_id else None
    pid = account_id or client_id
    sid, now = uuid.uuid4(), rt.now()
    cats, evidence = _aggregates(rt.db.dialect)
    e = audit_event.c
    where = [
        e.subject_kind.in_(("beneficiary", "structure")),
        e.subject_id.is_not(None),
        e.categories != "",
        e.result != "refused",
    ]
    if pid is not None:
        where += [e.actor_id == pid, e.actor_kind == kind]
    if since is not None:
        where.append(e.at >= since)
    if until is not None:
        where.append(e.at < until)
    found = (
        select(
            bindparam("scope_id", sid, type_=incident_scope.c.id.type),
            e.subject_kind,
            e.subject_id,
            e.ocam_id,
            cats,
            func.count(),
            func.min(e.at),
            func.max(e.at),
            evidence,
        )
        .where(*where)
        .group_by(e.subject_kind, e.subject_id, e.ocam_id)
    )
    async with rt.db.transaction() as conn:
        structure_id = await _principal(conn, kind, pid) if kind and pid else None
        await conn.execute(
            incident_scope.insert().values(
                id=sid,
                incident_id=incident_id,
                principal_kind=kind,
                principal_id=pid,
                structure_id=structure_id,
                since=since,
                until=until,
                created_at=now,
                created_by=actor.label,
            )
        )
        c = incident_subject.c
        await conn.execute(
            incident_subject.insert().from_select(
                [
                    c.scope_id,
                    c.subject_kind,
                    c.subject_id,
                    c.ocam_id,
                    c.categories,
                    c.reads,
                    c.first_at,
                    c.last_at,
                    c.evidence_event_id,
                ],
                found,
            )
        )
        reads = (
            await conn.execute(select(func.coalesce(func.sum(c.reads), 0)).where(c.scope_id == sid))
        ).scalar_one()
        await conn.execute(
            update(incident_scope).where(incident_scope.c.id == sid).values(reads=reads)
        )
        await audit.record(
            conn,
            at=now,
            actor=actor,
            channel="cli",
            purpose="incident_scope",
            result="ok",
            subject_kind="incident_scope",
            subject_id=sid,
            detail={"principal_kind": kind, "principal_id": str(pid) if pid else None},
        )
    if proofs:
        await attach_proofs(rt, sid)
    return await load(rt, sid, actor=actor)


async def attach_proofs(rt: Runtime, scope_id: UUID) -> int | None:
    """Seal what is pending, then store each evidence row's inclusion proof in the latest
    signed tree (one pass over the leaves for all of them). Returns the tree size used."""
    await audit_log.checkpoint_all(rt)
    async with rt.db.read() as conn:
        head = (
            await conn.execute(
                select(audit_checkpoint).order_by(audit_checkpoint.c.tree_size.desc()).limit(1)
            )
        ).first()
        rows = (
            await conn.execute(
                select(incident_subject.c.subject_kind, incident_subject.c.subject_id, audit_event)
                .join(audit_event, audit_event.c.id == incident_subject.c.evidence_event_id)
                .where(incident_subject.c.scope_id == scope_id)
            )
        ).all()
        sealed = [
            r for r in rows if head and r.leaf_index is not None and r.leaf_index < head.tree_size
        ]
        if head is None or not sealed:
            return None
        plan = ProofPlan.of((r.leaf_index for r in sealed), head.tree_size)
        result = await conn.stream(
            select(audit_event.c.leaf_index, audit_event.c.leaf_hash)
            .where(audit_event.c.leaf_index < head.tree_size)
            .order_by(audit_event.c.leaf_index)
            .execution_options(yield_per=_STREAM_ROWS)
        )
        fold = StreamFold(plan)
        async for part in result.partitions(_STREAM_ROWS):
            fold.feed(part)
        roots, targets = fold.finish()
    paths = plan.proofs(roots, targets)
    common = {
        "tree_size": head.tree_size,
        "root_hash": head.root_hash.hex(),
        "signed_at": head.signed_at.isoformat(timespec="microseconds"),
        "signature": head.signature.hex(),
        "public_key": head.public_key.hex(),
    }
    values = [
        {
            "s_kind": r.subject_kind,
            "s_id": r.subject_id,
            "proof": json.dumps(
                {
                    "event_id": str(r.id),
                    "leaf_index": r.leaf_index,
                    "leaf_data": audit.leaf_data(r).decode(),
                    **common,
                    "audit_path": [p.hex() for p in paths[r.leaf_index]],
                },
                sort_keys=True,
            ),
        }
        for r in sealed
    ]
    async with rt.db.transaction() as conn:
        s = incident_subject.c
        await conn.execute(
            update(incident_subject)
            .where(
                s.scope_id == scope_id,
                s.subject_kind == bindparam("s_kind"),
                s.subject_id == bindparam("s_id"),
            )
            .values(proof=bindparam("proof")),
            values,
        )
        await conn.execute(
            update(incident_scope)
            .where(incident_scope.c.id == scope_id)
            .values(tree_size=head.tree_size)
        )
    return int(head.tree_size)


async def load(rt: Runtime, scope_id: UUID, *, actor: Principal) -> Scope:
    need_officer(actor)
    async with rt.db.read() as conn:
        head = (
            await conn.execute(select(incident_scope).where(incident_scope.c.id == scope_id))
        ).first()
        if head is None:
            raise NotFound("Périmètre inconnu.")
        rows = (
            await conn.execute(
                select(incident_subject)
                .where(incident_subject.c.scope_id == scope_id)
                .order_by(incident_subject.c.subject_kind, incident_subject.c.subject_id)
            )
        ).all()
        structures = await _exposures(conn, scope_id, head.structure_id)
    subjects = [
        Subject(
            r.subject_kind,
            r.subject_id,
            r.ocam_id,
            merge_categories([r.categories]),
            r.reads,
            r.first_at,
            r.last_at,
            r.evidence_event_id
            if isinstance(r.evidence_event_id, UUID)
            else UUID(str(r.evidence_event_id)),
            json.loads(r.proof) if r.proof else None,
        )
        for r in rows
    ]
    return Scope(
        head.id,
        head.principal_kind,
        head.principal_id,
        head.structure_id,
        head.since,
        head.until,
        head.reads,
        head.tree_size,
        subjects,
        structures,
    )


async def _exposures(
    conn: Any, scope_id: UUID, credential_of: UUID | None
) -> dict[UUID, PsExposure]:
    """Per PS structure: its credential used, its own data read, and how many of its patients
    (a care relationship opened *before* the person's first read in scope) were read."""
    s, cr = incident_subject.c, care_relationship.c
    patients = dict(
        (
            await conn.execute(
                select(cr.structure_id, func.count())
                .select_from(
                    incident_subject.join(care_relationship, cr.beneficiary_id == s.subject_id)
                )
                .where(
                    s.scope_id == scope_id,
                    s.subject_kind == "beneficiary",
                    cr.opened_at < s.first_at,
                )
                .group_by(cr.structure_id)
            )
        ).all()
    )
    own = {
        r.subject_id: merge_categories([r.categories])
        for r in (
            await conn.execute(
                select(s.subject_id, s.categories).where(
                    s.scope_id == scope_id, s.subject_kind == "structure"
                )
            )
        ).all()
    }
    ids = set(patients) | set(own) | ({credential_of} if credential_of else set())
    return {i: PsExposure(i == credential_of, own.get(i, ()), int(patients.get(i, 0))) for i in ids}


async def client_uuid(rt: Runtime, value: str, *, actor: Principal) -> UUID:
    """An API client named by its internal id or by its public ``client_id``."""
    need_officer(actor)
    try:
        return UUID(value)
    except ValueError:
        pass
    async with rt.db.read() as conn:
        found = (
            await conn.execute(select(api_client.c.id).where(api_client.c.client_id == value))
        ).scalar()
    if found is None:
        raise NotFound("Client API inconnu.")
    return found  # type: ignore[no-any-return]


def as_dict(sc: Scope) -> dict[str, Any]:
    return {
        "scope_id": str(sc.id),
        "principal_kind": sc.principal_kind,
        "principal_id": str(sc.principal_id) if sc.principal_id else None,
        "reads": sc.reads,
        "tree_size": sc.tree_size,
        "beneficiaries": {
            str(o): [str(b) for b in ids] for o, ids in sorted(sc.beneficiaries.items())
        },
        "structures": {
            str(k): {
                "credential_used": e.credential_used,
                "own_categories": list(e.own_categories),
                "patients": e.patients,
            }
            for k, e in sorted(sc.structures.items())
        },
        "subjects": [
            {
                "kind": s.kind,
                "id": str(s.id),
                "ocam_id": str(s.ocam_id) if s.ocam_id else None,
                "categories": list(s.categories),
                "reads": s.reads,
                "first_at": s.first_at.isoformat(),
                "last_at": s.last_at.isoformat(),
                "evidence_event_id": str(s.evidence_event_id),
                "proof": s.proof,
            }
            for s in sc.subjects
        ],
    }
