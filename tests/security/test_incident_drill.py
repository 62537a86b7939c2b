"""The incident drill (issue 9, acceptance 1): a stolen API secret scrapes cards of two OCAMs
until it is contained (red-team scenario b, with small ceilings), then ``incident scope``
lists exactly the people the scraper obtained (compared against its own log), each OCAM's
CNIL draft has the matching counts, each affected person has a letter and nobody else does,
and the PS whose patients were read sees its notice in the portal while an untouched PS sees
none. Every evidence row's inclusion proof verifies with the public key alone."""

from __future__ import annotations

import csv
import json
import random
import re
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import func, select

from rempart.db.tables import audit_event, notice
from rempart.domain.errors import Forbidden
from rempart.domain.merkle import leaf_hash, verify_inclusion
from rempart.domain.roles import Role
from rempart.security.audit import tree_head_message
from rempart.services import breach, notification_packs
from rempart.services.beneficiaries import import_beneficiaries
from rempart.services.registry import create_account, operator_principal
from rempart.services.runtime import Runtime
from tests import factories as f
from tests.conftest import Clock
from tests.web.conftest import Api
from tests.web.test_portal import _enrol

CARE = "2026-12-01"


async def _check(api: Api, token: str, amc: str, p: f.Person) -> int:
    r = await api.http.post(
        "/api/v1/rights-checks",
        json={**p.card(amc), "domain": "PHAR", "care_date": CARE},
        headers={"Authorization": f"Bearer {token}"},
    )
    if r.status_code != 200:
        return r.status_code
    return 0 if r.json()["status"] == "unknown" else 1


async def officer(rt: Runtime, name: str):  # type: ignore[no-untyped-def]
    await create_account(
        rt,
        username=name,
        display_name=name,
        email=f"{name}@op.example",
        role=Role.SECURITY,
        actor=f.ACTOR,
    )
    return await operator_principal(rt, name)


def _verify(proof: dict[str, object]) -> bool:
    key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(str(proof["public_key"])))
    from datetime import datetime

    signed_at = datetime.fromisoformat(str(proof["signed_at"]))
    root = bytes.fromhex(str(proof["root_hash"]))
    size = int(str(proof["tree_size"]))
    key.verify(bytes.fromhex(str(proof["signature"])), tree_head_message(size, root, signed_at))
    leaf = leaf_hash(str(proof["leaf_data"]).encode())
    path = [bytes.fromhex(h) for h in proof["audit_path"]]  # type: ignore[attr-defined]
    return verify_inclusion(leaf, int(str(proof["leaf_index"])), size, path, root)


