"""The portal through its HTTP interface (ASGI client, PostgreSQL, per-test rollback), with a
software authenticator: enrolment, sign-in and every way a sign-in must fail, sessions and
their limits, CSRF, the rights-check page."""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from rempart.db.tables import audit_event, web_session
from rempart.domain.care import Profession
from rempart.domain.roles import Role
from rempart.services.registry import create_account
from rempart.web.app import create_app
from tests import factories as f
from tests.conftest import Clock
from tests.softkey import SoftKey
from tests.web.conftest import Api

pytestmark = pytest.mark.postgres


@dataclass
class Person:
    """A signed-in portal user: their browser (cookie jar) and their authenticator."""

    http: httpx.AsyncClient
    key: SoftKey
    link: str

    async def csrf(self, path: str = "/portail/securite") -> str:
        page = await self.http.get(path)
        found = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert found, page.text[:500]
        return found.group(1)


def _json(origin: str) -> dict[str, str]:
    return {"origin": origin, "content-type": "application/json"}


async def _client(api: Api) -> httpx.AsyncClient:
    app = create_app(api.rt.settings, runtime=api.rt)
    # https: the jar sends the Secure cookie back, as a browser does on http://localhost
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=("127.0.0.1", 50000)),
        base_url="https://localhost",
    )


async def _invite(api: Api, pro: f.Professional | None = None) -> str:
    acc = await create_account(
        api.rt,
        username=f"u{uuid.uuid4().hex[:8]}",
        display_name=f.sensitive("display_name", "Jeanne Dupont"),
        email="jeanne@example.test",
        role=Role.TITULAIRE,
        structure_id=(pro or api.pharmacy).structure_id,
        actor=f.ACTOR,
    )
    return acc.invitation_token


async def _enrol(api: Api, pro: f.Professional | None = None) -> Person:
    s = api.rt.settings
    token = await _invite(api, pro)
    http = await _client(api)
    key = SoftKey(s.rp_id, s.public_base_url)
    c = (await http.post(f"/inscription/{token}/options", headers=_json(s.public_base_url))).json()
    done = await http.post(
        f"/inscription/{token}/verification",
        json={
            "ceremony_id": c["ceremony_id"],
            "credential": key.create(c["options"]),
            "name": "Comptoir",
        },
        headers={"origin": s.public_base_url},
    )
    assert done.status_code == 200, done.text
    return Person(http, key, f"/inscription/{token}")


async def _sign_in(api: Api, person: Person, **answer: Any) -> httpx.Response:
    origin = api.rt.settings.public_base_url
    person.http.cookies.clear()
    c = (await person.http.post("/connexion/options", headers=_json(origin))).json()
    assert c["options"]["userVerification"] == "required"
    return await person.http.post(
        "/connexion/verification",
        json={
            "ceremony_id": c["ceremony_id"],
            "credential": person.key.get(c["options"], **answer),
        },
        headers={"origin": origin},
    )


async def _refusal_reasons(api: Api) -> list[str]:
    async with api.rt.db.read() as conn:
        rows = await conn.execute(
            select(audit_event.c.detail).where(
                audit_event.c.channel == "portal-signin", audit_event.c.result == "refused"
            )
        )
        return [json.loads(d)["reason"] for d in rows.scalars()]


async def test_enrolment_opens_a_session_with_a_strict_cookie(api: Api) -> None:
    person = await _enrol(api)
    r = await _sign_in(api, person)
    assert r.status_code == 200
    cookie = r.headers["set-cookie"]
    for flag in ("HttpOnly", "Secure", "SameSite=strict", "Path=/"):
        assert flag.lower() in cookie.lower()
    page = await person.http.get("/portail/droits")
    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-store"
    assert (
        "<script>" not in page.text
        and "script-src 'self'" in page.headers["content-security-policy"]
    )
    # the database holds only a keyed hash of the session id
    value = person.http.cookies["rempart_session"]
    async with api.rt.db.read() as conn:
        hashes = (await conn.execute(select(web_session.c.id_hash))).scalars().all()
    assert value.encode() not in hashes and len(hashes) == 2  # enrolment + sign-in


