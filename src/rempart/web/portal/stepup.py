"""Step-up pages: ``/portail/confirmer`` runs one more passkey assertion (``static/portal.js``)
and sends the person back to the page that asked for it (``?retour=``, a portal path only: no
open redirect). A service refusing with ``StepUpRequired`` on an HTML page sends the person
here (``web.portal.install``)."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote
from uuid import UUID

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel
from starlette.responses import Response

from rempart.domain.roles import Permission
from rempart.security.sessions import Session
from rempart.services import portal_auth
from rempart.web.deps import json_response, runtime
from rempart.web.pages import render
from rempart.web.portal.session import check_csrf, csrf_for, portal_session

router = APIRouter(include_in_schema=False)
Signed = Annotated[Session, Depends(portal_session)]
PAGE = "/portail/confirmer"


class AssertionIn(BaseModel):
    ceremony_id: UUID
    credential: dict[str, Any]


def safe_return(value: str | None) -> str:
    """A path of the portal, else the portal's home."""
    if (
        value
        and value.startswith("/portail")
        and "//" not in value
        and "\\" not in value
        and all(c.isprintable() and c != " " for c in value)
        and len(value) <= 200
    ):
        return value
    return "/portail"


def step_up_url(back: str) -> str:
    return f"{PAGE}?retour={quote(safe_return(back), safe='/')}"


@router.get(PAGE, response_class=HTMLResponse)
async def step_up_page(request: Request, session: Signed) -> Response:
    back = safe_return(request.query_params.get("retour"))
    ctx = {
        "session": session,
        "csrf": csrf_for(request),
        "back": back,
        "has_passkey": session.passkey_id is not None,
        "Permission": Permission,
    }
    return render(request, "portal/confirmer.html", ctx)


@router.post(f"{PAGE}/options", dependencies=[Depends(check_csrf)])
async def step_up_options(request: Request, session: Signed) -> Response:
    c = await portal_auth.begin_step_up(runtime(request), session)
    return json_response({"ceremony_id": str(c.id), "options": c.options})


@router.post(f"{PAGE}/verification", dependencies=[Depends(check_csrf)])
async def step_up_verify(request: Request, session: Signed, body: AssertionIn) -> Response:
    await portal_auth.finish_step_up(runtime(request), session, body.ceremony_id, body.credential)
    return json_response({"redirect": safe_return(request.query_params.get("retour"))})
