"""Server-rendered pages (Jinja2, French). Views hand a template name and a context."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from rempart.domain.care import PROFESSION_DOMAINS, Profession
from rempart.domain.money import Money

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).with_name("templates")))
PARIS = ZoneInfo("Europe/Paris")


def fr_datetime(moment: datetime | None) -> str:
    """'02/12/2026 à 12:00' in Paris time, which is what a French professional reads."""
    return moment.astimezone(PARIS).strftime("%d/%m/%Y à %H:%M") if moment else ""


def euros(amount: int | Money | None) -> str:
    """Integer cents (or Money) as a French amount: '1 234,50 €'."""
    if amount is None:
        return "—"
    cents = amount.cents if isinstance(amount, Money) else int(amount)
    sign, cents = ("-" if cents < 0 else ""), abs(cents)
    whole = f"{cents // 100:,}".replace(",", "\u202f")
    return f"{sign}{whole},{cents % 100:02d}\u00a0€"


def fr_date(day: date | None) -> str:
    return day.strftime("%d/%m/%Y") if day else "—"


TEMPLATES.env.filters["fr_datetime"] = fr_datetime
TEMPLATES.env.filters["fr_date"] = fr_date
TEMPLATES.env.filters["euros"] = euros

router = APIRouter()


def render(
    request: Request, name: str, context: dict[str, Any], status_code: int = 200
) -> HTMLResponse:
    return TEMPLATES.TemplateResponse(request, name, context, status_code=status_code)


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def home(request: Request) -> HTMLResponse:
    professions = [(p.label, sorted(d.label for d in PROFESSION_DOMAINS[p])) for p in Profession]
    return render(request, "home.html", {"professions": professions})