async def test_an_invitation_works_once_and_looks_like_an_unknown_one(api: Api) -> None:
    person = await _enrol(api)
    spent = await person.http.get(person.link)
    unknown = await person.http.get("/inscription/inconnu")
    assert spent.status_code == unknown.status_code == 404
    assert spent.text == unknown.text
    origin = api.rt.settings.public_base_url
    again = await person.http.post(f"{person.link}/options", headers=_json(origin))
    assert again.status_code == 404


async def test_a_replayed_assertion_is_refused(api: Api) -> None:
    person = await _enrol(api)
    origin = api.rt.settings.public_base_url
    c = (await person.http.post("/connexion/options", headers=_json(origin))).json()
    body = {"ceremony_id": c["ceremony_id"], "credential": person.key.get(c["options"])}
    first = await person.http.post("/connexion/verification", json=body, headers={"origin": origin})
    person.http.cookies.clear()
    second = await person.http.post(
        "/connexion/verification", json=body, headers={"origin": origin}
    )
    assert (first.status_code, second.status_code) == (200, 401)
    assert "set-cookie" not in second.headers
    assert await _refusal_reasons(api) == ["challenge_spent"]


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ({"verified": False}, "user_not_verified"),
        ({"origin": "https://rempart-sante.example"}, "origin"),
        ({"count": 1}, "sign_count"),  # a clone of the key: its counter did not move on
    ],
)
async def test_sign_in_refusals_are_audited(api: Api, answer: dict[str, Any], reason: str) -> None:
    person = await _enrol(api)
    assert (await _sign_in(api, person)).status_code == 200  # counter now 1
    r = await _sign_in(api, person, **answer)
    assert r.status_code == 401
    assert r.headers["content-type"] == "application/problem+json"
    assert "rempart_session" not in r.cookies
    assert await _refusal_reasons(api) == [reason]


async def test_an_unknown_passkey_is_refused(api: Api) -> None:
    person = await _enrol(api)
    s = api.rt.settings
    person.key = SoftKey(s.rp_id, s.public_base_url, user_handle=person.key.user_handle)
    assert (await _sign_in(api, person)).status_code == 401
    assert await _refusal_reasons(api) == ["unknown_credential"]


async def test_there_is_no_password_sign_in(api: Api) -> None:
    http = await _client(api)
    r = await http.post("/connexion", data={"username": "x", "password": "y" * 20})
    assert r.status_code == 405 and "set-cookie" not in r.headers


async def test_ceremonies_refuse_other_origins_and_forms(api: Api) -> None:
    http = await _client(api)
    evil = await http.post("/connexion/options", headers=_json("https://evil.example"))
    form = await http.post("/connexion/options", data={"a": "b"})
    assert evil.status_code == form.status_code == 403


async def test_sessions_end_after_30_idle_minutes_or_12_hours(api: Api, clock: Clock) -> None:
    person = await _enrol(api)
    clock.advance(minutes=29)
    assert (await person.http.get("/portail/droits")).status_code == 200
    clock.advance(minutes=29)  # 58 minutes in, but active 29 minutes ago
    assert (await person.http.get("/portail/droits")).status_code == 200
    clock.advance(minutes=31)
    idle = await person.http.get("/portail/droits")
    assert (idle.status_code, idle.headers["location"]) == (303, "/connexion")

    await _sign_in(api, person)
    for _ in range(12 * 3):  # active every 20 minutes, for 12 hours
        assert (await person.http.get("/portail/droits")).status_code == 200
        clock.advance(minutes=20)
    assert (await person.http.get("/portail/droits")).status_code == 303


async def test_every_portal_post_needs_the_csrf_token(api: Api) -> None:
    person = await _enrol(api)
    missing = await person.http.post("/portail/securite/deconnecter-autres", data={})
    wrong = await person.http.post("/deconnexion", data={"csrf": "x" * 43})
    assert missing.status_code == wrong.status_code == 403
    assert (await person.http.get("/portail/droits")).status_code == 200  # still signed in
    ok = await person.http.post("/deconnexion", data={"csrf": await person.csrf()})
    assert ok.status_code == 303
    assert (await person.http.get("/portail/droits")).status_code == 303


