"""The back office in headless Chromium with a CDP virtual authenticator: two operators of the
payments role enrol with passkeys; the one who prepared a payment run is refused when approving
it, in the browser; the other approves it. Reuses the portal's server and browser fixtures."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
from playwright.async_api import Page
from sqlalchemy import update

from rempart.db.tables import bank_account
from rempart.domain.roles import Role
from rempart.services import adjudication
from rempart.services.registry import create_account
from tests import factories as f
from tests.e2e import test_portal_browser as browser
from tests.e2e.test_portal_browser import SHOTS, Portal, _page_with_authenticator
from tests.web.test_invoices import CARE, line

pytestmark = browser.pytestmark
portal, server_db = browser.portal, browser.server_db  # the portal's server, for this module


async def _accepted_invoices(portal: Portal) -> None:
    """Two invoices of the pharmacy, accepted, its bank details past their cooling-off."""
    client = portal.pharmacy.client
    async with httpx.AsyncClient(base_url=portal.base) as http:
        token = (
            await http.post(
                "/oauth/token",
                data={
                    "grant_type": "client_credentials",
                    "client_id": client.client_id,
                    "client_secret": client.client_secret,
                },
            )
        ).json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        card = portal.person.card(portal.amc_number)
        check = await http.post(
            "/api/v1/rights-checks", json={**card, "domain": "PHAR", "care_date": CARE},
            headers=auth,
        )  # fmt: skip
        engagement = check.json()["engagement_number"]
        for i in range(2):
            body = {
                "invoice_number": f"BO-{uuid.uuid4().hex[:6]}-{i}", "care_date": CARE,
                "engagement_number": engagement, "beneficiary": card, "lines": [line()],
            }  # fmt: skip
            assert (await http.post("/api/v1/invoices", json=body, headers=auth)).status_code == 202
    await adjudication.decide_all(portal.rt)
    async with portal.rt.db.transaction() as conn:
        await conn.execute(
            update(bank_account).values(pays_from=portal.rt.now() - timedelta(days=30))
        )


async def _operator(portal: Portal, username: str) -> Page:
    acc = await create_account(
        portal.rt,
        username=username,
        display_name=f.sensitive("display_name", f"Opérateur {username}"),
        email=f"{username}@example.test",
        role=Role.PAYMENTS,
        actor=f.ACTOR,
    )
    _, page, _, _ = await _page_with_authenticator(portal)
    page.on("dialog", lambda d: d.accept())  # the "validate this run?" confirmation
    await page.goto(f"{portal.base}/inscription/{acc.invitation_token}")
    await page.get_by_label("Nom de cette clé").fill("Poste des paiements")
    await page.get_by_role("button", name="Créer ma clé d'accès").click()
    await page.wait_for_url(f"{portal.base}/back-office")
    return page


async def test_the_preparer_of_a_payment_run_cannot_approve_it_in_the_browser(
    portal: Portal,
) -> None:
    await _accepted_invoices(portal)
    suffix = uuid.uuid4().hex[:4]
    alice = await _operator(portal, f"paiements.alice.{suffix}")
    await alice.get_by_role("link", name="Campagnes de paiement").first.click()
    await alice.get_by_role("button", name="Préparer la campagne du jour").click()
    await alice.wait_for_url(f"{portal.base}/back-office/paiements/*")
    run_url = alice.url
    assert await alice.get_by_text("Préparée", exact=True).count() == 1

    await alice.get_by_role("button", name="Valider la campagne").click()
    alert = alice.get_by_role("alert")
    await alert.wait_for()
    assert "autre personne" in (await alert.inner_text())
    await alice.screenshot(path=SHOTS / "back-office-quatre-yeux.png", full_page=True)
    await alice.goto(run_url)
    assert await alice.get_by_text("Préparée", exact=True).count() == 1  # nothing changed
    assert await alice.get_by_text("En attente d'une seconde personne").count() == 1

    bob = await _operator(portal, f"paiements.bob.{suffix}")
    await bob.goto(run_url)
    await bob.get_by_role("button", name="Valider la campagne").click()
    await bob.get_by_text("Campagne validée.").wait_for()
    assert await bob.get_by_text("Validée", exact=True).count() == 1
    assert await bob.locator("dd.mono", has_text=f"paiements.bob.{suffix}").count() == 1
