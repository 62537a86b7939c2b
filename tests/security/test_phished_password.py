"""Red-team (a): a phished password opens nothing. The passkey sign-in takes no credentials;
transitional passwords are off by default and, where an operator turns them on, always need a
TOTP code too (every configuration: tests/web/test_passwords.py); without a session no portal
page answers with anything about a patient."""

from __future__ import annotations

import time

from tests.security.test_red_team import report
from tests.web.conftest import Api


async def test_a_phished_password_opens_no_session_and_reads_no_one(api: Api) -> None:
    started = time.perf_counter()
    card = {
        **api.persons[0].card(api.insurer.amc_number),
        "domain": "PHAR",
        "care_date": "2026-12-01",
    }
    login = await api.http.post(
        "/connexion", data={"username": "titulaire.pharmacie", "password": "Correct-Horse-42!"}
    )
    assert login.status_code == 405 and "set-cookie" not in login.headers  # no password path
    transitional = await api.http.post(
        "/connexion/mot-de-passe",
        data={"username": "titulaire.pharmacie", "password": "Correct-Horse-42! et la suite"},
    )
    assert transitional.status_code == 404 and "set-cookie" not in transitional.headers  # off
    forged = await api.http.post(
        "/connexion/verification",
        json={"id": "AAAA", "rawId": "AAAA", "type": "public-key", "response": {}},
        headers={"Origin": "http://localhost"},
    )
    assert forged.status_code >= 400 and "set-cookie" not in forged.headers
    obtained = 0
    for method, path in (
        ("GET", "/portail"),
        ("GET", "/portail/droits"),
        ("POST", "/portail/droits"),
    ):
        r = await api.http.request(method, path, data=card if method == "POST" else None)
        assert r.status_code in (303, 401, 403), (method, path, r.status_code)
        obtained += api.persons[0].last_name in r.text
    took = (time.perf_counter() - started) * 1000
    report(
        "(a) phished password, no passkey", obtained, None, f"no session, refused in {took:.0f} ms"
    )
    assert obtained == 0
