"""Notification packs from a breach scope (GDPR art. 33 and 34), and the PS notices.

For each OCAM (the data controller) whose beneficiaries are in scope, a folder with:
``notification-cnil.md`` (the draft, counts from the scope), ``personnes.csv`` (the art. 34
list: one line per person, the categories exposed, the evidence row) and one PDF letter per
person under ``courriers/``. For each PS structure the scope touched: an in-portal notice
(``notice``, shown at ``/portail/avis``) and a PDF letter under ``professionnels/``. The names
come through ``access.incident_addressees`` (audited, purpose ``incident_notification``).
Only people and structures in the scope get anything.
"""

from __future__ import annotations

import csv
import uuid
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

from sqlalchemy import select

from rempart import access
from rempart.db.tables import notice, ocam, structure
from rempart.db.upsert import insert_ignore
from rempart.domain.incidents import (
    CnilCounts,
    beneficiary_letter,
    cnil_draft,
    merge_categories,
    ps_letter,
    ps_notice,
)
from rempart.domain.roles import Permission
from rempart.security.principal import Principal
from rempart.services import breach
from rempart.services.letters import write_letter
from rempart.services.runtime import PARIS, Runtime

DEFAULT_CONTACT = "le délégué à la protection des données de votre organisme"
MEASURES = (
    "Confinement automatique de l'accès en cause (sessions et jetons révoqués, lectures "
    "gelées) au plafond quotidien de personnes distinctes.",
    "Périmètre exact établi depuis le journal d'audit scellé (arbre de Merkle signé), avec "
    "une preuve d'inclusion par personne.",
    "Révocation des sessions et renouvellement des secrets des accès concernés ; "
    "revérification par clé d'accès (passkey) à la prochaine connexion.",
    "Information individuelle des personnes concernées et des professionnels de santé.",
)


@dataclass(frozen=True, slots=True)
class OcamPack:
    ocam_id: UUID
    name: str
    folder: Path
    counts: CnilCounts
    letters: int


@dataclass(frozen=True, slots=True)
class Packs:
    scope_id: UUID
    ocams: list[OcamPack]
    notices: dict[UUID, UUID]  # structure id -> notice id


async def build(
    rt: Runtime, scope_id: UUID, out_dir: Path, *, actor: Principal, contact: str = DEFAULT_CONTACT
) -> Packs:
    breach.need_officer(actor)
    assert actor.may(Permission.MANAGE_INCIDENTS)
    sc = await breach.load(rt, scope_id, actor=actor)
    by_ocam = sc.beneficiaries
    now = rt.now()
    async with rt.db.transaction() as conn:
        names = dict((await conn.execute(select(ocam.c.id, ocam.c.name))).all())
        touched = list(sc.structures)
        ps_names = (
            dict(
                (
                    await conn.execute(
                        select(structure.c.id, structure.c.name).where(structure.c.id.in_(touched))
                    )
                ).all()
            )
            if touched
            else {}
        )
        people = await access.incident_addressees(
            conn,
            rt.keys,
            principal=actor,
            beneficiaries=[b for ids in by_ocam.values() for b in ids],
            now=now,
        )
        notices: dict[UUID, UUID] = {}
        for sid, exposure in sorted(sc.structures.items()):
            title, body = ps_notice(exposure, contact=contact)
            await conn.execute(
                insert_ignore(rt.db.dialect, notice, keys=["structure_id", "scope_id"]).values(
                    id=uuid.uuid4(),
                    structure_id=sid,
                    scope_id=scope_id,
                    kind="incident",
                    title=title,
                    body=body,
                    created_at=now,
                )
            )
        if sc.structures:
            notices = dict(
                (
                    await conn.execute(
                        select(notice.c.structure_id, notice.c.id).where(
                            notice.c.scope_id == scope_id
                        )
                    )
                ).all()
            )
    day = now.astimezone(PARIS).date()
    window = _window(sc)
    packs = []
    subjects = {s.id: s for s in sc.subjects if s.kind == "beneficiary"}
    for oid, ids in sorted(by_ocam.items()):
        folder = out_dir / f"ocam-{oid}"
        rows = [subjects[i] for i in ids]
        counts = CnilCounts(
            people=len(rows),
            records=sum(r.reads for r in rows),
            categories=merge_categories(",".join(r.categories) for r in rows),
            structures=sum(1 for e in sc.structures.values() if e.patients or e.credential_used),
        )
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "notification-cnil.md").write_text(
            cnil_draft(
                ocam_name=names[oid],
                counts=counts,
                nature=_nature(sc),
                window=window,
                measures=MEASURES,
                contact=contact,
            ),
            encoding="utf-8",
        )
        _person_list(folder / "personnes.csv", rows, people)
        for r in rows:
            who = people[r.id]
            write_letter(
                folder / "courriers" / f"{r.id}.pdf",
                sender=names[oid],
                subject="Information sur un incident de sécurité concernant vos données",
                paragraphs=beneficiary_letter(
                    first_name=who.first_name,
                    last_name=who.last_name,
                    ocam_name=names[oid],
                    categories=r.categories,
                    contact=contact,
                ),
                day=day,
                signature=f"Le délégué à la protection des données, {names[oid]}",
            )
        packs.append(OcamPack(oid, names[oid], folder, counts, len(rows)))
    for sid, exposure in sorted(sc.structures.items()):
        _, body = ps_notice(exposure, contact=contact)
        write_letter(
            out_dir / "professionnels" / f"{sid}.pdf",
            sender="Rempart, service de tiers payant",
            subject="Incident de sécurité : ce qui concerne votre structure",
            paragraphs=ps_letter(structure_name=ps_names.get(sid, ""), notice_body=body),
            day=day,
            signature="L'équipe sécurité de Rempart",
        )
    return Packs(scope_id, packs, notices)


