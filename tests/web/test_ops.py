"""Operations endpoints and pages."""

from __future__ import annotations

import re

import httpx

from rempart.web.app import create_app
from tests.web.conftest import Api


async def test_health_ready_metrics(api: Api) -> None:
    assert (await api.http.get("/healthz")).json() == {"status": "ok"}
    assert (await api.http.get("/readyz")).json()["database"] == "ok"
    await api.http.get("/healthz")
    metrics = (await api.http.get("/metrics")).text
    assert 'rempart_http_requests_total{route="/healthz",status="200"}' in metrics


async def test_metrics_from_elsewhere_need_the_token(api: Api) -> None:
    app = create_app(api.rt.settings, runtime=api.rt)
    transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as remote:
        r = await remote.get("/metrics")
    assert r.status_code == 401
    assert r.headers["content-type"] == "application/problem+json"


async def test_openapi_describes_the_contract(api: Api) -> None:
    spec = (await api.http.get("/openapi.json")).json()
    assert {
        "/oauth/token",
        "/api/v1/rights-checks",
        "/healthz",
        "/readyz",
        "/metrics",
        "/status",
    } <= set(spec["paths"])
    post = spec["paths"]["/api/v1/rights-checks"]["post"]
    assert {"200", "401", "403", "422", "503"} <= set(post["responses"])
    assert "application/problem+json" in post["responses"]["422"]["content"]


async def test_docs_work_offline(api: Api) -> None:
    page = (await api.http.get("/docs")).text
    urls = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert urls and all(u.startswith("/") for u in urls)  # nothing from a CDN
    for u in urls:
        assert (await api.http.get(u)).status_code == 200


async def test_pages_are_french_with_security_headers(api: Api) -> None:
    home = await api.http.get("/")
    assert (
        home.status_code == 200 and 'lang="fr"' in home.text and "Vérifier des droits" in home.text
    )
    status = await api.http.get("/status")
    assert "Tous les services fonctionnent normalement" in status.text
    for label in ("Connexion au portail", "Réception des factures", "Paiements"):
        assert label in status.text
    csp = home.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert home.headers["strict-transport-security"].startswith("max-age=")
    assert "<script>" not in home.text


async def test_an_internal_error_is_a_problem_without_stack_trace_or_sql(api: Api) -> None:
    from sqlalchemy import text

    token = await api.token()
    async with api.rt.db.transaction() as conn:  # rolled back with the test
        await conn.execute(text("ALTER TABLE engagement RENAME TO engagement_gone"))
    app = create_app(api.rt.settings, runtime=api.rt)
    # as a server would: Starlette answers 500, then re-raises for the server to log it
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as http:
        r = await http.post(
            "/api/v1/rights-checks",
            json=api.body(api.persons[0]),
            headers={"Authorization": f"Bearer {token}"},
        )
    assert r.status_code == 500
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == "internal_error"
    for leak in ("Traceback", "engagement", "INSERT", "sqlalchemy", "asyncpg"):
        assert leak not in r.text


async def test_chunked_body_over_the_limit_is_413(api: Api) -> None:
    async def chunks():  # type: ignore[no-untyped-def]
        for _ in range(20):
            yield b" " * 100_000

    r = await api.http.post(
        "/api/v1/rights-checks",
        content=chunks(),
        headers={"content-type": "application/json", "authorization": "Bearer x"},
    )
    assert r.status_code == 413
    assert r.json()["code"] == "body_too_large"


async def test_framework_errors_speak_french(api: Api) -> None:
    r = await api.http.delete("/api/v1/rights-checks")
    assert (r.status_code, r.json()["detail"]) == (405, "Méthode non autorisée pour cette adresse.")
