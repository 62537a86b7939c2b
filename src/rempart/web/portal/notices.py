"""``/portail/avis``: the notices Rempart addressed to the signed-in person's structure (an
incident that touched its data or its patients'). A structure nothing touched has none."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from rempart.services import notification_packs
from rempart.web.deps import runtime
from rempart.web.portal.routes import Signed, _page

router = APIRouter(include_in_schema=False)


@router.get("/portail/avis", response_class=HTMLResponse)
async def notices_page(request: Request, session: Signed) -> HTMLResponse:
    sid = session.principal.structure_id
    found = await notification_packs.notices_for(runtime(request), sid) if sid else []
    return _page(request, session, "portal/avis.html", {"notices": found, "active": "avis"})
