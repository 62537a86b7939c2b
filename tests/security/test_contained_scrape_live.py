"""A contained scrape does not hurt anyone else (exfiltration issue acceptance): while a stolen
API secret of a pharmacy scrapes until it is contained, that pharmacy's other client and an
optician of the same insurer's patients keep checking rights, concurrently, with 100 % success.

Runs on a database of its own behind a connection pool (``live_api``), so the requests really
run at once.
"""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

from rempart.services.beneficiaries import import_beneficiaries
from rempart.services.registry import create_api_client
from tests import factories as f
from tests.security.test_red_team import report
from tests.web.conftest import Api


async def test_a_contained_scrape_leaves_the_other_accounts_of_the_tenant_at_100_percent(
    live_api: Api,
    tmp_path: Path,
) -> None:
    api = live_api
    api.rt.settings.quota_slowdown_seconds = 0
    population = f.people(700, seed=51, prefix="S")
    await import_beneficiaries(
        api.rt,
        f.write_file(tmp_path / "scrape.csv", population),
        amc_number=api.insurer.amc_number,
        actor=f.ACTOR,
    )
    stolen = await create_api_client(
        api.rt, structure_id=api.pharmacy.structure_id, name="LGO (volé)", actor=f.ACTOR
    )
    thief = (
        await api.http.post(
            "/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": stolen.client_id,
                "client_secret": stolen.client_secret,
            },
        )
    ).json()["access_token"]
    pharmacy, optician = await api.token(), await api.token(api.optician)
    cards = [p.card(api.insurer.amc_number) for p in random.Random(9).sample(population, 700)]
    refused_at: list[float] = []

    async def scrape() -> int:
        obtained, started = 0, time.perf_counter()
        for card in cards:
            r = await api.http.post(
                "/api/v1/rights-checks",
                json={**card, "domain": "PHAR", "care_date": "2026-12-01"},
                headers={"Authorization": f"Bearer {thief}"},
            )
            if r.status_code != 200:
                refused_at.append(time.perf_counter() - started)
                return obtained
            obtained += r.json()["status"] != "unknown"
        return obtained

    async def legitimate(token: str, domain: str, n: int) -> list[int]:
        statuses = []
        for i in range(n):
            r = await api.http.post(
                "/api/v1/rights-checks",
                json=api.body(api.persons[i % 8], domain=domain),
                headers={"Authorization": f"Bearer {token}"},
            )
            statuses.append(r.status_code)
            await asyncio.sleep(0)
        return statuses

    obtained, at_pharmacy, at_optician = await asyncio.gather(
        scrape(), legitimate(pharmacy, "PHAR", 300), legitimate(optician, "OPTI", 300)
    )
    report(
        "(b') scrape with concurrent legitimate load",
        obtained,
        refused_at[0] if refused_at else None,
    )
    assert obtained == 600 and refused_at  # contained at the pharmacy's hard ceiling
    assert at_pharmacy == [200] * 300  # the same structure's other client: every check answered
    assert at_optician == [200] * 300  # another structure of the same insurer's patients
