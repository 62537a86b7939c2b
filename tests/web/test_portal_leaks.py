"""Every portal page and form, from a professional's account, against another structure's
objects (ids swapped): 0 leaks (issue 7, acceptance).

The routes come from the application itself: a portal route this test does not know (a path
parameter it has no object for, or a page it has not classified) fails it, so a new page cannot
be forgotten. For each route with an object id, the other structure's id must get exactly the
answer a random id gets (404, the same page); every answer is searched for the other structure's
identifiers (ids, PEC number, payment references, name); forms carrying the other's numbers
must not touch its objects; and after all of it, none of the other's objects has changed."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from sqlalchemy import select

from rempart.db.tables import invoice, passkey, pec, web_session
from rempart.services import adjudication, payments
from rempart.web.app import create_app
from tests.web.conftest import Api
from tests.web.test_invoices import CARE, check
from tests.web.test_payments import ALICE, BOB, billed_day
from tests.web.test_pec import ask, lens, quote
from tests.web.test_portal import Person
from tests.web.test_portal_pages import card_fields, pharmacy_line, signed_in

pytestmark = pytest.mark.postgres

PORTAL = ("/portail", "/deconnexion")

# pages and forms that take no object id: what each is checked with
NO_OBJECT = {
    ("GET", "/portail"),
    ("GET", "/portail/droits"),
    ("POST", "/portail/droits"),
    ("GET", "/portail/securite"),
    ("POST", "/portail/securite/deconnecter-autres"),
    ("POST", "/portail/securite/cles/options"),
    ("POST", "/portail/securite/cles/verification"),
    ("GET", "/portail/prises-en-charge"),
    ("GET", "/portail/prises-en-charge/nouvelle"),
    ("POST", "/portail/prises-en-charge"),
    ("GET", "/portail/factures"),
    ("GET", "/portail/factures/nouvelle"),
    ("POST", "/portail/factures"),
    ("GET", "/portail/paiements"),
    ("GET", "/portail/avis"),
    ("GET", "/portail/confirmer"),
    ("POST", "/portail/confirmer/options"),
    ("POST", "/portail/confirmer/verification"),
    ("GET", "/portail/coordonnees-bancaires"),
    ("GET", "/portail/coordonnees-bancaires/modifier"),
    ("POST", "/portail/coordonnees-bancaires/modifier"),
    ("POST", "/deconnexion"),
}


def app_routes(app: FastAPI) -> Iterator[tuple[str, str]]:
    """(method, path) of every route of the application, included routers flattened."""

    def walk(routes: list[Any]) -> Iterator[tuple[str, str]]:
        for r in routes:
            if isinstance(r, APIRoute):
                for m in sorted(r.methods):
                    yield m, r.path
            elif hasattr(r, "original_router"):  # FastAPI ≥ 0.16x keeps included routers
                yield from walk(r.original_router.routes)

    yield from walk(list(app.routes))


@dataclass
class Theirs:
    """The optician's objects the pharmacy must never reach."""

    pec_id: str
    pec_number: str
    invoice_id: str
    payment_id: str
    payment_refs: tuple[str, str]
    passkey_id: str
    engagement: str

    def markers(self) -> list[str]:
        return [
            self.pec_id, self.pec_number, self.invoice_id, self.payment_id, *self.payment_refs,
            self.passkey_id, self.engagement, "Optique Test",
        ]  # fmt: skip


async def theirs(api: Api, tmp_path: Path) -> tuple[Theirs, Person]:
    await billed_day(api)  # the optician has O-1 (rejected) and O-2 (accepted)
    run = await payments.prepare(api.rt, ALICE)
    await payments.approve(api.rt, BOB, run.id)
    await payments.export(api.rt, ALICE, run.id, tmp_path / "run.xml")
    token = await api.token(api.optician)
    p = api.persons[4]
    engagement = await check(api, token, p, domain="OPTI")
    granted = await ask(api, token, quote(api, p, lens(claimed="80.00")))
    assert granted["status"] == "accepted"
    [paid] = (
        await api.http.get("/api/v1/payments", headers={"Authorization": f"Bearer {token}"})
    ).json()
    optician = await signed_in(api, api.optician)
    async with api.rt.db.read() as conn:
        o2 = (
            await conn.execute(
                select(invoice.c.id).where(
                    invoice.c.structure_id == api.optician.structure_id,
                    invoice.c.invoice_number == "O-2",
                )
            )
        ).scalar_one()
        key = (await conn.execute(select(passkey.c.id))).scalars().all()
    return (
        Theirs(
            granted["pec_id"], granted["pec_number"], str(o2), paid["payment_id"],
            (paid["remittance_ref"], paid["end_to_end_id"]), str(key[-1]), engagement,
        ),
        optician,
    )  # fmt: skip


