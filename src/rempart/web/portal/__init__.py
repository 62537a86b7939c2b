"""The professionals' portal: ``routes`` (views), ``session`` (cookie, CSRF, sign-in gate).

``install(app)`` adds the portal's routes and its error pages: a signed-out person is sent to
``/connexion``; a refusal on a portal page (an expired form, a page the role may not see) is
a French HTML page, while the ceremonies' JSON endpoints keep problem+json.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse
from starlette.responses import Response

from rempart.domain.errors import RempartError
from rempart.services.step_up import StepUpRequired
from rempart.web import problems
from rempart.web.pages import render
from rempart.web.portal import bank, claims, money, notices, password, routes, stepup
from rempart.web.portal.session import SignInRequired

_HTML_PREFIXES = ("/portail", "/deconnexion", "/back-office")


def install(app: FastAPI) -> None:
    app.include_router(routes.router)
    app.include_router(claims.router)
    app.include_router(money.router)
    app.include_router(notices.router)
    app.include_router(stepup.router)
    app.include_router(bank.router)
    app.include_router(password.router)

    @app.exception_handler(StepUpRequired)
    async def _step_up(request: Request, exc: StepUpRequired) -> Response:
        html = "text/html" in request.headers.get("accept", "") or request.headers.get(
            "content-type", ""
        ).startswith("application/x-www-form-urlencoded")
        if html and request.url.path.startswith("/portail"):
            return RedirectResponse(stepup.step_up_url(request.url.path), status_code=303)
        return problems.rempart_problem(request, exc)

    @app.exception_handler(SignInRequired)
    async def _sign_in(request: Request, exc: SignInRequired) -> Response:
        if request.headers.get("content-type", "").startswith("application/json"):
            detail = "Session terminée : reconnectez-vous."
            return problems.problem(401, "not_authenticated", detail)
        return RedirectResponse("/connexion", status_code=303)

    @app.exception_handler(RempartError)
    async def _rempart(request: Request, exc: RempartError) -> Response:
        html = "text/html" in request.headers.get("accept", "")
        if html and request.url.path.startswith(_HTML_PREFIXES):
            return render(request, "portal/erreur.html", {"error": exc}, status_code=exc.status)
        return problems.rempart_problem(request, exc)
