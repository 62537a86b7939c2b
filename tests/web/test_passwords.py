"""Transitional passwords (issue 7): off by default, per account, argon2id, ≥ 15 characters,
not a common one, throttled before hashing, and never enough alone — a TOTP code always.
ASGI client, PostgreSQL, the test clock."""

from __future__ import annotations

import dataclasses
import functools
import itertools
import json
import uuid

import httpx
import pytest
from sqlalchemy import func, select, update

from rempart.db.tables import account, audit_event, reverify, web_session
from rempart.domain.roles import Role
from rempart.security import passwords as pw
from rempart.security import totp
from rempart.services import passwords
from rempart.services.registry import create_account, operator_principal
from rempart.services.runtime import Runtime
from rempart.web.app import create_app
from tests import factories as f
from tests.conftest import Clock
from tests.web.conftest import Api

pytestmark = pytest.mark.postgres

PASSWORD = "le comptoir ouvre à 8 h 30"
_SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


def _rt(api: Api, *, on: bool) -> Runtime:
    settings = api.rt.settings.model_copy(update={"transitional_passwords": on})
    return dataclasses.replace(api.rt, settings=settings)


def _http(rt: Runtime, ip: str = "127.0.0.1") -> httpx.AsyncClient:
    app = create_app(rt.settings, runtime=rt)
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=(ip, 50000)), base_url="https://localhost"
    )


async def _allowed_account(api: Api) -> tuple[str, str]:
    """An account an operator allowed, invited; returns (username, invitation token)."""
    name = f"u{uuid.uuid4().hex[:8]}"
    acc = await create_account(
        api.rt, username=name, display_name="Anne Roux", email="anne@example.test",
        role=Role.TITULAIRE, structure_id=api.pharmacy.structure_id, actor=f.ACTOR,
    )  # fmt: skip
    await create_account(
        api.rt, username=f"op.{name}", display_name="Op", email="op@example.test",
        role=Role.SECURITY, actor=f.ACTOR,
    )  # fmt: skip
    operator = await operator_principal(api.rt, f"op.{name}")
    await passwords.allow(api.rt, name, actor=operator, allowed=True)
    return name, acc.invitation_token


async def _enrolled(api: Api) -> str:
    name, token = await _allowed_account(api)
    rt = _rt(api, on=True)
    step = totp.step_at(rt.now())
    async with _http(rt) as http:
        r = await http.post(
            f"/inscription/{token}/mot-de-passe",
            data={"password": PASSWORD, "totp_secret": _SECRET,
                  "totp_code": totp.code_at(_SECRET, step - 1)},
        )  # fmt: skip
    assert r.status_code == 303, r.text[:500]
    return name


async def _sessions(api: Api) -> int:
    async with api.rt.db.read() as conn:
        return int((await conn.execute(select(func.count()).select_from(web_session))).scalar())


async def _reasons(api: Api) -> list[str]:
    async with api.rt.db.read() as conn:
        rows = await conn.execute(
            select(audit_event.c.detail).where(
                audit_event.c.purpose == "password.signin", audit_event.c.result == "refused"
            )
        )
        return [json.loads(d)["reason"] for d in rows.scalars()]


CASES = list(
    itertools.product([True, False], [True, False], ["missing", "wrong", "replayed", "right"])
)


@functools.cache
def _hash() -> str:
    return pw.hash_password(PASSWORD)


@pytest.mark.parametrize(("setting", "flag", "code"), CASES)
async def test_a_password_alone_never_signs_in(
    api: Api, clock: Clock, setting: bool, flag: bool, code: str
) -> None:
    # as after an enrolment (tested below) whose code was the previous step's: password and
    # TOTP set; then the account's flag is set as the case says
    name, _ = await _allowed_account(api)
    step = totp.step_at(clock())
    async with api.rt.db.transaction() as conn:
        aid = (await conn.execute(select(account.c.id).where(account.c.username == name))).scalar()
        await conn.execute(
            update(account).where(account.c.id == aid).values(
                password_allowed=flag, password_hash=_hash(), totp_last_step=step - 1,
                totp_secret_enc=api.rt.keys.encrypt("account", "totp_secret", aid, _SECRET),
            )
        )  # fmt: skip
    before = await _sessions(api)
    codes = {
        "missing": "",
        "wrong": totp.code_at("KRSXG5CTMVRXEZLUKRSXG5CTMVRXEZLU", step),
        "replayed": totp.code_at(_SECRET, step - 1),  # still in the window, but spent
        "right": totp.code_at(_SECRET, step),
    }
    async with _http(_rt(api, on=setting)) as http:
        r = await http.post(
            "/connexion/mot-de-passe",
            data={"username": name, "password": PASSWORD, "totp_code": codes[code]},
        )
        opened = "rempart_session" in http.cookies
    if setting and flag and code == "right":
        assert r.status_code == 303 and opened and await _sessions(api) == before + 1
    else:
        assert r.status_code in (401, 404) and not opened and await _sessions(api) == before
        if setting:
            expected = {"missing": "totp_missing", "wrong": "totp_wrong", "replayed": "totp_wrong"}
            assert await _reasons(api) == [expected[code] if flag else "password_not_allowed"]
        else:
            assert r.status_code == 404 and await _reasons(api) == ["passwords_disabled"]


