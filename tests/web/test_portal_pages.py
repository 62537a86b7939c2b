"""The portal's business pages through HTTP (ASGI client, PostgreSQL, per-test rollback), signed
in with a software authenticator: a PEC requested and followed, an invoice entered, listed and
read, a payment and its printable remittance advice — each calling the API's services."""

from __future__ import annotations

import re
from typing import Any

import pytest

from rempart.domain.care import Profession
from rempart.services import adjudication, payments
from tests import factories as f
from tests.web.conftest import Api
from tests.web.test_invoices import CARE, check
from tests.web.test_payments import ALICE, BOB, billed_day
from tests.web.test_portal import Person, _enrol, _sign_in

pytestmark = pytest.mark.postgres


async def signed_in(api: Api, pro: f.Professional | None = None) -> Person:
    person = await _enrol(api, pro)
    assert (await _sign_in(api, person)).status_code == 200
    return person


def card_fields(api: Api, p: f.Person) -> dict[str, str]:
    return {
        "beneficiary.amc_number": api.insurer.amc_number,
        "beneficiary.adherent_number": p.adherent_number,
        "beneficiary.birth_date": p.birth_date.isoformat(),
        "beneficiary.rank": str(p.rank),
    }


def pharmacy_line(i: int = 0, **over: str) -> dict[str, str]:
    values = {
        "domain": "PHAR", "code_system": "CIP13", "code": "3400930000014", "quantity": "1",
        "unit_price": "10.00", "brss": "10.00", "amo_rate": "65", "amo_amount": "6.50",
        "amc_amount_claimed": "3.50", **over,
    }  # fmt: skip
    return {f"lines.{i}.{k}": v for k, v in values.items()}


async def post_form(person: Person, path: str, form: dict[str, Any], page: str) -> Any:
    token = await person.csrf(page)
    return await person.http.post(path, data={"csrf": token, **form})


async def test_an_invoice_entered_in_the_portal_is_listed_and_read_with_its_decision(
    api: Api,
) -> None:
    person = await signed_in(api)
    p = api.persons[0]
    engagement = await check(api, await api.token(), p)
    form = {
        "invoice_number": "PORTAIL-1", "care_date": CARE, "engagement_number": engagement,
        **card_fields(api, p), **pharmacy_line(), "lines.1.quantity": "1",  # a blank line
    }  # fmt: skip
    r = await post_form(person, "/portail/factures", form, "/portail/factures/nouvelle")
    assert r.status_code == 303, r.text
    detail = r.headers["location"]
    assert re.fullmatch(r"/portail/factures/[0-9a-f-]{36}\?ok=recue", detail)
    await adjudication.decide_all(api.rt)
    page = await person.http.get(detail)
    assert page.status_code == 200 and "no-store" in page.headers["cache-control"]
    assert "PORTAIL-1" in page.text and "Acceptée" in page.text and "3,50" in page.text
    listed = await person.http.get("/portail/factures?statut=accepted")
    assert "PORTAIL-1" in listed.text
    assert "PORTAIL-1" not in (await person.http.get("/portail/factures?statut=rejected")).text


async def test_an_invoice_form_in_error_names_the_field_and_keeps_what_was_typed(
    api: Api,
) -> None:
    person = await signed_in(api)
    p = api.persons[0]
    form = {
        "invoice_number": "PORTAIL-2", "care_date": CARE, **card_fields(api, p),
        **pharmacy_line(unit_price="dix euros"),
    }  # fmt: skip
    r = await post_form(person, "/portail/factures", form, "/portail/factures/nouvelle")
    assert r.status_code == 422
    assert 'id="f-lines-0-unit_price"' in r.text and 'aria-invalid="true"' in r.text
    field = r.text.split('id="f-lines-0-unit_price"')[1].split(">")[0]
    assert 'value="dix euros"' in field and 'aria-invalid="true"' in field
    assert 'value="PORTAIL-2"' in r.text


async def test_a_pec_is_requested_and_followed_in_the_portal(api: Api) -> None:
    person = await signed_in(api, api.optician)
    p = api.persons[0]
    await check(api, await api.token(api.optician), p, domain="OPTI")
    lens = {
        "lines.0.domain": "OPTI", "lines.0.code_system": "LPP", "lines.0.code": "2203240",
        "lines.0.quantity": "1", "lines.0.unit_price": "150.00", "lines.0.brss": "0.05",
        "lines.0.amo_rate": "60", "lines.0.amo_amount": "0.03",
        "lines.0.amc_amount_claimed": "80.00",
    }  # fmt: skip
    form = {"care_date": CARE, **card_fields(api, p), **lens}
    r = await post_form(person, "/portail/prises-en-charge", form, "/portail/prises-en-charge")
    assert r.status_code == 303, r.text
    page = await person.http.get(r.headers["location"])
    assert "Accordée" in page.text and "80,00" in page.text
    number = re.search(r"P[A-Z2-7]{16}", page.text)
    assert number is not None
    listed = await person.http.get("/portail/prises-en-charge")
    assert number.group(0) in listed.text
    # the sale did not happen: cancelled from its page
    pec_id = r.headers["location"].rsplit("/", 1)[1]
    cancel = await post_form(
        person, f"/portail/prises-en-charge/{pec_id}/annuler", {}, r.headers["location"]
    )
    assert cancel.status_code == 303
    assert "Annulée" in (await person.http.get(cancel.headers["location"])).text


async def test_a_pharmacy_has_no_pec_form_but_an_optician_has(api: Api) -> None:
    ph = await signed_in(api)
    page = await ph.http.get("/portail/prises-en-charge/nouvelle")
    assert "ne fait pas de demande de prise en charge" in page.text
    op = await signed_in(api, api.optician)
    assert 'name="lines.0.code"' in (await op.http.get("/portail/prises-en-charge/nouvelle")).text


async def test_payments_and_the_printable_remittance_advice(api: Api, tmp_path: Any) -> None:
    await billed_day(api)
    run = await payments.prepare(api.rt, ALICE)
    await payments.approve(api.rt, BOB, run.id)
    await payments.export(api.rt, ALICE, run.id, tmp_path / "run.xml")
    person = await signed_in(api)
    listed = await person.http.get("/portail/paiements")
    assert "21,00" in listed.text
    [link] = re.findall(r'href="(/portail/paiements/[0-9a-f-]{36})"', listed.text)
    rsp = await person.http.get(link)
    assert rsp.status_code == 200 and "no-store" in rsp.headers["cache-control"]
    for text in ("R-0", "R-2", "R-X", "Rejetée", "R15", "Imprimer le relevé"):
        assert text in rsp.text
    csv = await person.http.get(f"{link}/releve.csv")
    assert csv.headers["content-type"].startswith("text/csv") and "R-X" in csv.text
    # the optician's structure has no payment in this run: the pharmacy's advice is not found
    other = await signed_in(api, api.optician)
    assert (await other.http.get(link)).status_code == 404


async def test_a_collaborateur_of_a_laboratory_sees_no_pec_link(api: Api) -> None:
    lab = await f.professional(api.rt, Profession.LABORATORY, seed=7, name="Labo Test")
    person = await signed_in(api, lab)
    page = await person.http.get("/portail/factures")
    assert page.status_code == 200 and "Factures" in page.text