async def test_sign_out_elsewhere_ends_the_other_sessions(api: Api) -> None:
    person = await _enrol(api)
    stolen = person.http.cookies["rempart_session"]
    assert (await _sign_in(api, person)).status_code == 200
    r = await person.http.post(
        "/portail/securite/deconnecter-autres", data={"csrf": await person.csrf()}
    )
    assert r.status_code == 303
    thief = await _client(api)
    thief.cookies.set("rempart_session", stolen, domain="localhost")
    assert (await thief.get("/portail/droits")).status_code == 303
    assert (await person.http.get("/portail/droits")).status_code == 200


async def test_rights_check_answers_in_one_screen(api: Api) -> None:
    person = await _enrol(api)
    p = api.persons[0]
    form = {
        "csrf": await person.csrf(),
        "amc_number": api.insurer.amc_number,
        "adherent_number": p.adherent_number.lower(),
        "birth_date": p.birth_date.isoformat(),
        "rank": "1",
        "domain": "PHAR",
        "care_date": "2026-12-01",
    }
    covered = await person.http.post("/portail/droits", data=form)
    assert covered.status_code == 200 and "Droits ouverts" in covered.text
    assert re.search(r'class="mono engagement">E[A-Z2-7]{26}<', covered.text)
    assert covered.headers["cache-control"] == "no-store"
    assert p.last_name not in covered.text and p.nir not in covered.text
    unknown = await person.http.post("/portail/droits", data={**form, "rank": "2"})
    assert "Droits non trouvés" in unknown.text
    bad = await person.http.post(
        "/portail/droits", data={**form, "amc_number": "12", "care_date": ""}
    )
    assert (
        bad.status_code == 422
        and "Format invalide" in bad.text
        and 'aria-invalid="true"' in bad.text
    )
    other = await person.http.post("/portail/droits", data={**form, "domain": "OPTI"})
    assert other.status_code == 403 and "ne fait pas partie" in other.text
    async with api.rt.db.read() as conn:
        purposes = (
            await conn.execute(
                select(audit_event.c.actor_kind, audit_event.c.result).where(
                    audit_event.c.channel == "portal-rights"
                )
            )
        ).all()
    assert ("account", "covered") in purposes and ("account", "refused") in purposes


async def test_passkeys_revoke_but_never_the_last_one(api: Api) -> None:
    person = await _enrol(api)
    page = await person.http.get("/portail/securite")
    ids = re.findall(r"/portail/securite/cles/([0-9a-f-]{36})/retirer", page.text)
    assert len(ids) == 1
    last = await person.http.post(
        f"/portail/securite/cles/{ids[0]}/retirer",
        data={"csrf": await person.csrf()},
        headers={"accept": "text/html"},
    )
    assert last.status_code == 409 and "seule clé" in last.text
    # another account's passkey: not found, like an id that does not exist
    someone = await _enrol(api, await f.professional(api.rt, Profession.OPTICIAN, seed=9))
    theirs = await someone.http.post(
        f"/portail/securite/cles/{ids[0]}/retirer", data={"csrf": await someone.csrf()}
    )
    nothing = await someone.http.post(
        f"/portail/securite/cles/{uuid.uuid4()}/retirer", data={"csrf": await someone.csrf()}
    )
    assert theirs.status_code == nothing.status_code == 404


async def test_a_portal_account_that_reads_a_canary_is_contained(api: Api) -> None:
    person = await _enrol(api)
    canary = api.persons[2]
    await f.make_canary(api.rt, api.insurer.amc_number, canary)
    form = {
        "csrf": await person.csrf(),
        "amc_number": api.insurer.amc_number,
        "adherent_number": canary.adherent_number,
        "birth_date": canary.birth_date.isoformat(),
        "rank": "1",
        "domain": "PHAR",
        "care_date": "2026-12-01",
    }
    looks_normal = await person.http.post("/portail/droits", data=form)
    assert looks_normal.status_code == 200 and "Droits ouverts" in looks_normal.text
    # sessions revoked, sign-in refused, until two security officers lift it
    assert (await person.http.get("/portail/droits")).status_code == 303
    assert (await _sign_in(api, person)).status_code == 401
    assert await _refusal_reasons(api) == ["account_contained"]
