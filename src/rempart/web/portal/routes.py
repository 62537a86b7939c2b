"""The professionals' portal (French): sign-in and enrolment with passkeys, the rights check,
the security page. Views parse, call a service, render; the ceremonies' JSON endpoints are
driven by ``static/portal.js`` (no inline script: the CSP forbids it)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import BaseModel, Field, ValidationError
from starlette.responses import Response

from rempart.access import Card
from rempart.domain.care import PROFESSION_DOMAINS, CareDomain
from rempart.domain.channels import Channel
from rempart.domain.errors import FieldError, InvalidFields, NotFound, RempartError
from rempart.domain.roles import Permission
from rempart.security.sessions import Session
from rempart.services import portal_auth
from rempart.services.rights import RightsQuery, check_rights
from rempart.services.step_up import StepUpRequired
from rempart.web.api.schemas import RightsCheckIn
from rempart.web.deps import client_ip, json_response, runtime
from rempart.web.pages import render
from rempart.web.portal import password
from rempart.web.portal.session import (
    check_csrf,
    clear_session_cookie,
    cookie,
    csrf_for,
    device_cookie,
    portal_session,
    same_origin_json,
    set_device_cookie,
    set_session_cookie,
)
from rempart.web.problems import field_errors

router = APIRouter(include_in_schema=False)
Signed = Annotated[Session, Depends(portal_session)]


class CeremonyIn(BaseModel):
    ceremony_id: UUID
    credential: dict[str, Any]
    name: str = Field(default="", max_length=200)


def _page(
    request: Request, session: Session, name: str, ctx: dict[str, Any], status: int = 200
) -> HTMLResponse:
    return render(
        request,
        name,
        {"session": session, "csrf": csrf_for(request), "Permission": Permission, **ctx},
        status_code=status,
    )


def _ceremony(c: portal_auth.Ceremony) -> Response:
    return json_response({"ceremony_id": str(c.id), "options": c.options})


def _signed_in(signed: portal_auth.SignedIn) -> Response:
    response = json_response({"redirect": "/portail"})
    set_session_cookie(response, signed.cookie)
    set_device_cookie(response, signed.device)
    return response


# -- sign-in ---------------------------------------------------------------------------------


@router.get("/connexion", response_class=HTMLResponse)
async def signin_page(request: Request) -> Response:
    if await portal_auth.current_session(runtime(request), cookie(request)) is not None:
        return RedirectResponse("/portail", status_code=303)
    ctx = {"rp_id": runtime(request).settings.rp_id, **password.page_context(request)}
    return render(request, "portal/connexion.html", ctx)


@router.post("/connexion/options", dependencies=[Depends(same_origin_json)])
async def signin_options(request: Request) -> Response:
    return _ceremony(await portal_auth.begin_signin(runtime(request), ip=client_ip(request)))


@router.post("/connexion/verification", dependencies=[Depends(same_origin_json)])
async def signin_verify(request: Request, body: CeremonyIn) -> Response:
    signed = await portal_auth.finish_signin(
        runtime(request),
        body.ceremony_id,
        body.credential,
        user_agent=request.headers.get("user-agent", ""),
        ip=client_ip(request),
        device=device_cookie(request),
    )
    return _signed_in(signed)


@router.post("/deconnexion", dependencies=[Depends(check_csrf)])
async def signout(request: Request, session: Signed) -> Response:
    value = cookie(request)
    assert value is not None
    await portal_auth.sign_out(runtime(request), value, session)
    response = RedirectResponse("/connexion?fin=1", status_code=303)
    clear_session_cookie(response)
    return response


# -- enrolment -------------------------------------------------------------------------------


@router.get("/inscription/{token}", response_class=HTMLResponse)
async def enrol_page(request: Request, token: str) -> Response:
    try:
        who = await portal_auth.read_invitation(runtime(request), token)
    except NotFound as e:
        return render(request, "portal/lien_invalide.html", {"message": e.message}, 404)
    offer = await password.enrol_offer(request, token)  # None unless passwords are allowed
    ctx = {"who": who, "token": token, "offer": offer, "errors": {}}
    return render(request, "portal/inscription.html", ctx)


@router.post("/inscription/{token}/options", dependencies=[Depends(same_origin_json)])
async def enrol_options(request: Request, token: str) -> Response:
    return _ceremony(await portal_auth.begin_enrolment(runtime(request), token))


@router.post("/inscription/{token}/verification", dependencies=[Depends(same_origin_json)])
async def enrol_verify(request: Request, token: str, body: CeremonyIn) -> Response:
    signed = await portal_auth.finish_enrolment(
        runtime(request),
        token,
        body.ceremony_id,
        body.credential,
        name=body.name,
        user_agent=request.headers.get("user-agent", ""),
        device=device_cookie(request),
    )
    return _signed_in(signed)


# -- signed in -------------------------------------------------------------------------------


@router.get("/portail", response_class=HTMLResponse)
async def portal_home(request: Request, session: Signed) -> Response:
    if session.principal.may(Permission.CHECK_RIGHTS):
        return RedirectResponse("/portail/droits", status_code=303)
    if session.principal.structure_id is None:  # operator or insurer staff
        return RedirectResponse("/back-office", status_code=303)
    return _page(request, session, "portal/accueil.html", {})


def _rights_form(session: Session, values: dict[str, str], today: date) -> dict[str, Any]:
    profession = session.principal.profession
    domains = sorted(PROFESSION_DOMAINS[profession], key=lambda d: d.label) if profession else []
    defaults = {"rank": "1", "care_date": today.isoformat()}
    if len(domains) == 1:
        defaults["domain"] = domains[0].value
    return {"domains": domains, "values": {**defaults, **values}, "errors": {}}


@router.get("/portail/droits", response_class=HTMLResponse)
async def rights_page(request: Request, session: Signed) -> Response:
    if not session.principal.may(Permission.CHECK_RIGHTS):
        raise NotFound()
    form = _rights_form(session, {}, runtime(request).today())
    return _page(request, session, "portal/droits.html", {"form": form, "answer": None})


_CARD_FIELDS = ("amc_number", "adherent_number", "birth_date", "rank", "domain", "care_date")


@router.post("/portail/droits", response_class=HTMLResponse, dependencies=[Depends(check_csrf)])
async def rights_check(request: Request, session: Signed) -> Response:
    rt = runtime(request)
    raw = await request.form()
    values = {k: str(raw.get(k, "")).strip() for k in _CARD_FIELDS}
    form = _rights_form(session, values, rt.today())
    try:
        body = RightsCheckIn.model_validate(
            {
                **values,
                "adherent_number": values["adherent_number"].upper(),
                "rank": int(values["rank"]) if values["rank"].isdigit() else values["rank"],
            }
        )
        card = Card(body.amc_number, body.adherent_number, body.birth_date, body.rank, None)
        answer = await check_rights(
            rt,
            RightsQuery(card, body.domain, body.care_date),
            actor=session.principal,
            channel=Channel.PORTAL_RIGHTS,
            stepped_up_at=session.stepped_up_at,
        )
    except ValidationError as e:
        return _refused_form(request, session, form, field_errors(e), 422)
    except InvalidFields as e:
        return _refused_form(request, session, form, list(e.errors), 422)
    except StepUpRequired:
        raise  # the portal sends the person to /portail/confirmer, then back here
    except RempartError as e:
        ctx: dict[str, Any] = {"form": form, "answer": None, "refusal": e.message}
        return _page(request, session, "portal/droits.html", ctx, e.status)
    domain = CareDomain(answer.domain)
    ctx = {"form": form, "answer": answer, "domain_label": domain.label}
    return _page(request, session, "portal/droits.html", ctx)


def _refused_form(
    request: Request, session: Session, form: dict[str, Any], errors: list[FieldError], status: int
) -> HTMLResponse:
    form["errors"] = {e.field: e.reason for e in errors}
    return _page(request, session, "portal/droits.html", {"form": form, "answer": None}, status)


# -- security page ---------------------------------------------------------------------------


@router.get("/portail/securite", response_class=HTMLResponse)
async def security_page(request: Request, session: Signed) -> Response:
    overview = await portal_auth.security_overview(runtime(request), session)
    notice = {"autres": "Vos autres sessions ont été déconnectées.", "cle": "Clé retirée."}.get(
        request.query_params.get("ok", "")
    )
    ctx = {"overview": overview, "notice": notice, "error": None}
    return _page(request, session, "portal/securite.html", ctx)


@router.post("/portail/securite/deconnecter-autres", dependencies=[Depends(check_csrf)])
async def sign_out_others(request: Request, session: Signed) -> Response:
    await portal_auth.sign_out_others(runtime(request), session)
    return RedirectResponse("/portail/securite?ok=autres", status_code=303)


@router.post("/portail/securite/cles/{passkey_id}/retirer", dependencies=[Depends(check_csrf)])
async def revoke_passkey(request: Request, session: Signed, passkey_id: UUID) -> Response:
    rt = runtime(request)
    try:
        await portal_auth.revoke_passkey(rt, session, passkey_id)
    except portal_auth.LastPasskey as e:
        overview = await portal_auth.security_overview(rt, session)
        ctx = {"overview": overview, "notice": None, "error": e.message}
        return _page(request, session, "portal/securite.html", ctx, 409)
    return RedirectResponse("/portail/securite?ok=cle", status_code=303)


@router.post("/portail/securite/cles/options", dependencies=[Depends(check_csrf)])
async def add_passkey_options(request: Request, session: Signed) -> Response:
    return _ceremony(await portal_auth.begin_add_passkey(runtime(request), session))


@router.post("/portail/securite/cles/verification", dependencies=[Depends(check_csrf)])
async def add_passkey_verify(request: Request, session: Signed, body: CeremonyIn) -> Response:
    await portal_auth.finish_add_passkey(
        runtime(request),
        session,
        body.ceremony_id,
        body.credential,
        name=body.name,
        user_agent=request.headers.get("user-agent", ""),
    )
    return json_response({"redirect": "/portail/securite"})