def _window(sc: breach.Scope) -> str:
    firsts = [s.first_at for s in sc.subjects]
    lasts = [s.last_at for s in sc.subjects]
    start = sc.since or (min(firsts) if firsts else None)
    end = sc.until or (max(lasts) if lasts else None)
    fmt = "%d/%m/%Y %H:%M"
    if start is None or end is None:
        return "aucune lecture"
    a, b = start.astimezone(PARIS).strftime(fmt), end.astimezone(PARIS).strftime(fmt)
    return f"du {a} au {b} (heure de Paris)"


def _nature(sc: breach.Scope) -> str:
    who = {"client": "le secret d'un logiciel (client API)", "account": "un compte du portail"}
    used = who.get(sc.principal_kind or "", "des accès")
    return (
        f"Consultation non autorisée de droits de tiers payant au moyen de {used} d'un "
        "professionnel de santé, utilisé par un tiers. L'accès a été confiné automatiquement "
        "par la plateforme."
    )


def _person_list(
    path: Path, rows: list[breach.Subject], people: dict[UUID, access.Addressee]
) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, delimiter=";")
        w.writerow(
            [
                "beneficiary_id",
                "last_name",
                "first_name",
                "categories",
                "reads",
                "first_read_at",
                "last_read_at",
                "evidence_event_id",
            ]
        )
        for r in rows:
            p = people[r.id]
            w.writerow(
                [
                    r.id,
                    p.last_name,
                    p.first_name,
                    "|".join(r.categories),
                    r.reads,
                    r.first_at.isoformat(),
                    r.last_at.isoformat(),
                    r.evidence_event_id,
                ]
            )
    path.chmod(0o600)


async def notices_for(rt: Runtime, structure_id: UUID) -> list[dict[str, object]]:
    """The notices of one structure, newest first (the portal's ``/portail/avis``)."""
    async with rt.db.read() as conn:
        rows = (
            await conn.execute(
                select(notice)
                .where(notice.c.structure_id == structure_id)
                .order_by(notice.c.created_at.desc())
            )
        ).all()
    return [
        {
            "id": r.id,
            "title": r.title,
            "paragraphs": r.body.split("\n\n"),
            "created_at": r.created_at,
        }
        for r in rows
    ]
