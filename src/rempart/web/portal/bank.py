"""Bank details of the structure (``/portail/coordonnees-bancaires``), titulaire only: the
current IBAN's last four characters and its state, and the change flow (fresh passkey
assertion first, then the form; ``services.bank_details`` does the rest)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.responses import Response

from rempart.domain.errors import InvalidFields
from rempart.domain.roles import Permission
from rempart.security.sessions import Session
from rempart.services import bank_details, portal_auth
from rempart.web.deps import runtime
from rempart.web.pages import render
from rempart.web.portal.session import check_csrf, csrf_for, portal_session
from rempart.web.portal.stepup import step_up_url

router = APIRouter(include_in_schema=False)
Signed = Annotated[Session, Depends(portal_session)]
PAGE = "/portail/coordonnees-bancaires"
FORM = f"{PAGE}/modifier"
_FIELDS = ("iban", "bic", "holder")


def _page(
    request: Request, session: Session, name: str, ctx: dict[str, Any], status: int = 200
) -> HTMLResponse:
    base = {"session": session, "csrf": csrf_for(request), "Permission": Permission}
    return render(request, name, {**base, "active": "banque", **ctx}, status_code=status)


@router.get(PAGE, response_class=HTMLResponse)
async def bank_page(request: Request, session: Signed) -> Response:
    current = await bank_details.current(runtime(request), actor=session.principal)
    done = request.query_params.get("ok") == "1"
    return _page(request, session, "portal/banque.html", {"current": current, "done": done})


@router.get(FORM, response_class=HTMLResponse)
async def change_form(request: Request, session: Signed) -> Response:
    rt = runtime(request)
    current = await bank_details.current(rt, actor=session.principal)  # titulaire only
    if not portal_auth.stepped_up(rt, session):
        return RedirectResponse(step_up_url(FORM), status_code=303)
    ctx: dict[str, Any] = {"current": current, "values": {}, "errors": {}}
    return _page(request, session, "portal/banque_modifier.html", ctx)


@router.post(FORM, response_class=HTMLResponse, dependencies=[Depends(check_csrf)])
async def change(request: Request, session: Signed) -> Response:
    rt = runtime(request)
    raw = await request.form()
    values = {k: str(raw.get(k, "")).strip()[:200] for k in _FIELDS}
    try:
        await bank_details.change(
            rt, actor=session.principal, stepped_up_at=session.stepped_up_at, **values
        )
    except InvalidFields as e:
        current = await bank_details.current(rt, actor=session.principal)
        errors = {err.field: err.reason for err in e.errors}
        ctx = {"current": current, "values": values, "errors": errors}
        return _page(request, session, "portal/banque_modifier.html", ctx, 422)
    return RedirectResponse(f"{PAGE}?ok=1", status_code=303)
