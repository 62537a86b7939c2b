"""Red-team (d): object-level access. Every API route that takes an object's id, called by
another structure with the id of an object that exists, answers exactly what a missing id
answers, and the refusal is audited. A route with an id added later fails the first test
until it is listed here."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select, update

from rempart.db.tables import audit_event, bank_account
from rempart.domain.roles import Role
from rempart.security.principal import ActorKind, Principal
from rempart.services import adjudication, payments
from tests.security.test_red_team import report
from tests.web.conftest import Api
from tests.web.test_invoices import _auth, check, invoice_body, send
from tests.web.test_pec import ask, quote

ROUTES = {
    ("GET", "/api/v1/invoices/{invoice_id}"),
    ("POST", "/api/v1/invoices/{invoice_id}/cancel"),
    ("POST", "/api/v1/invoices/{invoice_id}/credit-note"),
    ("GET", "/api/v1/prises-en-charge/{pec_id}"),
    ("POST", "/api/v1/prises-en-charge/{pec_id}/cancel"),
    ("GET", "/api/v1/payments/{payment_id}/remittance"),
    ("GET", "/fhir/r4/ClaimResponse/{claim_response_id}"),  # an invoice, as FHIR shows it
}
MISSING = "00000000-0000-4000-8000-000000000000"


async def _call(api: Api, method: str, path: str, token: str) -> tuple[int, dict[str, object]]:
    r = await api.http.request(method, path, headers=_auth(token))
    return r.status_code, r.json()


async def test_every_route_with_an_id_is_covered(api: Api) -> None:
    spec = (await api.http.get("/openapi.json")).json()
    with_ids = {
        (method.upper(), path)
        for path, ops in spec["paths"].items()
        if "{" in path
        for method in ops
    }
    assert with_ids == ROUTES


async def test_another_structures_objects_answer_like_missing_ones(
    api: Api, tmp_path: Path
) -> None:
    ph, op = await api.token(), await api.token(api.optician)
    p = api.persons[0]
    invoice_id = (
        await send(api, ph, invoice_body(api, p, "OWN-1", await check(api, ph, p)))
    ).json()["invoice_id"]
    await check(api, op, p, domain="OPTI")
    pec_id = (await ask(api, op, quote(api, p)))["pec_id"]
    await adjudication.decide_all(api.rt)
    async with api.rt.db.transaction() as conn:
        await conn.execute(update(bank_account).values(pays_from=api.rt.now() - timedelta(days=9)))
    alice = Principal(ActorKind.ACCOUNT, uuid.uuid4(), "paiements.alice", Role.PAYMENTS)
    bob = Principal(ActorKind.ACCOUNT, uuid.uuid4(), "paiements.bob", Role.PAYMENTS)
    run = await payments.prepare(api.rt, alice)
    await payments.approve(api.rt, bob, run.id)
    await payments.export(api.rt, alice, run.id, tmp_path / "run.xml")
    payment_id = (await api.http.get("/api/v1/payments", headers=_auth(ph))).json()[0]["payment_id"]
    owned = {  # each object, and the structure's token that does NOT own it
        "/api/v1/invoices/{invoice_id}": (invoice_id, op),
        "/api/v1/invoices/{invoice_id}/cancel": (invoice_id, op),
        "/api/v1/invoices/{invoice_id}/credit-note": (invoice_id, op),
        "/api/v1/prises-en-charge/{pec_id}": (pec_id, ph),
        "/api/v1/prises-en-charge/{pec_id}/cancel": (pec_id, ph),
        "/api/v1/payments/{payment_id}/remittance": (payment_id, op),
        "/fhir/r4/ClaimResponse/{claim_response_id}": (invoice_id, op),
    }
    async with api.rt.db.transaction() as conn:
        refusals_before = (
            await conn.execute(
                select(func.count())
                .select_from(audit_event)
                .where(audit_event.c.result == "refused")
            )
        ).scalar_one()
    for method, template in sorted(ROUTES):
        object_id, stranger = owned[template]
        name = template[template.index("{") : template.index("}") + 1]

        theirs = await _call(api, method, template.replace(name, str(object_id)), stranger)
        missing = await _call(api, method, template.replace(name, MISSING), stranger)
        assert theirs == missing, (method, template)
        assert theirs[0] == 404, (method, template)
    async with api.rt.db.transaction() as conn:
        refusals_after = (
            await conn.execute(
                select(func.count())
                .select_from(audit_event)
                .where(audit_event.c.result == "refused")
            )
        ).scalar_one()
    assert refusals_after - refusals_before == 2 * len(ROUTES)  # every refusal audited
    report(
        "(d) object-level access across structures", 0, None, f"{len(ROUTES)} routes, 0 cross reads"
    )
    # and the owners still see their own objects, untouched
    assert (await api.http.get(f"/api/v1/invoices/{invoice_id}", headers=_auth(ph))).json()[
        "status"
    ] == "paid"
    assert (await api.http.get(f"/api/v1/prises-en-charge/{pec_id}", headers=_auth(op))).json()[
        "status"
    ] in ("accepted", "partial")
