"""The JSON API through HTTP, on PostgreSQL: tokens, rights checks, errors as problem+json."""

from __future__ import annotations

import base64

import pytest
from sqlalchemy import select

from rempart.db.tables import audit_event
from rempart.domain.channels import Channel
from rempart.services import channels
from rempart.web.api.schemas import RightsCheckOut
from tests import factories as f
from tests.web.conftest import Api

KEYS = {
    "verification_id",
    "status",
    "domain",
    "care_date",
    "coverage",
    "engagement_number",
    "valid_until",
}


def assert_problem(r, status: int, code: str) -> dict:  # type: ignore[no-untyped-def,type-arg]
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert set(body) >= {"type", "title", "status", "detail", "code", "errors"}
    assert (body["status"], body["code"]) == (status, code)
    return body  # type: ignore[no-any-return]


async def test_token_by_form_and_by_basic(api: Api) -> None:
    c = api.pharmacy.client
    r = await api.http.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": c.client_id,
            "client_secret": c.client_secret,
        },
    )
    body = r.json()
    assert (r.status_code, body["token_type"], body["expires_in"]) == (200, "Bearer", 900)
    assert len(body["access_token"]) >= 43
    basic = base64.b64encode(f"{c.client_id}:{c.client_secret}".encode()).decode()
    r = await api.http.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": f"Basic {basic}"},
    )
    assert r.status_code == 200
    assert r.headers["cache-control"] == "no-store"


async def test_wrong_secret_is_401_and_audited(api: Api) -> None:
    r = await api.http.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": api.pharmacy.client.client_id,
            "client_secret": "not-the-secret",
        },
    )
    assert_problem(r, 401, "not_authenticated")
    async with api.rt.db.transaction() as conn:
        rows = (
            await conn.execute(select(audit_event).where(audit_event.c.purpose == "token"))
        ).all()
    assert [(e.result, e.actor_label, e.actor_id) for e in rows] == [
        ("refused", api.pharmacy.client.client_id, api.pharmacy.client.id)
    ]


@pytest.mark.parametrize("client_id", ["oops-this-is-my-secret-9f8e7d6c5b4a", ""])
async def test_a_refused_token_request_never_stores_what_was_typed(
    api: Api, client_id: str
) -> None:
    r = await api.http.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": "x"},
    )
    assert r.status_code == 401
    async with api.rt.db.transaction() as conn:
        labels = (await conn.execute(select(audit_event.c.actor_label))).scalars().all()
    assert client_id not in labels or not client_id
    assert "(client inconnu)" in labels or not client_id


async def test_wrong_grant_type_is_400(api: Api) -> None:
    r = await api.http.post("/oauth/token", data={"grant_type": "password"})
    assert_problem(r, 400, "unsupported_grant_type")


async def test_every_card_is_covered_and_answers_have_the_same_keys(api: Api) -> None:
    token = await api.token()
    auth = {"Authorization": f"Bearer {token}"}
    for i, p in enumerate(api.persons):
        r = await api.http.post("/api/v1/rights-checks", json=api.body(p), headers=auth)
        assert r.status_code == 200
        body = r.json()
        assert set(body) == KEYS
        RightsCheckOut.model_validate(body)  # the documented schema
        assert body["status"] == ("not_covered" if i == 1 else "covered")
        assert r.headers["cache-control"] == "no-store"
    covered = (
        await api.http.post("/api/v1/rights-checks", json=api.body(api.persons[0]), headers=auth)
    ).json()
    assert covered["coverage"] == {
        "formula": "pct_brss",
        "rate_pct": 100,
        "flat_amount": None,
        "ceiling_amount": None,
        "label": "100 % de la base de remboursement",
    }
    assert covered["engagement_number"].startswith("E") and covered["valid_until"] == "2026-12-16"


