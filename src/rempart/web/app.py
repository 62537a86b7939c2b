"""``create_app(settings)``: the ASGI application. Nothing is wired at import time."""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from rempart.config import Settings
from rempart.jobs import worker
from rempart.logging import configure_logging
from rempart.services import key_rotation
from rempart.services.runtime import Runtime, build_runtime
from rempart.web import backoffice, openapi, ops, pages, portal, problems
from rempart.web.api import invoices as api_invoices
from rempart.web.api import payments as api_payments
from rempart.web.api import pec as api_pec
from rempart.web.api import routes as api_routes
from rempart.web.fast import RightsFastPath
from rempart.web.fhir import routes as fhir_routes
from rempart.web.middleware import EdgeMiddleware, Metrics

DESCRIPTION = """API de tiers payant Rempart.

Authentification : OAuth 2.0 *client credentials* sur `/oauth/token`,
puis `Authorization: Bearer …`. Toutes les erreurs sont au format
`application/problem+json` (RFC 9457) et nomment chaque champ en cause.
Les montants sont des chaînes décimales en euros (`"12.34"`), les dates au format `AAAA-MM-JJ`.
"""


def create_app(settings: Settings, runtime: Runtime | None = None) -> FastAPI:
    settings.check_for_startup()
    configure_logging(settings)
    own_runtime = runtime is None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if own_runtime:
            app.state.rt = build_runtime(settings)
            await key_rotation.load(app.state.rt)
        task = None
        if settings.serve_worker:
            task = asyncio.create_task(worker.run_forever(app.state.rt))
        yield
        if task is not None:
            task.cancel()
        if own_runtime:
            await app.state.rt.db.dispose()

    app = FastAPI(
        title="Rempart",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    if runtime is not None:
        app.state.rt = runtime
    app.state.metrics = Metrics()
    problems.install(app)
    portal.install(app)
    backoffice.install(app)
    app.include_router(api_routes.router)
    app.include_router(api_invoices.router)
    app.include_router(api_pec.router)
    app.include_router(api_payments.router)
    app.include_router(fhir_routes.router(settings))
    app.include_router(ops.router)
    app.include_router(pages.router)
    openapi.install(app)
    static = Path(__file__).with_name("static")
    # Swagger UI 5 (OpenAPI 3.1), the files shipped by fastapi-offline: no CDN (decision 0007)
    swagger = Path(importlib.util.find_spec("fastapi_offline").origin).parent / "static"  # type: ignore[arg-type,union-attr]
    app.mount("/static/swagger", StaticFiles(directory=swagger), name="swagger")
    app.mount("/static", StaticFiles(directory=static), name="static")

    @app.get("/docs", include_in_schema=False, response_class=HTMLResponse)
    async def docs(request: Request) -> HTMLResponse:
        return pages.render(request, "docs.html", {})

    # added last, runs first: the edge, then the rights check's fast path, then FastAPI
    app.add_middleware(RightsFastPath, state=app.state)
    app.add_middleware(
        EdgeMiddleware, metrics=app.state.metrics, body_bytes_max=settings.body_bytes_max
    )
    return app
