"""Key rotation while serving (performance issue): rights checks keep answering during the
re-encryption, every encrypted row ends under the new version, nothing is written in clear, and
the values read back are the same."""

from __future__ import annotations

import asyncio

from sqlalchemy import select

from rempart.access import ENCRYPTED
from rempart.services import key_rotation
from tests import factories as f
from tests.web.conftest import Api
from tests.web.test_invoices import _auth, check, invoice_body, send


async def test_rotation_while_checks_run_loses_no_read_and_writes_no_plaintext(
    live_api: Api,
) -> None:
    api = live_api
    token = await api.token()
    p = api.persons[0]
    number = await check(api, token, p)
    assert (await send(api, token, invoice_body(api, p, "K-1", number))).status_code == 202
    progress: list[tuple[str, int, int]] = []
    statuses: list[int] = []
    rotating = True

    async def checks() -> None:
        while rotating:
            r = await api.http.post(
                "/api/v1/rights-checks",
                json=api.body(api.persons[len(statuses) % 8]),
                headers=_auth(token),
            )
            statuses.append(r.status_code)

    async def rotation() -> key_rotation.Rotation:
        nonlocal rotating
        try:
            return await key_rotation.rotate(
                api.rt, f.ACTOR, batch=2, progress=lambda *a: progress.append(a)
            )
        finally:
            rotating = False

    _, done = await asyncio.gather(checks(), rotation())
    assert done.version == 2
    assert done.rows["beneficiary"] == 8 and done.rows["invoice"] == 1
    assert statuses and set(statuses) == {200}  # every check answered while rotating
    assert progress[-1][1] == progress[-1][2]
    secrets = set(f.all_sensitive().values())
    async with api.rt.db.read() as conn:
        for table, columns in ENCRYPTED:
            rows = (await conn.execute(select(table))).all()
            for row in rows:
                assert row.key_version == 2, table.name
                for column, name in columns:
                    blob = getattr(row, column)
                    assert int.from_bytes(blob[:2], "big") == 2
                    assert not any(s.encode() in blob for s in secrets)  # nothing in clear
                    api.rt.keys.decrypt(table.name, name, row.id, blob)  # and it reads back
    # the same person is found by the same card: blind indexes did not change
    after = await api.http.post("/api/v1/rights-checks", json=api.body(p), headers=_auth(token))
    assert after.json()["status"] == "covered"
    again = await key_rotation.rotate(api.rt, f.ACTOR, resume=True)
    assert (again.version, sum(again.rows.values())) == (2, 0)  # nothing left to do
