"""Breach scoping on the zero-setup path: the same ``INSERT … SELECT … GROUP BY`` and the same
batched inclusion proofs on SQLite, for a small log."""

from __future__ import annotations

from pathlib import Path

import httpx

from rempart.domain.roles import Role
from rempart.services import breach
from rempart.services.beneficiaries import import_beneficiaries
from rempart.services.registry import create_account, operator_principal
from rempart.services.runtime import Runtime
from rempart.web.app import create_app
from tests import factories as f
from tests.security.test_incident_drill import _verify


async def test_scope_and_proofs_on_sqlite(sqlite_rt: Runtime, tmp_path: Path) -> None:
    rt = sqlite_rt
    rt.settings.quota_slowdown_seconds = 0
    insurer = await f.insurer(rt)
    persons = f.people(30, seed=8)
    await import_beneficiaries(
        rt, f.write_file(tmp_path / "b.csv", persons), amc_number=insurer.amc_number, actor=f.ACTOR
    )
    pro, other = await f.professional(rt), await f.professional(rt, seed=9, name="Autre")
    app = create_app(rt.settings, runtime=rt)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://localhost"
    ) as http:

        async def check(who: f.Professional, people: list[f.Person]) -> None:
            tok = (
                await http.post(
                    "/oauth/token",
                    data={
                        "grant_type": "client_credentials",
                        "client_id": who.client.client_id,
                        "client_secret": who.client.client_secret,
                    },
                )
            ).json()["access_token"]
            for p in people:
                r = await http.post(
                    "/api/v1/rights-checks",
                    json={
                        **p.card(insurer.amc_number),
                        "domain": "PHAR",
                        "care_date": "2026-12-01",
                    },
                    headers={"Authorization": f"Bearer {tok}"},
                )
                assert r.status_code == 200

        await check(pro, persons[:12] + persons[:3])  # three people read twice
        await check(other, persons[10:20])
    await create_account(
        rt,
        username="sec.lite",
        display_name="s",
        email="s@op.example",
        role=Role.SECURITY,
        actor=f.ACTOR,
    )
    sc = await breach.scope(
        rt, client_id=pro.client.id, actor=await operator_principal(rt, "sec.lite")
    )
    [ids] = sc.beneficiaries.values()
    assert len(ids) == 12 and sc.reads == 15
    assert sorted(s.reads for s in sc.subjects) == [1] * 9 + [2] * 3
    assert all(s.proof and _verify(s.proof) for s in sc.subjects)
    assert set(sc.structures) == {pro.structure_id}  # the other PS read after: not its patients