async def test_drill_scope_packs_letters_and_notices(
    api: Api, tmp_path: Path, clock: Clock
) -> None:
    rt = api.rt
    rt.settings.quota_slowdown_seconds = 0
    rt.settings.quota_ceilings = {"pharmacy": (20, 40)}
    others = f.people(300, seed=77, prefix="O")
    await import_beneficiaries(
        rt, f.write_file(tmp_path / "o.csv", others), amc_number=api.other.amc_number, actor=f.ACTOR
    )
    # a legitimate pharmacy saw six people before the attack: three the thief will read too
    local = await f.professional(rt, seed=5, name="Pharmacie du Quartier")
    local_token = await api.token(local)
    regulars = others[:3] + others[200:203]
    for p in regulars:
        assert await _check(api, local_token, api.other.amc_number, p) == 1
    clock.advance(hours=3)

    thief = await f.professional(rt, seed=31, name="Pharmacie Volée")
    token = await api.token(thief)
    targets = [(api.insurer.amc_number, p) for p in api.persons] + [
        (api.other.amc_number, p) for p in random.Random(9).sample(others[3:200], 60)
    ]
    random.Random(4).shuffle(targets)
    targets[1:1] = [(api.other.amc_number, p) for p in others[:3]]  # the local pharmacy's
    targets.insert(5, (api.other.amc_number, f.people(1, seed=99, prefix="Z")[0]))  # a guess
    obtained: list[f.Person] = []  # the scraper's own log
    for amc, p in targets:
        got = await _check(api, token, amc, p)
        if got > 1:
            break  # contained
        if got == 1:
            obtained.append(p)
    assert len(obtained) == 39  # 40 distinct cards answered (hard ceiling), one was a guess

    one = await officer(rt, "sec.un")
    with pytest.raises(Forbidden):
        await breach.scope(rt, client_id=thief.client.id, actor=f.ACTOR)  # a bare shell: no
    sc = await breach.scope(rt, client_id=thief.client.id, actor=one)

    got_names = {p.last_name for p in obtained}
    assert sum(len(v) for v in sc.beneficiaries.values()) == len(obtained)
    assert set(sc.beneficiaries) == {api.insurer.id, api.other.id}
    assert all(s.categories == ("coverage",) for s in sc.subjects)
    assert all(s.proof is not None and _verify(s.proof) for s in sc.subjects)

    # the patients' PS, the thief's own structure, and nobody else
    overlap = {p.last_name for p in others[:3]} & got_names
    assert set(sc.structures) == {thief.structure_id, local.structure_id}
    assert sc.structures[local.structure_id].patients == len(overlap) == 3
    assert sc.structures[thief.structure_id].credential_used
    assert sc.structures[thief.structure_id].patients == 0  # its reads opened no prior care

    packs = await notification_packs.build(rt, sc.id, tmp_path / "packs", actor=one)
    listed: set[str] = set()
    for pack in packs.ocams:
        with (pack.folder / "personnes.csv").open(encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh, delimiter=";"))
        listed |= {r["last_name"] for r in rows}
        ocam_people = {p.last_name for amc, p in targets if amc == _amc(api, pack.ocam_id)}
        expected = got_names & ocam_people
        assert {r["last_name"] for r in rows} == expected
        draft = (pack.folder / "notification-cnil.md").read_text(encoding="utf-8")
        people = re.search(r"personnes concernées : \*\*([\d ]+)\*\*", draft)
        records = re.search(r"enregistrements consultés : \*\*([\d ]+)\*\*", draft)
        assert people and int(people.group(1).replace(" ", "")) == len(expected)
        assert records and int(records.group(1).replace(" ", "")) == len(expected)
        letters = {p.stem for p in (pack.folder / "courriers").glob("*.pdf")}
        assert letters == {r["beneficiary_id"] for r in rows}
        assert all(
            (pack.folder / "courriers" / f"{b}.pdf").read_bytes()[:5] == b"%PDF-" for b in letters
        )
    assert listed == got_names  # each affected person has a letter, no one else does
    assert not ({p.last_name for p in regulars[3:]} & listed)  # seen by the PS, not the thief
    ps_letters = {p.stem for p in (tmp_path / "packs" / "professionnels").glob("*.pdf")}
    assert ps_letters == {str(thief.structure_id), str(local.structure_id)}

    # the names were read through access.py, audited one row per person
    async with rt.db.read() as conn:
        n = (
            await conn.execute(
                select(func.count())
                .select_from(audit_event)
                .where(audit_event.c.purpose == "incident_notification")
            )
        ).scalar_one()
        noticed = set((await conn.execute(select(notice.c.structure_id))).scalars())
    assert n == len(obtained)
    assert noticed == {thief.structure_id, local.structure_id}

    # the affected PS sees its notice in the portal; an untouched PS sees none
    member = await _enrol(api, local)
    page = await member.http.get("/portail/avis")
    assert page.status_code == 200
    assert "Incident de sécurité" in page.text and "3 de vos patients" in page.text
    assert "Les données bancaires de votre structure n&#39;ont pas été consultées" in page.text
    bystander = await _enrol(api, api.pharmacy)
    quiet = await bystander.http.get("/portail/avis")
    assert "Aucun avis pour votre structure" in quiet.text
    assert "Incident de sécurité" not in quiet.text
    print(json.dumps({"scope": str(sc.id), "people": len(obtained)}))


def _amc(api: Api, ocam_id: object) -> str:
    return api.insurer.amc_number if ocam_id == api.insurer.id else api.other.amc_number
