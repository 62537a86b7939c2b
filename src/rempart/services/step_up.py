"""Step-up: a fresh passkey assertion before a sensitive action (DESIGN §4.1, §4.7).

The bank-details change, exports, and a portal rights check once the account has passed its
soft daily ceiling need the session's last passkey assertion to be at most
``domain.sessions.STEP_UP_FRESH`` (5 minutes) old. A passkey sign-in counts (the session starts
stepped up); later, the portal's ``/portail/confirmer`` page runs one more assertion
(``portal_auth.begin_step_up`` / ``finish_step_up``), which moves ``web_session.stepped_up_at``.
A session opened with a transitional password and TOTP can never step up: the actions above
need a passkey.

A refusal is audited (``step_up_required``) before the action reads or writes anything.
"""

from __future__ import annotations

from datetime import datetime

from rempart.access import record_refusal
from rempart.domain.errors import Forbidden
from rempart.domain.sessions import is_fresh
from rempart.security.principal import Principal
from rempart.services.runtime import Runtime


class StepUpRequired(Forbidden):
    code = "step_up_required"
    title = "Confirmation nécessaire"

    def __init__(self) -> None:
        super().__init__(
            "Confirmez votre identité avec votre clé d'accès pour poursuivre cette opération."
        )


async def require(
    rt: Runtime,
    *,
    actor: Principal,
    stepped_up_at: datetime | None,
    purpose: str,
    channel: str = "portal",
) -> None:
    """Pass if the session's last passkey assertion is fresh; else audit and refuse."""
    now = rt.now()
    if is_fresh(stepped_up_at, now=now):
        return
    async with rt.db.transaction() as conn:
        await record_refusal(
            conn,
            principal=actor,
            channel=channel,
            purpose=purpose,
            reason="step_up_required",
            now=now,
        )
    raise StepUpRequired()
