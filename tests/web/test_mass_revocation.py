"""Mass revocation and bulk secret rotation (issue 9 §5): one structure at once, an OCAM's
users or everyone only with a second officer; revoked sessions and tokens stop everywhere,
the next sign-in is a fresh passkey assertion, rotated clients get new secrets handed over
out of band and their structures a mail that never holds the secret."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from rempart.db.tables import mail_outbox, reverify
from rempart.domain.errors import Forbidden, FourEyesViolation
from rempart.domain.roles import Role
from rempart.services import revocation
from rempart.services.registry import create_account, operator_principal
from tests import factories as f
from tests.web.conftest import Api
from tests.web.test_portal import _enrol, _sign_in


async def _officers(api: Api):  # type: ignore[no-untyped-def]
    out = []
    for name in ("sec.un", "sec.deux"):
        await create_account(
            api.rt,
            username=name,
            display_name=name,
            email=f"{name}@op.example",
            role=Role.SECURITY,
            actor=f.ACTOR,
        )
        out.append(await operator_principal(api.rt, name))
    return out


async def _works(api: Api, token: str, domain: str = "PHAR") -> bool:
    r = await api.http.post(
        "/api/v1/rights-checks",
        json=api.body(api.persons[0], domain=domain),
        headers={"Authorization": f"Bearer {token}"},
    )
    return r.status_code == 200


async def _required(api: Api) -> int:
    async with api.rt.db.read() as conn:
        return len((await conn.execute(select(reverify.c.account_id))).all())


async def test_one_structure_is_revoked_at_once_and_signs_in_again_with_its_passkey(
    api: Api,
) -> None:
    one, _ = await _officers(api)
    member = await _enrol(api, api.pharmacy)
    other = await _enrol(api, api.optician)
    token, spared = await api.token(api.pharmacy), await api.token(api.optician)
    assert (await member.http.get("/portail/securite")).status_code == 200
    with pytest.raises(Forbidden):  # a bare shell may not
        await revocation.request(
            api.rt,
            kind="revoke",
            scope="structure",
            target_id=api.pharmacy.structure_id,
            reason="poste compromis",
            actor=f.ACTOR,
        )
    done = await revocation.request(
        api.rt,
        kind="revoke",
        scope="structure",
        target_id=api.pharmacy.structure_id,
        reason="poste compromis",
        actor=one,
    )
    assert (done.status, done.sessions, done.tokens, done.accounts) == ("done", 1, 1, 1)
    assert not await _works(api, token)
    assert await _works(api, spared, "OPTI")  # another structure keeps working
    gone = await member.http.get("/portail/securite")
    assert gone.status_code == 303 and gone.headers["location"] == "/connexion"
    assert (await other.http.get("/portail/securite")).status_code == 200
    assert await _required(api) == 1
    again = await _sign_in(api, member)  # a fresh passkey assertion
    assert again.status_code == 200, again.text
    assert await _required(api) == 0
    assert await _works(api, await api.token(api.pharmacy))  # a new token can be had


async def test_everyone_needs_a_second_officer(api: Api) -> None:
    one, two = await _officers(api)
    a, b = await _enrol(api, api.pharmacy), await _enrol(api, api.optician)
    token, first = await api.token(api.optician), await api.token(api.pharmacy)
    asked = await revocation.request(
        api.rt, kind="revoke", scope="all", target_id=None, reason="incident", actor=one
    )
    assert asked.status == "requested"
    assert await _works(api, token, "OPTI")  # nothing happened yet
    with pytest.raises(FourEyesViolation):
        await revocation.approve(api.rt, asked.action_id, actor=one)
    done = await revocation.approve(api.rt, asked.action_id, actor=two)
    assert done.status == "done" and done.sessions == 2 and done.tokens == 2
    assert not await _works(api, token, "OPTI") and not await _works(api, first)
    for p in (a, b):
        assert (await p.http.get("/portail/securite")).status_code == 303
    assert await _required(api) == done.accounts >= 4  # the two members and the officers


async def test_bulk_rotation_hands_new_secrets_out_of_band_and_mails_the_members(
    api: Api, tmp_path: Path
) -> None:
    one, two = await _officers(api)
    await _enrol(api, api.pharmacy)
    old = await api.token(api.pharmacy)
    out = tmp_path / "secrets.json"
    asked = await revocation.request(
        api.rt,
        kind="rotate",
        scope="all",
        target_id=None,
        reason="fuite",
        actor=one,
        secrets_out=out,
    )
    done = await revocation.approve(api.rt, asked.action_id, actor=two, secrets_out=out)
    assert done.clients == 2
    assert oct(out.stat().st_mode & 0o777) == "0o600"
    handed = {c["client_id"]: c["client_secret"] for c in json.loads(out.read_text())}
    assert set(handed) == {api.pharmacy.client.client_id, api.optician.client.client_id}
    assert not await _works(api, old)  # tokens of the old secret end
    r = await api.http.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": api.pharmacy.client.client_id,
            "client_secret": api.pharmacy.client.client_secret,
        },
    )
    assert r.status_code == 401  # the old secret is worthless
    r = await api.http.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": api.pharmacy.client.client_id,
            "client_secret": handed[api.pharmacy.client.client_id],
        },
    )
    assert r.status_code == 200
    async with api.rt.db.read() as conn:
        mails = (
            (
                await conn.execute(
                    select(mail_outbox.c.body).where(mail_outbox.c.kind == "client_secret_rotated")
                )
            )
            .scalars()
            .all()
        )
    assert len(mails) == 1  # the pharmacy's one member; the optician has none
    assert api.pharmacy.client.client_id in mails[0]
    assert all(s not in mails[0] for s in handed.values())
