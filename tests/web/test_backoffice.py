"""The back office through HTTP (ASGI client, PostgreSQL, per-test rollback), signed in with a
software authenticator as operator staff: payment runs with four eyes, the trial balance, the
PEC review queue, bank details to watch, security alerts — and PS accounts refused everywhere."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import httpx
import pytest
from fastapi.routing import APIRoute
from sqlalchemy import select

from rempart.db.tables import audit_event, payment_run
from rempart.domain.roles import Role
from rempart.services.registry import create_account
from rempart.web.backoffice import routes as bo_routes
from tests import factories as f
from tests.softkey import SoftKey
from tests.web.conftest import Api
from tests.web.test_payments import billed_day
from tests.web.test_pec import ask, lens, quote
from tests.web.test_portal import Person, _client, _json, _sign_in
from tests.web.test_portal_pages import signed_in

pytestmark = pytest.mark.postgres


async def staff(api: Api, role: Role, username: str | None = None) -> Person:
    """An operator account (no structure) enrolled and signed in."""
    s = api.rt.settings
    acc = await create_account(
        api.rt,
        username=username or f"{role.value}.{uuid.uuid4().hex[:6]}",
        display_name=f.sensitive("display_name", "Agent Opérateur"),
        email="agent@example.test",
        role=role,
        actor=f.ACTOR,
    )
    http = await _client(api)
    key = SoftKey(s.rp_id, s.public_base_url)
    token = acc.invitation_token
    c = (await http.post(f"/inscription/{token}/options", headers=_json(s.public_base_url))).json()
    done = await http.post(
        f"/inscription/{token}/verification",
        json={"ceremony_id": c["ceremony_id"], "credential": key.create(c["options"])},
        headers={"origin": s.public_base_url},
    )
    assert done.status_code == 200, done.text
    person = Person(http, key, f"/inscription/{token}")
    assert (await _sign_in(api, person)).status_code == 200
    return person


async def post(person: Person, path: str, page: str, **form: str) -> httpx.Response:
    return await person.http.post(path, data={"csrf": await person.csrf(page), **form})


async def test_a_run_is_prepared_approved_by_another_person_and_exported(api: Api) -> None:
    await billed_day(api)
    alice = await staff(api, Role.PAYMENTS, "paiements.alice")
    bob = await staff(api, Role.PAYMENTS, "paiements.bob")
    home = await alice.http.get("/portail", follow_redirects=True)
    assert str(home.url).endswith("/back-office") and "Campagnes de paiement" in home.text

    r = await post(alice, "/back-office/paiements/preparer", "/back-office/paiements")
    assert r.status_code == 303
    run_page = r.headers["location"]
    run_id = run_page.rsplit("/", 1)[1]
    page = await alice.http.get(run_page)
    assert "110,97" in page.text and "paiements.alice" in page.text, page.text[-3000:]

    # the preparer cannot approve: refused, nothing changes
    refused = await post(alice, f"{run_page}/valider", run_page)
    assert refused.status_code == 403
    assert "autre personne" in refused.text
    async with api.rt.db.read() as conn:
        status = (
            await conn.execute(select(payment_run.c.status).where(payment_run.c.id == run_id))
        ).scalar_one()
    assert status == "prepared"
    # nor export before a second person approved
    early = await post(alice, f"{run_page}/exporter", run_page)
    assert early.status_code == 403

    ok = await post(bob, f"{run_page}/valider", run_page)
    assert ok.status_code == 303
    exported = await post(alice, f"{run_page}/exporter", run_page)
    assert exported.status_code == 303
    file = await alice.http.get(f"{run_page}/fichier")
    assert file.status_code == 200 and b"<CtrlSum>110.97</CtrlSum>" in file.content
    assert api.pharmacy.iban.encode() in file.content
    listed = await bob.http.get("/back-office/paiements")
    assert "Exportée" in listed.text and "paiements.bob" in listed.text

    balance = await bob.http.get("/back-office/grand-livre")
    assert 'data-total="0"' in balance.text and "Balance équilibrée" in balance.text
    assert "−" not in balance.text and "110,97" in balance.text


async def test_an_agent_decides_the_pec_queue_from_the_back_office(api: Api) -> None:
    token = await api.token(api.optician)
    p = api.persons[0]
    from tests.web.test_invoices import check

    await check(api, token, p, domain="OPTI")
    await ask(api, token, quote(api, p, lens(claimed="80.00")))
    review = await ask(api, token, quote(api, p, lens(claimed="60.00"), vision_change=True))
    assert review["status"] == "to_review"
    agent = await staff(api, Role.AGENT)
    queue = await agent.http.get("/back-office/pec")
    assert review["pec_number"] in queue.text
    r = await post(
        agent, f"/back-office/pec/{review['pec_id']}/decision", "/back-office/pec",
        decision="refuser",
    )  # fmt: skip
    assert r.status_code == 303
    after = await agent.http.get(r.headers["location"])
    assert "PEC refusée" in after.text, after.text[-2500:]
    assert review["pec_number"] not in after.text
    got = await api.http.get(
        f"/api/v1/prises-en-charge/{review['pec_id']}", headers={"Authorization": f"Bearer {token}"}
    )
    assert got.json()["status"] == "refused"


async def test_bank_details_in_their_cooling_off_are_listed_with_their_last_four_only(
    api: Api,
) -> None:
    agent = await staff(api, Role.AGENT)
    page = await agent.http.get("/back-office/registre")
    assert page.status_code == 200
    assert "Pharmacie Test" in page.text and "Délai de sécurité en cours" in page.text
    assert f"•••• {api.pharmacy.iban[-4:]}" in page.text
    assert api.pharmacy.iban not in page.text and api.pharmacy.iban[4:12] not in page.text


async def test_the_security_officer_sees_the_alerts_and_a_payments_operator_does_not(
    api: Api,
) -> None:
    officer = await staff(api, Role.SECURITY)
    assert (await officer.http.get("/back-office/alertes")).status_code == 200
    ops = await staff(api, Role.PAYMENTS)
    refused = await ops.http.get("/back-office/alertes", headers={"accept": "text/html"})
    assert refused.status_code == 403 and "pas accès à cette page" in refused.text


def back_office_routes() -> list[APIRoute]:
    """Every page and form the back office's router declares: a new one is covered too."""
    return [r for r in bo_routes.router.routes if isinstance(r, APIRoute)]


