"""Back-office pages: payment runs (prepare, approve by another person, export), the ledger's
trial balance, the PEC review queue, bank details to watch, security alerts."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse
from starlette.responses import Response

from rempart.domain.errors import Conflict, FourEyesViolation, NotFound
from rempart.domain.roles import Permission
from rempart.security.sessions import Session
from rempart.services import ledger, payments, pec, registry, security_ops
from rempart.web.deps import runtime
from rempart.web.portal.session import check_csrf
from rempart.web.portal.view import page, signed

router = APIRouter(include_in_schema=False)
BACK_OFFICE = (
    Permission.PREPARE_PAYMENTS,
    Permission.APPROVE_PAYMENTS,
    Permission.READ_LEDGER,
    Permission.REVIEW_PEC,
    Permission.MANAGE_REGISTRY,
    Permission.MANAGE_INCIDENTS,
    Permission.IMPORT_BENEFICIARIES,
)
Staff = Annotated[Session, Depends(signed(*BACK_OFFICE))]
Payments = Annotated[
    Session, Depends(signed(Permission.PREPARE_PAYMENTS, Permission.APPROVE_PAYMENTS))
]
Preparer = Annotated[Session, Depends(signed(Permission.PREPARE_PAYMENTS))]
Approver = Annotated[Session, Depends(signed(Permission.APPROVE_PAYMENTS))]
Ledger = Annotated[Session, Depends(signed(Permission.READ_LEDGER))]
Reviewer = Annotated[Session, Depends(signed(Permission.REVIEW_PEC))]
Registrar = Annotated[Session, Depends(signed(Permission.MANAGE_REGISTRY))]
Security = Annotated[Session, Depends(signed(Permission.MANAGE_INCIDENTS))]

RUN_STATES = {"prepared": "Préparée", "approved": "Validée", "exported": "Exportée"}


def _bo(
    request: Request, session: Session, name: str, ctx: dict[str, Any], status: int = 200
) -> HTMLResponse:
    return page(request, session, f"backoffice/{name}", {"states": RUN_STATES, **ctx}, status)


@router.get("/back-office", response_class=HTMLResponse)
async def home(request: Request, session: Staff) -> Response:
    return _bo(request, session, "accueil.html", {"active": "accueil"})


# -- payment runs ----------------------------------------------------------------------------


@router.get("/back-office/paiements", response_class=HTMLResponse)
async def runs(request: Request, session: Payments) -> Response:
    found = await payments.runs(runtime(request), session.principal)
    notice = {"rien": "Aucune facture décidée n'attend de paiement : pas de campagne."}.get(
        request.query_params.get("ok", "")
    )
    return _bo(
        request, session, "campagnes.html", {"active": "paiements", "runs": found, "notice": notice}
    )


@router.post("/back-office/paiements/preparer", dependencies=[Depends(check_csrf)])
async def prepare(request: Request, session: Preparer) -> Response:
    run = await payments.prepare(runtime(request), session.principal)
    if run.dry_run:  # nothing decided waits: no run is recorded
        return RedirectResponse("/back-office/paiements?ok=rien", status_code=303)
    return RedirectResponse(f"/back-office/paiements/{run.id}", status_code=303)


async def _run_page(request: Request, session: Session, run_id: UUID, **ctx: Any) -> HTMLResponse:
    run = await payments.run(runtime(request), session.principal, run_id)
    file = _export_path(request, run_id)
    status = ctx.pop("status", 200)
    ctx = {"active": "paiements", "run": run, "file": file.exists(), "error": None, **ctx}
    return _bo(request, session, "campagne.html", ctx, status)


@router.get("/back-office/paiements/{run_id}", response_class=HTMLResponse)
async def run_detail(request: Request, session: Payments, run_id: UUID) -> Response:
    notice = {"valide": "Campagne validée.", "exporte": "Fichier SEPA écrit."}.get(
        request.query_params.get("ok", "")
    )
    return await _run_page(request, session, run_id, notice=notice)


@router.post("/back-office/paiements/{run_id}/valider", dependencies=[Depends(check_csrf)])
async def approve(request: Request, session: Approver, run_id: UUID) -> Response:
    try:
        await payments.approve(runtime(request), session.principal, run_id)
    except FourEyesViolation as e:
        return await _run_page(request, session, run_id, error=e.message, status=e.status)
    return RedirectResponse(f"/back-office/paiements/{run_id}?ok=valide", status_code=303)


def _export_path(request: Request, run_id: UUID) -> Path:
    return runtime(request).settings.data_dir / "exports" / f"campagne-{run_id}.xml"


@router.post("/back-office/paiements/{run_id}/exporter", dependencies=[Depends(check_csrf)])
async def export(request: Request, session: Preparer, run_id: UUID) -> Response:
    out = _export_path(request, run_id)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        await payments.export(runtime(request), session.principal, run_id, out)
    except (FourEyesViolation, Conflict) as e:
        return await _run_page(request, session, run_id, error=e.message, status=e.status)
    return RedirectResponse(f"/back-office/paiements/{run_id}?ok=exporte", status_code=303)


@router.get("/back-office/paiements/{run_id}/fichier")
async def export_file(request: Request, session: Preparer, run_id: UUID) -> Response:
    run = await payments.run(runtime(request), session.principal, run_id)
    out = _export_path(request, run_id)
    if run.status != "exported" or not out.exists():
        raise NotFound("Fichier introuvable : exportez d'abord la campagne.")
    return FileResponse(
        out,
        media_type="application/xml",
        filename=f"sepa-{run.run_date.isoformat()}.xml",
        headers={"Cache-Control": "no-store"},
    )


# -- ledger ----------------------------------------------------------------------------------


def _account_label(account: str) -> tuple[str, str]:
    kind, _, ref = account.partition(":")
    names = {"ps": "Professionnel", "ocam": "Organisme complémentaire", "bank": "Banque"}
    return names.get(kind, kind.capitalize()), ref


@router.get("/back-office/grand-livre", response_class=HTMLResponse)
async def trial_balance(request: Request, session: Ledger) -> Response:
    balances = await ledger.balances(runtime(request), session.principal)
    rows = [(*_account_label(a), cents) for a, cents in balances.items()]
    ctx = {"active": "grand-livre", "rows": rows, "total": sum(balances.values())}
    return _bo(request, session, "grand_livre.html", ctx)


# -- PEC review ------------------------------------------------------------------------------


@router.get("/back-office/pec", response_class=HTMLResponse)
async def pec_queue(request: Request, session: Reviewer) -> Response:
    items = await pec.queue(runtime(request), session.principal)
    notice = {"accepte": "PEC accordée.", "refuse": "PEC refusée."}.get(
        request.query_params.get("ok", "")
    )
    return _bo(request, session, "pec.html", {"active": "pec", "items": items, "notice": notice})


@router.post("/back-office/pec/{pec_id}/decision", dependencies=[Depends(check_csrf)])
async def pec_decide(request: Request, session: Reviewer, pec_id: UUID) -> Response:
    accept = (await request.form()).get("decision") == "accepter"
    await pec.review(runtime(request), session.principal, pec_id, accept=accept)
    return RedirectResponse(f"/back-office/pec?ok={'accepte' if accept else 'refuse'}", 303)


# -- registry and security -------------------------------------------------------------------


@router.get("/back-office/registre", response_class=HTMLResponse)
async def bank_watch(request: Request, session: Registrar) -> Response:
    rt = runtime(request)
    rows = await registry.bank_watch(rt, session.principal)
    ctx = {"active": "registre", "rows": rows, "now": rt.now()}
    return _bo(request, session, "registre.html", ctx)


@router.get("/back-office/alertes", response_class=HTMLResponse)
async def alerts(request: Request, session: Security) -> Response:
    found = await security_ops.alerts(runtime(request), actor=session.principal)
    return _bo(request, session, "alertes.html", {"active": "alertes", "alerts": found})