async def test_unknown_and_other_ocam_answers_are_identical(api: Api) -> None:
    auth = {"Authorization": f"Bearer {await api.token()}"}
    p = api.persons[0]
    unknown = await api.http.post(
        "/api/v1/rights-checks", json=api.body(p, adherent_number="Q0000000"), headers=auth
    )
    other = await api.http.post(
        "/api/v1/rights-checks", json=api.body(p, amc_number=api.other.amc_number), headers=auth
    )
    a, b = unknown.json(), other.json()
    assert a.pop("verification_id") != b.pop("verification_id")
    assert (
        a
        == b
        == {
            "status": "unknown",
            "domain": "PHAR",
            "care_date": "2026-12-01",
            "coverage": None,
            "engagement_number": None,
            "valid_until": None,
        }
    )
    assert len(unknown.content) == len(other.content)


@pytest.mark.parametrize(
    "header", [None, "Bearer", "Bearer nope", "Basic abc", "Bearer " + "x" * 43]
)
async def test_wrong_or_missing_token_is_401(api: Api, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    r = await api.http.post("/api/v1/rights-checks", json=api.body(api.persons[0]), headers=headers)
    body = assert_problem(r, 401, "not_authenticated")
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert "personne" not in body["detail"]


@pytest.mark.parametrize(
    ("change", "fields"),
    [
        ({"amc_number": "12345678"}, ["amc_number"]),
        ({"amc_number": 900000101}, ["amc_number"]),
        ({"adherent_number": ""}, ["adherent_number"]),
        ({"adherent_number": "abc-def"}, ["adherent_number"]),
        ({"birth_date": "01/02/1980"}, ["birth_date"]),
        ({"birth_date": "1980-02-30"}, ["birth_date"]),
        ({"birth_date": 19800201}, ["birth_date"]),
        ({"rank": "1"}, ["rank"]),
        ({"rank": 0}, ["rank"]),
        ({"rank": 1.5}, ["rank"]),
        ({"nir": "185037599900119"}, ["nir"]),
        ({"domain": "XXXX"}, ["domain"]),
        ({"care_date": None}, ["care_date"]),
        ({"surprise": 1}, ["surprise"]),
        ({"rank": 0, "domain": "X", "care_date": "x"}, ["rank", "domain", "care_date"]),
    ],
)
async def test_each_malformed_body_names_its_field(
    api: Api, change: dict, fields: list[str]
) -> None:  # type: ignore[type-arg]
    auth = {"Authorization": f"Bearer {await api.token()}"}
    r = await api.http.post(
        "/api/v1/rights-checks", json=api.body(api.persons[0], **change), headers=auth
    )
    body = assert_problem(r, 422, "invalid_fields")
    assert [e["field"] for e in body["errors"]] == fields
    assert all(e["reason"] and "Input should" not in e["reason"] for e in body["errors"])


async def test_missing_fields_are_each_named(api: Api) -> None:
    auth = {"Authorization": f"Bearer {await api.token()}"}
    r = await api.http.post("/api/v1/rights-checks", json={}, headers=auth)
    body = assert_problem(r, 422, "invalid_fields")
    assert {e["field"] for e in body["errors"]} == {
        "amc_number",
        "adherent_number",
        "birth_date",
        "domain",
        "care_date",
    }
    assert {e["reason"] for e in body["errors"]} == {"champ obligatoire"}


async def test_unparsable_json_wrong_type_and_oversize(api: Api) -> None:
    auth = {"Authorization": f"Bearer {await api.token()}"}
    r = await api.http.post(
        "/api/v1/rights-checks",
        content=b"{nope",
        headers={**auth, "content-type": "application/json"},
    )
    assert_problem(r, 400, "malformed_body")
    r = await api.http.post(
        "/api/v1/rights-checks", content=b"a=b", headers={**auth, "content-type": "text/plain"}
    )
    assert_problem(r, 415, "unsupported_media_type")
    r = await api.http.post(
        "/api/v1/rights-checks",
        content=b"[" + b"1," * 600_000 + b"1]",
        headers={**auth, "content-type": "application/json"},
    )
    assert_problem(r, 413, "body_too_large")
    r = await api.http.post("/api/v1/rights-checks", json=[1, 2], headers=auth)
    assert r.status_code == 422


async def test_domain_outside_profession_is_403_problem(api: Api) -> None:
    auth = {"Authorization": f"Bearer {await api.token()}"}
    r = await api.http.post(
        "/api/v1/rights-checks", json=api.body(api.persons[0], domain="OPTI"), headers=auth
    )
    body = assert_problem(r, 403, "forbidden")
    assert body["errors"] == [
        {"field": "domain", "reason": "domaine non autorisé pour votre profession"}
    ]
    r = await api.http.post(
        "/api/v1/rights-checks",
        json=api.body(api.persons[0], domain="OPTI"),
        headers={"Authorization": f"Bearer {await api.token(api.optician)}"},
    )
    assert r.json()["status"] == "covered"


async def test_unknown_route_and_method_are_problems(api: Api) -> None:
    assert_problem(await api.http.get("/api/v1/nothing"), 404, "not_found")
    assert_problem(await api.http.get("/api/v1/rights-checks"), 405, "method_not_allowed")


async def test_api_rights_off_gives_503_and_the_rest_answers(api: Api) -> None:
    token = await api.token()
    auth = {"Authorization": f"Bearer {token}"}
    await channels.switch(
        api.rt,
        Channel.API_RIGHTS,
        open_=False,
        reason="Maintenance de la base des droits",
        actor=f.ACTOR,
    )
    r = await api.http.post("/api/v1/rights-checks", json=api.body(api.persons[0]), headers=auth)
    body = assert_problem(r, 503, "channel_closed")
    assert body["detail"] == "Maintenance de la base des droits"
    assert int(r.headers["retry-after"]) > 0
    assert (await api.http.get("/healthz")).status_code == 200
    assert (await api.http.get("/readyz")).status_code == 200
    assert (await api.http.get("/openapi.json")).status_code == 200
    assert "Suspendu" in (await api.http.get("/status")).text
    assert (
        await api.http.post(
            "/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": api.pharmacy.client.client_id,
                "client_secret": api.pharmacy.client.client_secret,
            },
        )
    ).status_code == 200
    api.rt.clock.advance(minutes=5)  # type: ignore[attr-defined]
    await channels.switch(api.rt, Channel.API_RIGHTS, open_=True, reason=None, actor=f.ACTOR)
    r = await api.http.post("/api/v1/rights-checks", json=api.body(api.persons[0]), headers=auth)
    assert r.status_code == 200
    async with api.rt.db.transaction() as conn:
        switches = (
            (
                await conn.execute(
                    select(audit_event.c.result)
                    .where(audit_event.c.purpose == "channel_switch")
                    .order_by(audit_event.c.at)
                )
            )
            .scalars()
            .all()
        )
    assert switches == ["off", "on"]