async def test_every_back_office_page_and_form_refuses_a_professional(api: Api) -> None:
    ps = await signed_in(api)
    csrf = await ps.csrf("/portail/droits")
    some_id = str(uuid.uuid4())
    routes = back_office_routes()
    assert len(routes) >= 10
    for route in routes:
        path = re.sub(r"\{[^}]+\}", some_id, route.path)
        for method in route.methods or set():
            r = await ps.http.request(
                method, path, data={"csrf": csrf} if method == "POST" else None,
                headers={"accept": "text/html"},
            )  # fmt: skip
            assert r.status_code == 403, (method, route.path, r.status_code)
            assert "pas accès à cette page" in r.text
    async with api.rt.db.read() as conn:
        refused = (
            await conn.execute(
                select(audit_event.c.detail).where(
                    audit_event.c.purpose == "page_view", audit_event.c.result == "refused"
                )
            )
        ).all()
    assert len(refused) == sum(len(r.methods or ()) for r in routes)


async def test_no_back_office_page_answers_without_a_session(api: Api, tmp_path: Path) -> None:
    http = await _client(api)
    for route in back_office_routes():
        path = re.sub(r"\{[^}]+\}", str(uuid.uuid4()), route.path)
        for method in route.methods or set():
            r = await http.request(method, path)
            assert r.status_code in (303, 403), (method, route.path)
            if r.status_code == 303:
                assert r.headers["location"] == "/connexion"