async def test_no_password_form_unless_turned_on(api: Api) -> None:
    async with _http(_rt(api, on=False)) as http:
        assert 'action="/connexion/mot-de-passe"' not in (await http.get("/connexion")).text
        assert (await http.post("/connexion", data={"username": "x"})).status_code == 405
    async with _http(_rt(api, on=True)) as http:
        assert 'action="/connexion/mot-de-passe"' in (await http.get("/connexion")).text


async def test_enrolment_refuses_weak_passwords_and_wrong_codes_then_stores_a_hash(
    api: Api,
) -> None:
    name, token = await _allowed_account(api)
    rt = _rt(api, on=True)
    now_code = totp.code_at(_SECRET, totp.step_at(rt.now()))
    async with _http(rt) as http:
        page = await http.get(f"/inscription/{token}")
        assert 'action="/inscription/' in page.text and "mot-de-passe" in page.text
        for weak in ("trop court", "passwordpassword", "1234567890123456", f"{name} et compagnie"):
            r = await http.post(
                f"/inscription/{token}/mot-de-passe",
                data={"password": weak, "totp_secret": _SECRET, "totp_code": now_code},
            )
            assert (
                r.status_code == 422 and 'id="e-pass"' in r.text and 'aria-invalid="true"' in r.text
            )
        wrong = await http.post(
            f"/inscription/{token}/mot-de-passe",
            data={"password": PASSWORD, "totp_secret": _SECRET, "totp_code": "000000"},
        )
        assert wrong.status_code == 422 and "code incorrect" in wrong.text.lower()
        ok = await http.post(
            f"/inscription/{token}/mot-de-passe",
            data={"password": PASSWORD, "totp_secret": _SECRET, "totp_code": now_code},
        )
        assert ok.status_code == 303
        assert (await http.get(f"/inscription/{token}")).status_code == 404  # spent
    async with api.rt.db.read() as conn:
        row = (await conn.execute(select(account).where(account.c.username == name))).one()
    assert row.password_hash.startswith("$argon2id$") and PASSWORD not in row.password_hash
    assert _SECRET.encode() not in row.totp_secret_enc


async def test_failures_are_throttled_per_account_and_per_ip_before_hashing(
    api: Api, clock: Clock
) -> None:
    name = await _enrolled(api)
    rt = _rt(api, on=True)
    clock.advance(seconds=60)
    async with _http(rt, "10.0.0.1") as http:
        for _ in range(10):
            r = await http.post(
                "/connexion/mot-de-passe",
                data={"username": name, "password": "pas le bon mot de passe", "totp_code": "1"},
            )
            assert r.status_code == 401
        right = {"username": name, "password": PASSWORD,
                 "totp_code": totp.code_at(_SECRET, totp.step_at(clock()))}  # fmt: skip
        stopped = await http.post("/connexion/mot-de-passe", data=right)
        assert stopped.status_code == 429 and "retry-after" in stopped.headers
        # the same IP is stopped for any other account name too
        other = await http.post("/connexion/mot-de-passe", data={**right, "username": "autre"})
        assert other.status_code == 429
    async with _http(rt, "10.0.0.2") as http:  # another IP, the same account: stopped
        assert (await http.post("/connexion/mot-de-passe", data=right)).status_code == 429
    assert (await _reasons(api)).count("throttled") == 3
    clock.advance(minutes=10)  # one more try every 10 minutes (6 an hour)
    right["totp_code"] = totp.code_at(_SECRET, totp.step_at(clock()))
    async with _http(rt, "10.0.0.2") as http:
        assert (await http.post("/connexion/mot-de-passe", data=right)).status_code == 303