async def test_the_usual_check_is_answered_in_front_of_the_framework_and_the_rest_behind(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The usual check never reaches the FastAPI view (``web.fast`` answers it with the same
    functions); an invalid body is handed to the framework, which names the field."""
    from rempart.web.api import routes

    reached = []
    original = routes.answer_rights_check

    async def spy(*args: object, **kwargs: object) -> object:
        reached.append(1)
        return await original(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(routes, "answer_rights_check", spy)
    token = await api.token()
    headers = {"Authorization": f"Bearer {token}"}
    fast = await api.http.post(
        "/api/v1/rights-checks", json=api.body(api.persons[0]), headers=headers
    )
    assert fast.status_code == 200 and reached == []
    RightsCheckOut.model_validate(fast.json())
    assert fast.headers["cache-control"] == "no-store" and "x-request-id" in fast.headers
    bad = await api.http.post(
        "/api/v1/rights-checks", json=api.body(api.persons[0], rank="1"), headers=headers
    )
    got = assert_problem(bad, 422, "invalid_fields")
    assert got["errors"][0]["field"] == "rank"
    expired = await api.http.post(
        "/api/v1/rights-checks",
        json=api.body(api.persons[0]),
        headers={"Authorization": "Bearer x"},
    )
    assert_problem(expired, 401, "not_authenticated")  # refused on the fast path, same answer
    assert expired.headers["www-authenticate"] == 'Bearer realm="rempart"'
    metrics = await api.http.get("/metrics")
    assert 'route="/api/v1/rights-checks",status="200"' in metrics.text
