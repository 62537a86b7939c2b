"""What every signed-in page shares: the session, the permission it needs (refusals audited),
and rendering with the session's CSRF token. Used by the portal's business pages and the back
office, so a page cannot forget its permission check: ``signed(Permission.X)`` is its gate."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse

from rempart.domain.errors import Forbidden
from rempart.domain.roles import Permission
from rempart.security.sessions import Session
from rempart.services import admission
from rempart.web.deps import runtime
from rempart.web.pages import render
from rempart.web.portal.session import csrf_for, portal_session


def signed(*permissions: Permission) -> Callable[..., Awaitable[Session]]:
    """A dependency: the live session of someone holding one of ``permissions``; anyone else
    gets a 403 page, and the refusal is audited."""

    async def gate(
        request: Request, session: Annotated[Session, Depends(portal_session)]
    ) -> Session:
        if not any(session.principal.may(p) for p in permissions):
            route = getattr(request.scope.get("route"), "path", request.url.path)
            await admission.refuse_page(runtime(request), session.principal, route)
            raise Forbidden("Votre compte n'a pas accès à cette page.")
        return session

    gate.permissions = permissions  # type: ignore[attr-defined]  # read by the route tests
    return gate


def page(
    request: Request, session: Session, name: str, ctx: dict[str, Any], status: int = 200
) -> HTMLResponse:
    return render(
        request,
        name,
        {"session": session, "csrf": csrf_for(request), "Permission": Permission, **ctx},
        status_code=status,
    )