async def test_a_password_session_can_never_step_up(api: Api) -> None:
    name = await _enrolled(api)
    rt = _rt(api, on=True)
    async with _http(rt) as http:
        await http.post(  # the enrolment signed in already; sign in again from scratch
            "/connexion/mot-de-passe", data={"username": name, "password": PASSWORD,
                                             "totp_code": "x"})  # fmt: skip
    async with _http(rt) as http:
        r = await http.post(
            f"/inscription/{uuid.uuid4()}/mot-de-passe", data={"password": PASSWORD}
        )
        assert r.status_code == 404
    # signed in with password + TOTP, the bank-details form sends to a page with no way on
    name2, token = await _allowed_account(api)
    async with _http(rt) as http:
        code = totp.code_at(_SECRET, totp.step_at(rt.now()))
        r = await http.post(
            f"/inscription/{token}/mot-de-passe",
            data={"password": PASSWORD, "totp_secret": _SECRET, "totp_code": code},
        )
        assert r.status_code == 303 and name2
        form = await http.get("/portail/coordonnees-bancaires/modifier")
        assert form.status_code == 303
        page = await http.get(form.headers["location"])
        assert "data-passkey" not in page.text and "sans clé d'accès" in page.text


def test_password_rules() -> None:
    assert pw.problems("x" * 14) == ["15 caractères au moins"]
    for common in ("passwordpassword", "password123456789", "dragondragondragon", "aaaaaaaaaaaaaaaa",
                   "zyxwvutsrqponmlk", "1234567890123456"):  # fmt: skip
        assert pw.problems(common), common
    assert pw.problems("la pharmacie ouvre tôt le lundi") == []
    assert pw.problems("Pharmacie t.lenoir du centre", username="t.lenoir")
    stored = pw.hash_password("la pharmacie ouvre tôt le lundi")
    assert pw.verify(stored, "la pharmacie ouvre tôt le lundi")
    assert not pw.verify(stored, "la pharmacie ouvre tôt le mardi")
    assert not pw.verify(None, "la pharmacie ouvre tôt le lundi")


def test_a_totp_code_works_once_and_only_near_its_time() -> None:
    from datetime import UTC, datetime, timedelta

    now = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
    step = totp.step_at(now)
    code = totp.code_at(_SECRET, step)
    assert totp.accepted_step(_SECRET, code, now=now, last_step=None) == step
    assert totp.accepted_step(_SECRET, code, now=now, last_step=step) is None  # replayed
    assert (
        totp.accepted_step(_SECRET, code, now=now + timedelta(seconds=31), last_step=None) == step
    )
    assert totp.accepted_step(_SECRET, code, now=now + timedelta(minutes=2), last_step=None) is None
    assert totp.accepted_step(_SECRET, "12345", now=now, last_step=None) is None


async def test_after_a_mass_revocation_a_password_does_not_sign_in(api: Api, clock: Clock) -> None:
    """A mass revocation marks accounts for passkey re-verification; the right password and
    code are refused until the account signs in with a passkey (``passkey_required``)."""
    name, _ = await _allowed_account(api)
    step = totp.step_at(clock())
    async with api.rt.db.transaction() as conn:
        aid = (await conn.execute(select(account.c.id).where(account.c.username == name))).scalar()
        await conn.execute(
            update(account).where(account.c.id == aid).values(
                password_allowed=True, password_hash=_hash(), totp_last_step=step - 1,
                totp_secret_enc=api.rt.keys.encrypt("account", "totp_secret", aid, _SECRET),
            )
        )  # fmt: skip
        await conn.execute(
            reverify.insert().values(account_id=aid, required_at=clock(), reason="drill")
        )
    before = await _sessions(api)
    async with _http(_rt(api, on=True)) as http:
        r = await http.post(
            "/connexion/mot-de-passe",
            data={"username": name, "password": PASSWORD,
                  "totp_code": totp.code_at(_SECRET, step)},
        )  # fmt: skip
        assert r.status_code == 401 and "rempart_session" not in http.cookies
    assert await _sessions(api) == before
    assert await _reasons(api) == ["passkey_required"]
