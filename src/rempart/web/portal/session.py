"""The portal's edge rules: the session cookie, CSRF, and where a signed-out person goes.

- Cookie ``rempart_session``: ``Secure; HttpOnly; SameSite=Strict; Path=/``, no ``Max-Age``
  (the browser forgets it when closed; the server ends it after 30 min idle or 12 h).
  ``Secure`` is always set: browsers accept secure cookies from ``http://localhost``, which
  is where the tests and the demo run, so no configuration turns it off.
- Every POST of a signed-in page carries the session's CSRF token (form field ``csrf`` or
  header ``X-CSRF-Token`` for the few ``fetch`` calls); a mismatch is refused (403).
- The JSON endpoints of the sign-in and enrolment ceremonies accept only
  ``application/json`` from our own origin (``Origin`` checked when the browser sends it,
  which every current browser does on POST).
"""

from __future__ import annotations

from fastapi import Request
from starlette.responses import Response

from rempart.domain.errors import Forbidden
from rempart.security import devices, sessions
from rempart.security.sessions import Session
from rempart.services import portal_auth
from rempart.web.deps import runtime


class SignInRequired(Exception):
    """No live session: the portal sends the person to ``/connexion``."""


class CsrfRefused(Forbidden):
    code = "csrf"
    title = "Formulaire expiré"

    def __init__(self) -> None:
        super().__init__("Ce formulaire a expiré ou ne vient pas du portail. Rechargez la page.")


def cookie(request: Request) -> str | None:
    return request.cookies.get(sessions.COOKIE)


async def portal_session(request: Request) -> Session:
    found = await portal_auth.current_session(runtime(request), cookie(request))
    if found is None:
        raise SignInRequired()
    request.state.session = found
    return found


def csrf_for(request: Request) -> str:
    value = cookie(request)
    assert value is not None  # only asked by signed-in pages
    return sessions.csrf_token(runtime(request).keys, value)


async def check_csrf(request: Request) -> None:
    """For POSTs of signed-in pages; run after ``portal_session``."""
    value = cookie(request)
    given = request.headers.get("x-csrf-token")
    if given is None and request.headers.get("content-type", "").startswith(
        "application/x-www-form-urlencoded"
    ):
        given = str((await request.form()).get("csrf", ""))
    if not value or not given or not sessions.csrf_ok(runtime(request).keys, value, given):
        raise CsrfRefused()


async def same_origin_json(request: Request) -> None:
    """For the ceremonies' JSON endpoints (no session yet, so no CSRF token)."""
    origin = request.headers.get("origin")
    expected = runtime(request).settings.public_base_url
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/json" or (origin is not None and origin != expected):
        raise Forbidden("Requête refusée : elle ne vient pas du portail.")


def set_session_cookie(response: Response, value: str) -> None:
    response.set_cookie(
        sessions.COOKIE, value, path="/", secure=True, httponly=True, samesite="strict"
    )


def clear_session_cookie(response: Response) -> None:
    response.delete_cookie(sessions.COOKIE, path="/", secure=True, httponly=True, samesite="strict")


def device_cookie(request: Request) -> str | None:
    return request.cookies.get(devices.COOKIE)


def set_device_cookie(response: Response, value: str) -> None:
    """The browser's long-lived device cookie: it only decides whether a sign-in is notified
    as coming from a new device; it opens nothing."""
    response.set_cookie(
        devices.COOKIE,
        value,
        max_age=devices.MAX_AGE_SECONDS,
        path="/",
        secure=True,
        httponly=True,
        samesite="strict",
    )
