"""The portal in headless Chromium (Debian's ``/usr/bin/chromium``) with a CDP virtual
authenticator: invitation → passkey → sign-in → rights check → sign-out, and the attacks that
must fail — user verification missing, a replayed assertion, a look-alike origin, a stolen
cookie after "sign out elsewhere".

The server is uvicorn in a thread, on a free port, against a PostgreSQL database of its own;
``REMPART_BASE_URL`` is ``http://localhost:<port>`` (the RP id ``localhost``). Screenshots of
each page go to ``var/screenshots/`` (``REMPART_SCREENSHOTS`` elsewhere).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import socket
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from playwright.async_api import Browser, BrowserContext, Page, async_playwright
from sqlalchemy import func, select, update

from rempart.db.engine import Database, create_engine
from rempart.db.migrate import upgrade
from rempart.db.tables import account, audit_event, mail_outbox, web_session
from rempart.domain.roles import Role
from rempart.security import sessions
from rempart.security.keys import KeyRing
from rempart.services import demo_data as dd
from rempart.services.beneficiaries import import_beneficiaries
from rempart.services.registry import create_account
from rempart.services.runtime import Runtime
from rempart.testing.postgres import Cluster
from rempart.web.app import create_app
from tests import factories as f
from tests.conftest import make_settings

CHROMIUM = "/usr/bin/chromium"
SHOTS = Path(os.environ.get("REMPART_SCREENSHOTS", "var/screenshots"))
pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed"),
]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Portal:
    base: str
    rt: Runtime
    amc_number: str
    person: f.Person
    pharmacy: f.Professional
    browser: Browser

    async def invite(self, name: str = "Claire Martin") -> str:
        acc = await create_account(
            self.rt,
            username=f"c.martin.{uuid.uuid4().hex[:6]}",
            display_name=f.sensitive("display_name", name),
            email="claire.martin@example.test",
            role=Role.TITULAIRE,
            structure_id=self.pharmacy.structure_id,
            actor=f.ACTOR,
        )
        return f"{self.base}/inscription/{acc.invitation_token}"

    async def refusals(self, reason: str) -> int:
        async with self.rt.db.read() as conn:
            rows = await conn.execute(
                select(audit_event.c.detail).where(
                    audit_event.c.channel == "portal-signin", audit_event.c.result == "refused"
                )
            )
            return sum(json.loads(d or "{}").get("reason") == reason for d in rows.scalars())


class _Server(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # a thread cannot take signals
        pass


@pytest.fixture(scope="module")
def server_db(pg_cluster: Cluster) -> Iterator[str]:
    name = f"rempart_portal_{uuid.uuid4().hex[:8]}"
    url = pg_cluster.create_database(name)
    upgrade(url)
    yield url
    pg_cluster.psql(f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
async def portal(
    server_db: str, tmp_path_factory: pytest.TempPathFactory, keys: KeyRing
) -> AsyncIterator[Portal]:
    tmp = tmp_path_factory.mktemp("portal")
    port = _port()
    base = f"http://localhost:{port}"
    settings = make_settings(tmp, database_url=server_db, base_url=base, port=port)
    db = Database(create_engine(server_db, pool_size=2))
    rt = Runtime(settings, db, keys)
    insurer = await f.insurer(rt)
    persons = f.people(3, seed=21)
    await import_beneficiaries(
        rt, f.write_file(tmp / "b.csv", persons), amc_number=insurer.amc_number, actor=f.ACTOR
    )
    pharmacy = await f.professional(rt, name="Pharmacie du Marché")
    server = _Server(uvicorn.Config(create_app(settings), port=port, log_config=None))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        await asyncio.sleep(0.05)
    SHOTS.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--lang=fr-FR"],
        )
        try:
            yield Portal(base, rt, insurer.amc_number, persons[0], pharmacy, browser)
        finally:
            await browser.close()
            server.should_exit = True
            thread.join(timeout=10)
            await db.dispose()


async def _page_with_authenticator(
    portal: Portal, *, verified: bool = True
) -> tuple[BrowserContext, Page, Any, str]:
    context = await portal.browser.new_context(
        viewport={"width": 1100, "height": 760}, locale="fr-FR", timezone_id="Europe/Paris"
    )
    page = await context.new_page()
    cdp = await context.new_cdp_session(page)
    await cdp.send("WebAuthn.enable", {"enableUI": False})
    added = await cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": verified,
                "automaticPresenceSimulation": True,
            }
        },
    )
    return context, page, cdp, added["authenticatorId"]


async def _enrol(portal: Portal, page: Page, link: str, *, shot: str | None = None) -> None:
    await page.goto(link)
    await page.get_by_label("Nom de cette clé").fill("Poste du comptoir")
    if shot:
        await page.screenshot(path=SHOTS / shot, full_page=True)
    await page.get_by_role("button", name="Créer ma clé d'accès").click()
    await page.wait_for_url(f"{portal.base}/portail/droits")


async def _sign_in(portal: Portal, page: Page) -> None:
    await page.goto(f"{portal.base}/connexion")
    await page.get_by_role("button", name="Se connecter avec ma clé d'accès").click()
    await page.wait_for_url(f"{portal.base}/portail/droits")


async def _session_cookie(context: BrowserContext) -> str:
    cookies = await context.cookies()
    found = [c for c in cookies if c["name"] == "rempart_session"]
    assert found, "no session cookie"
    c = found[0]
    assert c["httpOnly"] and c["secure"] and c["sameSite"] == "Strict"
    return str(c["value"])


async def test_invitation_passkey_sign_in_rights_check_sign_out(portal: Portal) -> None:
    context, page, _, _ = await _page_with_authenticator(portal)
    link = await portal.invite()
    await _enrol(portal, page, link, shot="inscription.png")

    # the link is spent: a second visit is the same "not valid" page as an unknown link
    r = await page.goto(link)
    assert r is not None and r.status == 404
    await page.goto(f"{portal.base}/portail/droits")

    # sign out, then sign in again with the passkey alone (no user name, no password)
    await page.get_by_role("button", name="Se déconnecter").click()
    await page.wait_for_url(f"{portal.base}/connexion?fin=1")
    await page.screenshot(path=SHOTS / "connexion.png", full_page=True)
    await _sign_in(portal, page)

    p = portal.person
    await page.get_by_label("Numéro AMC").fill(portal.amc_number)
    await page.get_by_label("Numéro d'adhérent").fill(p.adherent_number)
    await page.get_by_label("Date de naissance").fill(p.birth_date.isoformat())
    await page.get_by_label("Rang de naissance").fill("1")
    assert await page.get_by_label("Domaine").input_value() == "PHAR"  # the one domain it bills
    response_headers: dict[str, str] = {}

    async def on_response(resp: Any) -> None:
        if resp.url.endswith("/portail/droits") and resp.request.method == "POST":
            response_headers.update(await resp.all_headers())

    page.on("response", on_response)
    await page.get_by_role("button", name="Vérifier les droits").click()
    await page.get_by_text("Droits ouverts").wait_for()
    engagement = await page.locator(".engagement").inner_text()
    assert engagement.startswith("E") and len(engagement) == 27
    assert response_headers.get("cache-control") == "no-store"
    assert "script-src 'self'" in response_headers.get("content-security-policy", "")
    await page.screenshot(path=SHOTS / "droits.png", full_page=True)

    # a card that matches nobody: "not found", same screen
    await page.get_by_label("Numéro d'adhérent").fill("999999999")
    await page.get_by_role("button", name="Vérifier les droits").click()
    await page.get_by_text("Droits non trouvés").wait_for()

    await page.get_by_role("link", name="Sécurité").click()
    await page.get_by_role("heading", name="Sessions actives").wait_for()
    await page.screenshot(path=SHOTS / "securite.png", full_page=True)

    await page.get_by_role("button", name="Se déconnecter").click()
    await page.wait_for_url(f"{portal.base}/connexion?fin=1")
    await page.goto(f"{portal.base}/portail/droits")
    assert page.url == f"{portal.base}/connexion"
    await context.close()


async def test_sign_in_without_user_verification_is_refused(portal: Portal) -> None:
    context, page, cdp, authenticator = await _page_with_authenticator(portal)
    await _enrol(portal, page, await portal.invite())
    await context.clear_cookies()
    await cdp.send(
        "WebAuthn.setUserVerified", {"authenticatorId": authenticator, "isUserVerified": False}
    )
    # The browser itself refuses, since the server asks for user verification…
    await page.goto(f"{portal.base}/connexion")
    await page.get_by_role("button", name="Se connecter avec ma clé d'accès").click()
    await page.get_by_text("Opération annulée ou refusée").wait_for()
    assert page.url.startswith(f"{portal.base}/connexion")

    # … and a browser made to skip it (options rewritten on the way) meets the server's check.
    async def discourage(route: Any) -> None:
        resp = await route.fetch()
        body = await resp.json()
        body["options"]["userVerification"] = "discouraged"
        await route.fulfill(response=resp, json=body)

    await page.route("**/connexion/options", discourage)
    before = await portal.refusals("user_not_verified")
    await page.get_by_role("button", name="Se connecter avec ma clé d'accès").click()
    await page.get_by_text("La connexion a été refusée").wait_for()
    assert await portal.refusals("user_not_verified") == before + 1
    assert not [c for c in await context.cookies() if c["name"] == "rempart_session"]
    await context.close()


async def test_replayed_assertion_is_refused(portal: Portal) -> None:
    context, page, _, _ = await _page_with_authenticator(portal)
    await _enrol(portal, page, await portal.invite())
    await context.clear_cookies()
    posted: list[str] = []
    page.on(
        "request",
        lambda req: (
            posted.append(req.post_data or "")
            if req.url.endswith("/connexion/verification")
            else None
        ),
    )
    await _sign_in(portal, page)
    assert len(posted) == 1
    before = await portal.refusals("challenge_spent")
    async with httpx.AsyncClient(base_url=portal.base) as http:
        again = await http.post(
            "/connexion/verification",
            content=posted[0],
            headers={"content-type": "application/json", "origin": portal.base},
        )
    assert again.status_code == 401
    assert "rempart_session" not in again.cookies
    assert await portal.refusals("challenge_spent") == before + 1
    await context.close()


async def test_look_alike_origin_gets_no_usable_credential(portal: Portal) -> None:
    """A phishing copy of the portal, served through a proxy that relays to the real server."""
    context, page, _, _ = await _page_with_authenticator(portal)
    await _enrol(portal, page, await portal.invite())
    await context.clear_cookies()
    captured: list[str] = []

    def proxy(fake: str) -> Any:
        async def handle(route: Any) -> None:
            req = route.request
            if req.url.endswith("/connexion/verification"):
                captured.append(req.post_data or "")  # the phisher keeps the assertion
                await route.abort()
                return
            real = req.url.replace(fake, portal.base)
            resp = await route.fetch(url=real, headers={**req.headers, "origin": portal.base})
            await route.fulfill(response=resp)

        return handle

    # evil.localhost: the browser refuses to use the passkey for a site of another name
    evil = portal.base.replace("localhost", "evil.localhost")
    await page.route(f"{evil}/**", proxy(evil))
    await page.goto(f"{evil}/connexion")
    await page.get_by_role("button", name="Se connecter avec ma clé d'accès").click()
    await page.get_by_text("relying party ID is not a registrable domain suffix").wait_for()
    assert not captured

    # localhost on another port: the browser signs, but the signed origin is not ours
    other = f"http://localhost:{_port()}"
    await page.route(f"{other}/**", proxy(other))
    await page.goto(f"{other}/connexion")
    await page.get_by_role("button", name="Se connecter avec ma clé d'accès").click()
    for _ in range(100):
        if captured:
            break
        await page.wait_for_timeout(50)
    assert captured, "the look-alike page got no assertion to relay"
    before = await portal.refusals("origin")
    async with httpx.AsyncClient(base_url=portal.base) as http:
        relayed = await http.post(
            "/connexion/verification",
            content=captured[0],
            headers={"content-type": "application/json", "origin": portal.base},
        )
    assert relayed.status_code == 401
    assert "rempart_session" not in relayed.cookies
    assert await portal.refusals("origin") == before + 1
    await context.close()


async def test_stolen_cookie_is_refused_after_sign_out_elsewhere(portal: Portal) -> None:
    context, page, _, _ = await _page_with_authenticator(portal)
    await _enrol(portal, page, await portal.invite())
    stolen = await _session_cookie(context)
    async with httpx.AsyncClient(base_url=portal.base) as thief:
        ok = await thief.get("/portail/droits", headers={"cookie": f"rempart_session={stolen}"})
        assert ok.status_code == 200

        # the person signs in again elsewhere and ends every other session
        await context.clear_cookies()
        await _sign_in(portal, page)
        await page.goto(f"{portal.base}/portail/securite")
        assert await page.locator("tbody tr").count() >= 3  # two sessions, one passkey
        await page.get_by_role("button", name="Déconnecter les autres sessions").click()
        await page.get_by_text("Vos autres sessions ont été déconnectées.").wait_for()

        refused = await thief.get(
            "/portail/droits", headers={"cookie": f"rempart_session={stolen}"}
        )
        assert refused.status_code == 303
        assert refused.headers["location"] == "/connexion"
    # the person's own session goes on
    await page.goto(f"{portal.base}/portail/droits")
    assert page.url == f"{portal.base}/portail/droits"
    await context.close()


async def test_bank_details_change_needs_a_fresh_assertion_and_tells_the_titulaires(
    portal: Portal,
) -> None:
    context, page, _, _ = await _page_with_authenticator(portal)
    await _enrol(portal, page, await portal.invite("Hélène Garnier"))
    cookie = await _session_cookie(context)
    await page.get_by_role("link", name="Coordonnées bancaires").click()
    await page.get_by_role("heading", name="Compte qui reçoit vos paiements").wait_for()
    assert portal.pharmacy.iban[-4:] in await page.content()
    assert portal.pharmacy.iban not in await page.content()
    await page.screenshot(path=SHOTS / "coordonnees-bancaires.png", full_page=True)
    # the sign-in was 10 minutes ago: its assertion is no longer fresh
    async with portal.rt.db.transaction() as conn:
        await conn.execute(
            update(web_session)
            .where(web_session.c.id_hash == sessions.id_hash(portal.rt.keys, cookie))
            .values(stepped_up_at=datetime.now(UTC) - timedelta(minutes=10))
        )
    await page.get_by_role("link", name="Modifier les coordonnées bancaires").click()
    await page.wait_for_url(
        f"{portal.base}/portail/confirmer?retour=/portail/coordonnees-bancaires/modifier"
    )
    await page.screenshot(path=SHOTS / "confirmer.png", full_page=True)
    await page.get_by_role("button", name="Confirmer avec ma clé d'accès").click()
    await page.wait_for_url(f"{portal.base}/portail/coordonnees-bancaires/modifier")
    iban = f.sensitive("iban", dd.iban(random.Random(5150)))
    await page.get_by_label("IBAN du nouveau compte").fill(iban)
    await page.get_by_label("BIC").fill("ZZZZFRPP")
    await page.get_by_label("Titulaire du compte").fill(f.sensitive("holder", "SELARL Garnier"))
    await page.screenshot(path=SHOTS / "coordonnees-bancaires-modifier.png", full_page=True)
    await page.get_by_role("button", name="Enregistrer le nouveau compte").click()
    await page.wait_for_url(f"{portal.base}/portail/coordonnees-bancaires?ok=1")
    shown = await page.content()
    assert iban[-4:] in shown and iban not in shown and "En délai de sécurité" in shown
    # every titulaire of the structure is told on the address on file, before any payment
    async with portal.rt.db.read() as conn:
        told = (
            await conn.execute(
                select(mail_outbox.c.account_id, mail_outbox.c.body).where(
                    mail_outbox.c.kind == "bank_details.changed"
                )
            )
        ).all()
        titulaires = (
            (
                await conn.execute(
                    select(account.c.id).where(
                        account.c.structure_id == portal.pharmacy.structure_id,
                        account.c.role == "titulaire",
                    )
                )
            )
            .scalars()
            .all()
        )
        steps = (
            await conn.execute(
                select(func.count())
                .select_from(audit_event)
                .where(audit_event.c.purpose == "step_up", audit_event.c.result == "ok")
            )
        ).scalar()
    assert sorted(t for t, _ in told) == sorted(titulaires) and len(titulaires) >= 1
    assert all(iban[-4:] in body and iban not in body for _, body in told)
    assert steps == 1
    await context.close()
