"""Read-replica routing (performance issue): only the reads marked ``replica_ok`` go to
``REMPART_DATABASE_REPLICA_URL``; tokens, revocations, rights checks, intake and every write stay
on the primary. The "replica" here is a second, empty database, so a read that went there is
visible: it finds nothing."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from rempart.db.engine import Database, create_engine
from rempart.db.migrate import upgrade
from rempart.db.tables import ledger_posting
from rempart.domain.ledger import invoice_accepted
from rempart.domain.roles import Role
from rempart.security.keys import KeyRing
from rempart.security.principal import ActorKind, Principal
from rempart.services import auth, ledger, payments
from rempart.services.runtime import Runtime
from rempart.testing.postgres import Cluster
from tests import factories as f
from tests.conftest import Clock, make_settings

ALICE = Principal(ActorKind.ACCOUNT, uuid.uuid4(), "paiements.alice", Role.PAYMENTS)


@pytest.fixture
async def split(
    pg_cluster: Cluster, tmp_path: Path, clock: Clock, keys: KeyRing
) -> AsyncIterator[Runtime]:
    names = [f"rempart_{k}_{uuid.uuid4().hex[:8]}" for k in ("primary", "replica")]
    urls = [pg_cluster.create_database(n) for n in names]
    for url in urls:
        upgrade(url)
    primary, replica = (create_engine(u, pool_size=2) for u in urls)
    settings = make_settings(tmp_path, database_url=urls[0], database_replica_url=urls[1])
    rt = Runtime(settings, Database(primary, replica), keys, clock=clock)
    try:
        yield rt
    finally:
        await rt.db.dispose()
        for n in names:
            pg_cluster.psql(f'DROP DATABASE "{n}"')


async def test_only_reads_marked_replica_ok_go_to_the_replica(split: Runtime) -> None:
    rt = split
    await f.insurer(rt)
    pro = await f.professional(rt)
    issued = await auth.issue_token(rt, pro.client.client_id, pro.client.client_secret, ip="t")
    principal = await auth.authenticate(rt, issued.access_token)  # the primary: found
    assert principal.structure_id == pro.structure_id
    async with rt.db.transaction() as conn:  # a posting on the primary
        await ledger.post(
            conn,
            rt.db.dialect,
            [(uuid.uuid4(), invoice_accepted(uuid.uuid4(), pro.structure_id, 500))],
            rt.now(),
        )
    assert await ledger.balances(rt, ALICE) == {}  # a report: read on the (empty) replica
    assert await payments.list_payments(rt, principal) == []
    async with rt.db.read() as conn:  # the default is the primary
        assert (
            await conn.execute(select(func.count()).select_from(ledger_posting))
        ).scalar_one() == 1
