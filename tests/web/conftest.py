from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import httpx
import pytest

from rempart.db.engine import Database, create_engine
from rempart.db.migrate import upgrade
from rempart.domain.care import Profession
from rempart.security.keys import KeyRing
from rempart.services.beneficiaries import import_beneficiaries
from rempart.services.runtime import Runtime
from rempart.testing.postgres import Cluster
from rempart.web.app import create_app
from tests import factories as f
from tests.conftest import Clock, make_settings


@dataclass
class Api:
    http: httpx.AsyncClient
    rt: Runtime
    insurer: f.Insurer
    other: f.Insurer
    persons: list[f.Person]
    pharmacy: f.Professional
    optician: f.Professional

    async def token(self, pro: f.Professional | None = None) -> str:
        pro = pro or self.pharmacy
        r = await self.http.post(
            "/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": pro.client.client_id,
                "client_secret": pro.client.client_secret,
            },
        )
        assert r.status_code == 200, r.text
        return str(r.json()["access_token"])

    def body(self, p: f.Person, **over: object) -> dict[str, object]:
        return {
            **p.card(self.insurer.amc_number),
            "domain": "PHAR",
            "care_date": "2026-12-01",
            **over,
        }


@pytest.fixture
async def api(rt: Runtime, tmp_path: Path) -> AsyncIterator[Api]:
    async with _world(rt, tmp_path) as world:
        yield world


@pytest.fixture
async def live_api(
    pg_cluster: Cluster, tmp_path: Path, clock: Clock, keys: KeyRing
) -> AsyncIterator[Api]:
    """The same world on a database of its own behind a connection pool, for requests that
    really run at once (``api`` runs every unit of work on one rolled-back connection)."""
    name = f"rempart_live_{uuid.uuid4().hex[:12]}"
    url = pg_cluster.create_database(name)
    upgrade(url)
    db = Database(create_engine(url, pool_size=4))
    runtime = Runtime(make_settings(tmp_path, database_url=url), db, keys, clock=clock)
    try:
        async with _world(runtime, tmp_path) as world:
            yield world
    finally:
        await db.dispose()
        pg_cluster.psql(f'DROP DATABASE "{name}"')


@contextlib.asynccontextmanager
async def _world(rt: Runtime, tmp_path: Path) -> AsyncIterator[Api]:
    insurer = await f.insurer(rt)
    other = await f.insurer(rt, "900000202", "Autre Mutuelle")
    persons = f.people(8)
    persons[1].valid_to = date(2026, 6, 30)
    await import_beneficiaries(
        rt, f.write_file(tmp_path / "b.csv", persons), amc_number=insurer.amc_number, actor=f.ACTOR
    )
    pharmacy = await f.professional(rt)
    optician = await f.professional(rt, Profession.OPTICIAN, seed=4, name="Optique Test")
    app = create_app(rt.settings, runtime=rt)
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as http:
        yield Api(http, rt, insurer, other, persons, pharmacy, optician)
