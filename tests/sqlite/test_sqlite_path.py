"""The zero-setup path: SQLite file, same migrations, same services, same API."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import httpx
from sqlalchemy import func, select, text

from rempart.db.tables import audit_event, beneficiary
from rempart.domain.channels import Channel
from rempart.services import channels
from rempart.services.beneficiaries import import_beneficiaries
from rempart.services.runtime import Runtime
from rempart.web.app import create_app
from tests import factories as f


async def test_import_and_rights_check_over_the_api(sqlite_rt: Runtime, tmp_path: Path) -> None:
    rt = sqlite_rt
    async with rt.db.transaction() as conn:
        pragmas = [
            (await conn.execute(text(f"PRAGMA {p}"))).scalar()
            for p in ("journal_mode", "synchronous", "foreign_keys")
        ]
    assert pragmas == ["wal", 2, 1]  # WAL, synchronous=FULL, foreign keys on

    insurer = await f.insurer(rt)
    persons = f.people(2100, seed=5)
    persons[3].valid_to = date(2025, 1, 31)
    path = f.write_file(tmp_path / "b.csv", persons)
    s = await import_beneficiaries(rt, path, amc_number=insurer.amc_number, actor=f.ACTOR)
    assert (s.status, s.rows_new) == ("committed", 2100)
    again = await import_beneficiaries(rt, path, amc_number=insurer.amc_number, actor=f.ACTOR)
    assert (again.rows_unchanged, again.rows_new, again.rows_changed) == (2100, 0, 0)
    shorter = await import_beneficiaries(
        rt,
        f.write_file(tmp_path / "c.csv", persons[:-5]),
        amc_number=insurer.amc_number,
        actor=f.ACTOR,
    )
    assert shorter.rows_closed == 5

    pro = await f.professional(rt)
    app = create_app(rt.settings, runtime=rt)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://localhost"
    ) as http:
        tok = (
            await http.post(
                "/oauth/token",
                data={
                    "grant_type": "client_credentials",
                    "client_id": pro.client.client_id,
                    "client_secret": pro.client.client_secret,
                },
            )
        ).json()
        auth = {"Authorization": f"Bearer {tok['access_token']}"}

        async def check(p: f.Person, care: str = "2026-12-02") -> str:
            body = {**p.card(insurer.amc_number), "domain": "PHAR", "care_date": care}
            r = await http.post("/api/v1/rights-checks", json=body, headers=auth)
            assert r.status_code == 200, r.text
            return str(r.json()["status"])

        assert await check(persons[0]) == "covered"
        assert await check(persons[3]) == "not_covered"
        # closed by the shorter file: covered until yesterday, not from today
        assert await check(persons[-1], "2026-12-01") == "covered"
        assert await check(persons[-1]) == "not_covered"
        await channels.switch(rt, Channel.API_RIGHTS, open_=False, reason="Essai", actor=f.ACTOR)
        body = {**persons[0].card(insurer.amc_number), "domain": "PHAR", "care_date": "2026-12-01"}
        r = await http.post("/api/v1/rights-checks", json=body, headers=auth)
        assert r.status_code == 503
        assert r.headers["retry-after"] == "300"
    async with rt.db.transaction() as conn:
        assert (
            await conn.execute(select(func.count()).select_from(beneficiary))
        ).scalar_one() == 2100
        results = (
            (
                await conn.execute(
                    select(audit_event.c.result).where(audit_event.c.purpose == "rights_check")
                )
            )
            .scalars()
            .all()
        )
    assert sorted(results) == ["covered", "covered", "not_covered", "not_covered", "refused"]


async def test_invoices_are_received_and_decided_on_sqlite(
    sqlite_rt: Runtime, tmp_path: Path
) -> None:
    from rempart.services import adjudication

    rt = sqlite_rt
    insurer = await f.insurer(rt)
    persons = f.people(3, seed=9)
    path = f.write_file(tmp_path / "b.csv", persons)
    await import_beneficiaries(rt, path, amc_number=insurer.amc_number, actor=f.ACTOR)
    pro = await f.professional(rt)
    app = create_app(rt.settings, runtime=rt)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://localhost"
    ) as http:
        tok = (
            await http.post(
                "/oauth/token",
                data={
                    "grant_type": "client_credentials",
                    "client_id": pro.client.client_id,
                    "client_secret": pro.client.client_secret,
                },
            )
        ).json()
        auth = {"Authorization": f"Bearer {tok['access_token']}"}
        card = persons[0].card(insurer.amc_number)
        checked = await http.post(
            "/api/v1/rights-checks",
            json={**card, "domain": "PHAR", "care_date": "2026-12-01"},
            headers=auth,
        )
        number = checked.json()["engagement_number"]
        drug = {
            "domain": "PHAR",
            "code_system": "CIP13",
            "code": "3400930000014",
            "quantity": 2,
            "unit_price": "4.99",
            "brss": "4.99",
            "amo_rate": 65,
            "amo_amount": "6.49",
            "amc_amount_claimed": "3.49",
        }
        body = {
            "invoices": [
                {
                    "invoice_number": f"S-{i}",
                    "care_date": "2026-12-01",
                    "engagement_number": number,
                    "beneficiary": card,
                    "lines": [drug],
                }
                for i in range(2)
            ]
        }
        arl = await http.post("/api/v1/invoice-batches", json=body, headers=auth)
        assert (arl.status_code, arl.json()["accepted"]) == (202, 2)
        assert await adjudication.decide_all(rt) == 2
        first, second = (i["invoice_id"] for i in arl.json()["invoices"])
        a = (await http.get(f"/api/v1/invoices/{first}", headers=auth)).json()
        b = (await http.get(f"/api/v1/invoices/{second}", headers=auth)).json()
    assert (a["status"], a["amc_amount"]) == ("accepted", "3.49")
    assert (b["status"], b["lines"][0]["reasons"][0]["code"]) == ("rejected", "R10")
