"""Identity on the portal (issue 7): notifications on the account's existing channel, the
step-up before sensitive actions, the bank-details change flow. ASGI client, PostgreSQL,
software authenticator, the test clock."""

from __future__ import annotations

import json
import random
import re
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from rempart.db.tables import audit_event, bank_account, known_device, mail_outbox, structure
from rempart.domain.errors import Conflict, Forbidden, FourEyesViolation
from rempart.domain.roles import Role
from rempart.security.principal import Principal
from rempart.services import demo_data as dd
from rempart.services import recovery
from rempart.services.registry import cooling_off_end, create_account, operator_principal
from tests import factories as f
from tests.conftest import Clock
from tests.softkey import SoftKey
from tests.web.conftest import Api
from tests.web.test_portal import _client, _json

pytestmark = pytest.mark.postgres


@dataclass
class User:
    http: httpx.AsyncClient
    key: SoftKey
    account_id: uuid.UUID
    username: str

    async def csrf(self, path: str = "/portail/securite") -> str:
        page = await self.http.get(path)
        found = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert found, (page.status_code, page.headers.get("location"), page.text[:300])
        return found.group(1)


async def _user(api: Api, role: Role = Role.TITULAIRE, pro: f.Professional | None = None) -> User:
    s = api.rt.settings
    username = f"u{uuid.uuid4().hex[:8]}"
    acc = await create_account(
        api.rt,
        username=username,
        display_name=f.sensitive("display_name", "Paul Girard"),
        email="paul@example.test",
        role=role,
        structure_id=(pro or api.pharmacy).structure_id,
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
    return User(http, key, acc.id, username)


async def _sign_in(api: Api, user: User, *, new_browser: bool = False) -> httpx.Response:
    origin = api.rt.settings.public_base_url
    if new_browser:
        user.http.cookies.clear()
    else:
        user.http.cookies.delete("rempart_session")
    c = (await user.http.post("/connexion/options", headers=_json(origin))).json()
    return await user.http.post(
        "/connexion/verification",
        json={"ceremony_id": c["ceremony_id"], "credential": user.key.get(c["options"])},
        headers={"origin": origin},
    )


async def _mail(api: Api, kind: str) -> list[tuple[uuid.UUID, str, str]]:
    async with api.rt.db.read() as conn:
        rows = await conn.execute(
            select(mail_outbox.c.account_id, mail_outbox.c.subject, mail_outbox.c.body).where(
                mail_outbox.c.kind == kind
            )
        )
        return [(r.account_id, r.subject, r.body) for r in rows]


async def _refusals(api: Api, purpose: str) -> list[str]:
    async with api.rt.db.read() as conn:
        rows = await conn.execute(
            select(audit_event.c.detail).where(
                audit_event.c.purpose == purpose, audit_event.c.result == "refused"
            )
        )
        return [json.loads(d)["reason"] for d in rows.scalars()]


async def _step_up(api: Api, user: User, back: str, **answer: Any) -> httpx.Response:
    csrf = await user.csrf()
    h = {"x-csrf-token": csrf, "content-type": "application/json"}
    c = (await user.http.post("/portail/confirmer/options", headers=h)).json()
    assert c["options"]["userVerification"] == "required"
    assert c["options"]["allowCredentials"]  # the account's own passkeys only
    return await user.http.post(
        f"/portail/confirmer/verification?retour={back}",
        json={"ceremony_id": c["ceremony_id"], "credential": user.key.get(c["options"], **answer)},
        headers=h,
    )


# -- notifications ---------------------------------------------------------------------------


async def test_new_passkeys_and_new_devices_are_notified_not_known_ones(api: Api) -> None:
    user = await _user(api)
    assert await _mail(api, "passkey.new") == []  # the first passkey is the enrolment itself
    # a second passkey, added from the security page
    spare = SoftKey(api.rt.settings.rp_id, api.rt.settings.public_base_url)
    h = {"x-csrf-token": await user.csrf(), "content-type": "application/json"}
    c = (await user.http.post("/portail/securite/cles/options", headers=h)).json()
    added = await user.http.post(
        "/portail/securite/cles/verification",
        json={"ceremony_id": c["ceremony_id"], "credential": spare.create(c["options"]),
              "name": "Clé de secours"},
        headers=h,
    )  # fmt: skip
    assert added.status_code == 200, added.text
    [(to, subject, body)] = await _mail(api, "passkey.new")
    assert to == user.account_id and "Clé de secours" in body and "clé d'accès" in subject
    # the enrolling browser is known: signing in again from it notifies nothing
    assert (await _sign_in(api, user)).status_code == 200
    assert await _mail(api, "device.new") == []
    # a browser without the device cookie is a new device: notified once, then known
    assert (await _sign_in(api, user, new_browser=True)).status_code == 200
    assert (await _sign_in(api, user)).status_code == 200
    [(to, subject, body)] = await _mail(api, "device.new")
    assert to == user.account_id and subject == "Connexion depuis un nouvel appareil"
    for secret in (user.http.cookies["rempart_session"], user.http.cookies["rempart_device"]):
        assert secret not in body


async def test_the_device_cookie_is_stored_hashed_and_strict(api: Api) -> None:
    user = await _user(api)
    r = await _sign_in(api, user, new_browser=True)
    device = [h for h in r.headers.get_list("set-cookie") if h.startswith("rempart_device=")]
    assert device and all(x in device[0].lower() for x in ("httponly", "secure", "samesite=strict"))
    value = user.http.cookies["rempart_device"]
    async with api.rt.db.read() as conn:
        hashes = (await conn.execute(select(known_device.c.device_hash))).scalars().all()
    assert value.encode() not in hashes and len(hashes) == 2  # enrolment's browser, this one


# -- step-up ---------------------------------------------------------------------------------


async def test_bank_change_needs_a_fresh_assertion(api: Api, clock: Clock) -> None:
    user = await _user(api)
    assert (await user.http.get("/portail/coordonnees-bancaires/modifier")).status_code == 200
    clock.advance(minutes=6)  # the sign-in assertion is now too old
    form = await user.http.get("/portail/coordonnees-bancaires/modifier")
    assert form.status_code == 303
    assert (
        form.headers["location"]
        == "/portail/confirmer?retour=/portail/coordonnees-bancaires/modifier"
    )
    iban = f.sensitive("iban", dd.iban(random.Random(77)))
    body = {"csrf": await user.csrf(), "iban": iban, "bic": "ZZZZFRPP", "holder": "SELARL Girard"}
    stale = await user.http.post("/portail/coordonnees-bancaires/modifier", data=body)
    assert stale.status_code == 303 and stale.headers["location"].startswith("/portail/confirmer")
    assert await _refusals(api, "bank_details.change") == ["step_up_required"]
    assert await _mail(api, "bank_details.changed") == []
    # a step-up answered without user verification is refused; a good one opens the form
    assert (await _step_up(api, user, "/portail", verified=False)).status_code == 401
    ok = await _step_up(api, user, "/portail/coordonnees-bancaires/modifier")
    assert (
        ok.status_code == 200 and ok.json()["redirect"] == "/portail/coordonnees-bancaires/modifier"
    )
    assert (
        await user.http.post("/portail/coordonnees-bancaires/modifier", data=body)
    ).status_code == 303
    assert len(await _mail(api, "bank_details.changed")) == 1
    assert sorted(await _refusals(api, "step_up")) == ["user_not_verified"]


async def test_a_step_up_takes_only_the_accounts_own_passkey(api: Api, clock: Clock) -> None:
    user, other = await _user(api), await _user(api)
    clock.advance(minutes=6)
    csrf = await user.csrf()
    h = {"x-csrf-token": csrf, "content-type": "application/json"}
    c = (await user.http.post("/portail/confirmer/options", headers=h)).json()
    theirs = await user.http.post(
        "/portail/confirmer/verification",
        json={"ceremony_id": c["ceremony_id"], "credential": other.key.get(c["options"])},
        headers=h,
    )
    assert theirs.status_code == 401
    assert (await user.http.get("/portail/coordonnees-bancaires/modifier")).status_code == 303


@pytest.mark.parametrize("back", ["https://evil.example/x", "//evil.example", "/ailleurs"])
async def test_the_return_address_stays_on_the_portal(api: Api, back: str) -> None:
    user = await _user(api)
    r = await _step_up(api, user, back)
    assert r.status_code == 200 and r.json()["redirect"] == "/portail"


async def test_past_the_soft_ceiling_portal_rights_checks_need_a_step_up(
    api: Api, clock: Clock
) -> None:
    async with api.rt.db.transaction() as conn:
        await conn.execute(
            update(structure)
            .where(structure.c.id == api.pharmacy.structure_id)
            .values(quota_soft=2, quota_hard=50)
        )
    user = await _user(api)
    clock.advance(minutes=6)

    def card(i: int) -> dict[str, str]:
        p = api.persons[i]
        return {"amc_number": api.insurer.amc_number, "adherent_number": p.adherent_number,
                "birth_date": p.birth_date.isoformat(), "rank": str(p.rank), "domain": "PHAR",
                "care_date": "2026-12-01"}  # fmt: skip

    csrf = await user.csrf()
    for i in (0, 2):
        r = await user.http.post("/portail/droits", data={"csrf": csrf, **card(i)})
        assert r.status_code == 200, r.text[:300]
    past = await user.http.post("/portail/droits", data={"csrf": csrf, **card(3)})
    assert (
        past.status_code == 303
        and past.headers["location"] == "/portail/confirmer?retour=/portail/droits"
    )
    assert await _refusals(api, "rights_check") == ["step_up_required"]
    assert (await _step_up(api, user, "/portail/droits")).status_code == 200
    again = await user.http.post("/portail/droits", data={"csrf": csrf, **card(3)})
    assert again.status_code == 200 and "Droits ouverts" in again.text
    clock.advance(minutes=6)  # each fresh assertion lasts five minutes
    later = await user.http.post("/portail/droits", data={"csrf": csrf, **card(4)})
    assert later.status_code == 303


# -- bank details ----------------------------------------------------------------------------


async def test_a_titulaire_changes_bank_details_and_every_titulaire_is_told(api: Api) -> None:
    other_titulaire = await _user(api)
    collaborateur = await _user(api, Role.COLLABORATEUR)
    elsewhere = await _user(api, pro=api.optician)
    user = await _user(api)
    page = await user.http.get("/portail/coordonnees-bancaires")
    assert page.status_code == 200
    old_last4 = api.pharmacy.iban[-4:]
    assert old_last4 in page.text and api.pharmacy.iban not in page.text
    iban = f.sensitive("iban", dd.iban(random.Random(78)))
    body = {"csrf": await user.csrf(), "iban": iban, "bic": "ZZZZFRPP", "holder": "SELARL Girard"}
    done = await user.http.post("/portail/coordonnees-bancaires/modifier", data=body)
    assert (
        done.status_code == 303
        and done.headers["location"] == "/portail/coordonnees-bancaires?ok=1"
    )
    page = await user.http.get("/portail/coordonnees-bancaires?ok=1")
    assert iban[-4:] in page.text and iban not in page.text and "délai de sécurité" in page.text
    async with api.rt.db.read() as conn:
        rows = (
            await conn.execute(
                select(bank_account).where(bank_account.c.structure_id == api.pharmacy.structure_id)
            )
        ).all()
    status = sorted((r.status, r.iban_last4) for r in rows)
    assert status == sorted([("retired", old_last4), ("active", iban[-4:])])
    new = next(r for r in rows if r.status == "active")
    assert new.pays_from == cooling_off_end(api.rt, api.rt.now()) > api.rt.now()
    assert iban.encode() not in new.iban_enc
    assert api.rt.keys.decrypt("bank_account", "iban", new.id, new.iban_enc) == iban
    told = await _mail(api, "bank_details.changed")
    assert sorted(t for t, _, _ in told) == sorted([user.account_id, other_titulaire.account_id])
    assert collaborateur.account_id not in {t for t, _, _ in told}
    assert elsewhere.account_id not in {t for t, _, _ in told}
    assert all(iban not in b and iban[-4:] in b for _, _, b in told)


async def test_a_collaborateur_is_refused_and_the_refusal_is_audited(api: Api) -> None:
    user = await _user(api, Role.COLLABORATEUR)
    page = await user.http.get("/portail/coordonnees-bancaires", headers={"accept": "text/html"})
    assert page.status_code == 403 and api.pharmacy.iban[-4:] not in page.text
    iban = f.sensitive("iban", dd.iban(random.Random(79)))
    body = {"csrf": await user.csrf(), "iban": iban, "bic": "ZZZZFRPP", "holder": "X"}
    r = await user.http.post("/portail/coordonnees-bancaires/modifier", data=body)
    assert r.status_code == 403
    assert await _refusals(api, "bank_details.read") == ["not_allowed"]
    assert await _refusals(api, "bank_details.change") == ["not_allowed"]
    assert await _mail(api, "bank_details.changed") == []
    assert "Coordonnées bancaires" not in (await user.http.get("/portail/securite")).text


async def test_a_wrong_iban_is_named_and_changes_nothing(api: Api) -> None:
    user = await _user(api)
    body = {"csrf": await user.csrf(), "iban": "FR7630006000011234567890188", "bic": "ZZ",
            "holder": ""}  # fmt: skip
    r = await user.http.post("/portail/coordonnees-bancaires/modifier", data=body)
    assert r.status_code == 422
    for field in ("f-iban", "f-bic", "f-holder"):
        assert re.search(rf'id="{field}"[^>]*aria-invalid="true"', r.text), field
    async with api.rt.db.read() as conn:
        n = len((await conn.execute(select(bank_account.c.id))).all())
    assert n == 2 and await _mail(api, "bank_details.changed") == []


# -- recovery --------------------------------------------------------------------------------


async def _operator(api: Api, role: Role = Role.SECURITY) -> Principal:
    name = f"op{uuid.uuid4().hex[:6]}"
    await create_account(
        api.rt, username=name, display_name="Opérateur", email="op@example.test", role=role,
        actor=f.ACTOR,
    )  # fmt: skip
    return await operator_principal(api.rt, name)


async def test_recovery_takes_two_operators_and_starts_the_account_afresh(api: Api) -> None:
    user = await _user(api)
    a, b, agent = (
        await _operator(api),
        await _operator(api, Role.ADMIN),
        await _operator(api, Role.AGENT),
    )
    with pytest.raises(Forbidden):  # an agent does not manage accounts
        await recovery.request(api.rt, user.username, actor=agent, reason="appel")
    asked = await recovery.request(api.rt, user.username, actor=a, reason="rappel au n° connu")
    with pytest.raises(FourEyesViolation):
        await recovery.approve(api.rt, asked.id, actor=a)
    assert await _refusals(api, "recovery.approve") == ["same_person"]
    assert (await user.http.get("/portail/droits")).status_code == 200  # nothing changed yet
    done = await recovery.approve(api.rt, asked.id, actor=b)
    assert (done.passkeys_revoked, done.sessions_revoked) == (1, 1)
    with pytest.raises(Conflict):
        await recovery.approve(api.rt, asked.id, actor=b)
    # the old session and the old passkey open nothing any more
    assert (await user.http.get("/portail/droits")).status_code == 303
    assert (await _sign_in(api, user)).status_code == 401
    [(to, _, body)] = await _mail(api, "recovery.approved")
    assert to == user.account_id and done.invitation_token not in body
    # the new invitation enrols a new passkey, and that new passkey is notified
    s = api.rt.settings
    fresh = SoftKey(s.rp_id, s.public_base_url)
    token = done.invitation_token
    c = (
        await user.http.post(f"/inscription/{token}/options", headers=_json(s.public_base_url))
    ).json()
    enrolled = await user.http.post(
        f"/inscription/{token}/verification",
        json={"ceremony_id": c["ceremony_id"], "credential": fresh.create(c["options"])},
        headers={"origin": s.public_base_url},
    )
    assert enrolled.status_code == 200
    assert [t for t, _, _ in await _mail(api, "passkey.new")] == [user.account_id]
    assert (await user.http.get("/portail/droits")).status_code == 200


async def test_an_operator_cannot_recover_their_own_account(api: Api) -> None:
    a = await _operator(api)
    with pytest.raises(FourEyesViolation):
        await recovery.request(api.rt, a.label, actor=a, reason="")
    assert await _refusals(api, "recovery.request") == ["own_account"]


async def test_adding_a_passkey_needs_a_fresh_assertion(api: Api, clock: Clock) -> None:
    user = await _user(api)
    clock.advance(minutes=6)
    h = {"x-csrf-token": await user.csrf(), "content-type": "application/json"}
    stale = await user.http.post("/portail/securite/cles/options", headers=h)
    assert stale.status_code == 403 and stale.json()["code"] == "step_up_required"
    assert await _refusals(api, "passkey.add") == ["step_up_required"]
    assert (await _step_up(api, user, "/portail/securite")).status_code == 200
    assert (await user.http.post("/portail/securite/cles/options", headers=h)).status_code == 200
