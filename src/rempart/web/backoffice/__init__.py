"""The back office (French) for the operator's staff and insurers, under ``/back-office/``.

Same accounts, passkeys and sessions as the portal (``web.portal.session``); every page is
gated by ``web.portal.view.signed(Permission…)`` and calls the services the CLI calls
(payments, ledger, PEC review, registry, security operations), under the signed-in account's
name, so four-eyes rules compare the same labels (``--actor`` and the session's username).
"""

from __future__ import annotations

from fastapi import FastAPI

from rempart.web.backoffice import routes


def install(app: FastAPI) -> None:
    app.include_router(routes.router)