def _normalised(text: str) -> str:
    text = re.sub(r'(name="csrf" value=|name="csrf-token" content=)"[^"]*"', r"\1", text)
    return re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "<id>", text)


async def _snapshot(api: Api, them: Theirs) -> tuple[Any, ...]:
    async with api.rt.db.read() as conn:
        return (
            (await conn.execute(select(pec.c.status, pec.c.consumed_by).where(
                pec.c.id == them.pec_id))).one(),
            (await conn.execute(select(invoice.c.status).where(
                invoice.c.id == them.invoice_id))).scalar_one(),
            (await conn.execute(select(passkey.c.revoked_at).where(
                passkey.c.id == them.passkey_id))).scalar_one(),
            (await conn.execute(select(web_session.c.revoked_at).join(
                passkey, passkey.c.id == web_session.c.passkey_id).where(
                passkey.c.id == them.passkey_id))).all(),
        )  # fmt: skip


async def test_every_portal_page_and_form_against_another_structures_objects_leaks_nothing(
    api: Api, tmp_path: Path
) -> None:
    them, optician = await theirs(api, tmp_path)
    before = await _snapshot(api, them)
    me = await signed_in(api)  # the pharmacy's titulaire
    ids = {
        "pec_id": them.pec_id,
        "invoice_id": them.invoice_id,
        "payment_id": them.payment_id,
        "passkey_id": them.passkey_id,
    }
    app = create_app(api.rt.settings, runtime=api.rt)
    routes = sorted({r for r in app_routes(app) if r[1].startswith(PORTAL)} - {
        ("HEAD", p) for _, p in app_routes(app)
    })  # fmt: skip
    leaks: list[str] = []
    checked = 0

    def scan(what: str, r: httpx.Response) -> None:
        found = [m for m in them.markers() if m in r.text or m in r.headers.get("location", "")]
        if found:
            leaks.append(f"{what}: {found}")

    swapped_forms = {
        "/portail/factures": {
            "invoice_number": "MOI-1", "care_date": CARE, "engagement_number": them.engagement,
            "pec_number": them.pec_number, **card_fields(api, api.persons[4]), **pharmacy_line(),
        },
        "/portail/prises-en-charge": {
            "care_date": CARE, **card_fields(api, api.persons[4]),
            **{f"lines.0.{k}": v for k, v in lens(claimed="80.00").items()},
        },
        "/portail/droits": {
            "amc_number": api.insurer.amc_number, "adherent_number": api.persons[4].adherent_number,
            "birth_date": api.persons[4].birth_date.isoformat(), "rank": "1", "domain": "PHAR",
            "care_date": CARE,
        },
    }  # fmt: skip
    uncovered = []
    for method, path in routes:
        if method == "POST" and path == "/deconnexion":
            continue  # signs me out: done last
        params = re.findall(r"\{([^}]+)\}", path)
        if not params and (method, path) not in NO_OBJECT:
            uncovered.append((method, path))
            continue
        if any(p not in ids for p in params):
            uncovered.append((method, path))
            continue
        csrf = await me.csrf("/portail/securite")
        form = {"csrf": csrf, **swapped_forms.get(path, {})} if method == "POST" else None
        url = path
        for p in params:
            url = url.replace("{" + p + "}", ids[p])
        r = await me.http.request(method, url, data=form, headers={"accept": "text/html"})
        scan(f"{method} {url}", r)
        checked += 1
        if params:
            fake = path
            for p in params:
                fake = fake.replace("{" + p + "}", str(uuid.uuid4()))
            csrf = await me.csrf("/portail/securite")
            r2 = await me.http.request(
                method, fake, data={"csrf": csrf} if method == "POST" else None,
                headers={"accept": "text/html"},
            )  # fmt: skip
            if r.status_code != 404 or (r.status_code, _normalised(r.text)) != (
                r2.status_code, _normalised(r2.text)
            ):  # fmt: skip
                leaks.append(f"{method} {path}: {r.status_code} vs a missing id {r2.status_code}")
    assert uncovered == [], f"portal routes this test does not cover: {uncovered}"
    await adjudication.decide_all(api.rt)  # the invoice quoting their PEC and engagement
    mine = await me.http.get("/portail/factures")
    scan("GET /portail/factures after adjudication", mine)
    assert leaks == [], f"{len(leaks)} leaks"
    after = await _snapshot(api, them)
    assert after == before, "another structure's objects changed"
    # their session still works, mine ends with sign-out
    assert (await optician.http.get("/portail/securite")).status_code == 200
    r = await me.http.post("/deconnexion", data={"csrf": await me.csrf("/portail/securite")})
    assert r.status_code == 303
    assert (await optician.http.get("/portail/securite")).status_code == 200
    assert checked >= 20
