"""Continuity (DESIGN §6): with the portal switched off, the software's rights checks, invoice
intake, adjudication and a payment run all go on; with intake off, intake alone answers 503."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

from sqlalchemy import update

from rempart.db.tables import bank_account
from rempart.domain.channels import Channel
from rempart.domain.roles import Role
from rempart.security.principal import ActorKind, Principal
from rempart.services import adjudication, channels, payments
from tests import factories as f
from tests.web.conftest import Api
from tests.web.test_api import assert_problem
from tests.web.test_invoices import check, decided, invoice_body, send

ALICE = Principal(ActorKind.ACCOUNT, uuid.uuid4(), "paiements.alice", Role.PAYMENTS)
BOB = Principal(ActorKind.ACCOUNT, uuid.uuid4(), "paiements.bob", Role.PAYMENTS)


async def test_with_the_portal_off_checks_invoices_decisions_and_payments_go_on(
    api: Api, tmp_path: Path
) -> None:
    for ch in (Channel.PORTAL_SIGNIN, Channel.PORTAL_RIGHTS):
        await channels.switch(api.rt, ch, open_=False, reason="portail fermé", actor=f.ACTOR)
    states = await channels.states(api.rt, fresh=True)
    assert not states[Channel.PORTAL_SIGNIN].open and not states[Channel.PORTAL_RIGHTS].open
    origin = api.rt.settings.public_base_url
    closed = await api.http.post(
        "/connexion/options", headers={"origin": origin, "content-type": "application/json"}
    )
    assert closed.status_code == 503 and "portail fermé" in closed.json()["detail"]
    status = (await api.http.get("/status")).text
    assert status.count('class="pill off"') == 2 and "portail fermé" in status
    token = await api.token()
    p = api.persons[0]
    number = await check(api, token, p)  # the software's rights check
    r = await send(api, token, invoice_body(api, p, "CONT-1", number))  # intake
    assert r.status_code == 202
    assert await adjudication.decide_all(api.rt) == 1  # adjudication
    assert (await decided(api, token, r.json()["invoice_id"]))["status"] == "accepted"
    async with api.rt.db.transaction() as conn:
        await conn.execute(update(bank_account).values(pays_from=api.rt.now() - timedelta(days=9)))
    run = await payments.prepare(api.rt, ALICE)  # a payment run
    await payments.approve(api.rt, BOB, run.id)
    await payments.export(api.rt, ALICE, run.id, tmp_path / "run.xml")
    payments.validate((tmp_path / "run.xml").read_bytes())
    assert run.total_cents == 350


async def test_with_intake_off_invoices_get_a_503_with_retry_after_and_rights_checks_go_on(
    api: Api,
) -> None:
    await channels.switch(
        api.rt, Channel.INTAKE, open_=False, reason="Maintenance de la réception", actor=f.ACTOR
    )
    token = await api.token()
    p = api.persons[0]
    number = await check(api, token, p)
    r = await send(api, token, invoice_body(api, p, "CONT-2", number))
    got = assert_problem(r, 503, "channel_closed")
    assert "Maintenance de la réception" in got["detail"]
    assert int(r.headers["retry-after"]) > 0
    await channels.switch(api.rt, Channel.INTAKE, open_=True, reason=None, actor=f.ACTOR)
    assert (await send(api, token, invoice_body(api, p, "CONT-2", number))).status_code == 202
