"""DESIGN §4.5: after seeding, no NIR, IBAN or name is in clear anywhere in the database —
checked on a full ``pg_dump`` and on the SQLite file (with its WAL), not on a sample of columns."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from sqlalchemy import select

from rempart.db.engine import Database, create_engine
from rempart.db.migrate import upgrade
from rempart.db.tables import account, bank_account, structure
from rempart.security.keys import KeyRing
from rempart.services import demo
from rempart.services.runtime import Runtime
from rempart.testing.postgres import Cluster
from tests.conftest import Clock, make_settings


async def _seed_and_collect(rt: Runtime) -> dict[str, str]:
    """Seed the demo; return every NIR, IBAN and name it stored, as plaintext → kind."""
    await demo.seed(rt, beneficiaries=400, seed=11, base_url="http://localhost:8000")
    secrets: dict[str, str] = {}
    for path in (rt.settings.data_dir / "demo").glob("beneficiaires-*.csv"):
        with path.open(encoding="utf-8") as f:
            for row in csv.DictReader(f, delimiter=";"):
                secrets[row["nir"]] = "nir"
                secrets[row["last_name"]] = "last_name"
                secrets[row["first_name"]] = "first_name"
    async with rt.db.transaction() as conn:
        for b in (await conn.execute(select(bank_account))).all():
            secrets[rt.keys.decrypt("bank_account", "iban", b.id, b.iban_enc)] = "iban"
            secrets[rt.keys.decrypt("bank_account", "holder", b.id, b.holder_enc)] = "holder"
        for a in (await conn.execute(select(account))).all():
            secrets[rt.keys.decrypt("account", "display_name", a.id, a.display_name_enc)] = (
                "display_name"
            )
            secrets[rt.keys.decrypt("account", "email", a.id, a.email_enc)] = "email"
        # Structure names are public trade names (FINESS directory) and stay in clear; a
        # person's name that happens to be a word of one ("Audition Claire") is no leak.
        public = [r.name for r in (await conn.execute(select(structure.c.name))).all()]
    secrets = {v: k for v, k in secrets.items() if not any(v in name for name in public)}
    assert sum(1 for k in secrets.values() if k == "nir") >= 300
    assert sum(1 for k in secrets.values() if k == "iban") >= 10
    return secrets


def _found(dump: bytes, secrets: dict[str, str]) -> list[str]:
    text = dump.decode("utf-8", errors="replace")
    # first names repeat across people and may be short words ("Paul"); names are matched as
    # whole fields of at least five characters so that hex noise cannot fake a hit
    return [
        f"{kind}:{value}" for value, kind in secrets.items() if len(value) >= 5 and value in text
    ]


async def test_pg_dump_holds_no_personal_data_in_clear(
    pg_cluster: Cluster, tmp_path: Path, clock: Clock, keys: KeyRing
) -> None:
    url = pg_cluster.create_database("at_rest")
    upgrade(url)
    db = Database(create_engine(url))
    try:
        secrets = await _seed_and_collect(
            Runtime(make_settings(tmp_path, database_url=url), db, keys, clock=clock)
        )
    finally:
        await db.dispose()
    dump = pg_cluster.pg_dump("at_rest")
    assert b"COPY public.beneficiary" in dump  # the dump really holds the rows
    assert _found(dump, secrets) == []


@pytest.mark.parametrize(
    ("value", "kind"), [("185037599900118", "nir"), ("FR7699999000010000000000115", "iban")]
)
def test_the_check_would_see_a_leak(value: str, kind: str) -> None:
    """The search above is not vacuous: a value in clear is found."""
    assert _found(f"... {value} ...".encode(), {value: kind}) == [f"{kind}:{value}"]


async def test_sqlite_file_holds_no_personal_data_in_clear(
    tmp_path: Path, clock: Clock, keys: KeyRing
) -> None:
    settings = make_settings(tmp_path)
    upgrade(settings.database)
    db = Database(create_engine(settings.database))
    try:
        secrets = await _seed_and_collect(Runtime(settings, db, keys, clock=clock))
    finally:
        await db.dispose()
    files = [p for p in tmp_path.glob("rempart.db*") if p.is_file()]
    raw = b"".join(p.read_bytes() for p in files)
    assert len(raw) > 100_000
    assert _found(raw, secrets) == []
