"""Transitional passwords on the portal (``services.passwords``): absent unless the
installation turns them on. Sign-in takes user name, password *and* TOTP code in one form;
an invitation whose account an operator allowed can choose a password instead of a passkey.
Plain HTML forms (no JavaScript needed); ``Origin`` must be ours when the browser sends it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse
from starlette.responses import Response

from rempart.domain.errors import Forbidden, InvalidFields, NotAuthenticated, NotFound
from rempart.services import passwords, portal_auth
from rempart.web.deps import client_ip, runtime
from rempart.web.pages import render
from rempart.web.portal.session import device_cookie, set_device_cookie, set_session_cookie

router = APIRouter(include_in_schema=False)


async def same_origin_form(request: Request) -> None:
    origin = request.headers.get("origin")
    if origin is not None and origin != runtime(request).settings.public_base_url:
        raise Forbidden("Requête refusée : elle ne vient pas du portail.")


def _form(raw: Any, *names: str) -> dict[str, str]:
    return {n: str(raw.get(n, ""))[:300] for n in names}


def _signed_in(signed: portal_auth.SignedIn) -> Response:
    response = RedirectResponse("/portail", status_code=303)
    set_session_cookie(response, signed.cookie)
    set_device_cookie(response, signed.device)
    return response


@router.post("/connexion/mot-de-passe", dependencies=[Depends(same_origin_form)])
async def password_sign_in(request: Request) -> Response:
    rt = runtime(request)
    f = _form(await request.form(), "username", "password", "totp_code")
    try:
        signed = await passwords.sign_in(
            rt,
            username=f["username"],
            password=f["password"],
            totp_code=f["totp_code"],
            user_agent=request.headers.get("user-agent", ""),
            ip=client_ip(request),
            device=device_cookie(request),
        )
    except NotAuthenticated as e:
        ctx = {"rp_id": rt.settings.rp_id, "passwords": True, "password_error": e.message,
               "username": f["username"]}  # fmt: skip
        return render(request, "portal/connexion.html", ctx, 401)
    return _signed_in(signed)


@router.post("/inscription/{token}/mot-de-passe", dependencies=[Depends(same_origin_form)])
async def password_enrol(request: Request, token: str) -> Response:
    rt = runtime(request)
    f = _form(await request.form(), "password", "totp_secret", "totp_code")
    try:
        signed = await passwords.enrol(
            rt,
            token,
            password=f["password"],
            totp_secret=f["totp_secret"],
            totp_code=f["totp_code"],
            user_agent=request.headers.get("user-agent", ""),
            device=device_cookie(request),
        )
    except NotFound as e:
        return render(request, "portal/lien_invalide.html", {"message": e.message}, 404)
    except InvalidFields as e:
        who = await portal_auth.read_invitation(rt, token)
        secret = f["totp_secret"]
        offer = passwords.offer_of(secret, who.username)
        ctx = {"who": who, "token": token, "offer": offer,
               "errors": {x.field: x.reason for x in e.errors}}  # fmt: skip
        return render(request, "portal/inscription.html", ctx, 422)
    return _signed_in(signed)


def page_context(request: Request) -> dict[str, Any]:
    """What the sign-in page needs to show the password form (only when turned on)."""
    return {"passwords": runtime(request).settings.transitional_passwords}


async def enrol_offer(request: Request, token: str) -> passwords.PasswordOffer | None:
    return await passwords.offer(runtime(request), token)
