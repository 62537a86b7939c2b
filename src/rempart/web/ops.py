"""Operations endpoints: liveness, readiness, Prometheus metrics, and the public status page."""

from __future__ import annotations

import hmac
from ipaddress import ip_address

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from rempart.domain.errors import NotAuthenticated
from rempart.services import channels, incidents
from rempart.web.deps import json_response, runtime
from rempart.web.pages import TEMPLATES, render

router = APIRouter()


@router.get("/healthz", tags=["Exploitation"], summary="Le processus répond")
async def healthz() -> Response:
    return json_response({"status": "ok"})


@router.get("/readyz", tags=["Exploitation"], summary="La base de données répond")
async def readyz(request: Request) -> Response:
    rt = runtime(request)
    try:
        async with rt.db.read() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception:
        return json_response({"status": "unavailable", "database": "down"}, status=503)
    return json_response({"status": "ready", "database": "ok"})


def _loopback(request: Request) -> bool:
    host = request.client.host if request.client else ""
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return host in ("localhost", "testclient")


@router.get("/metrics", tags=["Exploitation"], summary="Métriques Prometheus")
async def metrics(request: Request) -> Response:
    token = runtime(request).settings.metrics_token
    if not _loopback(request):
        given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if token is None or not hmac.compare_digest(
            given.encode(), token.get_secret_value().encode()
        ):
            raise NotAuthenticated("Les métriques sont réservées à la supervision.")
    return Response(
        generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST
    )


@router.get(
    "/status",
    response_class=HTMLResponse,
    tags=["Exploitation"],
    summary="État du service (page publique)",
)
async def status_page(request: Request) -> HTMLResponse:
    status = await incidents.public_status(runtime(request), history_max=10)
    return render(
        request,
        "status.html",
        {
            "states": status.channels,
            "all_open": status.all_open,
            "incident": status.incident,
            "history": status.history,
        },
    )


@router.get(
    "/status.atom",
    tags=["Exploitation"],
    summary="État du service : flux Atom pour les logiciels des professionnels",
)
async def status_feed(request: Request) -> Response:
    rt = runtime(request)
    status = await incidents.public_status(rt)
    body = TEMPLATES.get_template("status.atom").render(
        base=rt.settings.public_base_url.rstrip("/"),
        entries=status.history,
        updated=status.history[0].at if status.history else rt.now(),
    )
    return Response(body, media_type="application/atom+xml; charset=utf-8")


@router.get("/status.json", tags=["Exploitation"], summary="État des services (JSON)")
async def status_json(request: Request) -> Response:
    states = await channels.states(runtime(request))
    return json_response(
        {
            "channels": [
                {
                    "name": s.channel.value,
                    "label": s.channel.label,
                    "open": s.open,
                    "reason": s.reason,
                    "changed_at": s.changed_at.isoformat() if s.changed_at else None,
                    "expected_back_at": s.expected_back_at.isoformat()
                    if s.expected_back_at
                    else None,
                }
                for s in states.values()
            ]
        }
    )
