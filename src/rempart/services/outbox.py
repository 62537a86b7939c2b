"""Mail to an account's existing channel: queued with the event, delivered by the worker.

``queue`` runs in the caller's transaction, so a notification exists exactly when the change it
reports was committed (a new passkey, a sign-in from a new device, new bank details, an
incident notice). ``deliver`` sends what is pending over SMTP when ``REMPART_SMTP_URL`` is set;
without it, mail stays in the table (the demo and the tests read it there). A failed send is
retried on the next rounds, at most ``MAX_ATTEMPTS`` times, with the error kept.
"""

from __future__ import annotations

import asyncio
import smtplib
import uuid
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from urllib.parse import unquote, urlsplit
from uuid import UUID

import structlog
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from rempart import access
from rempart.db.tables import mail_outbox
from rempart.security.principal import system
from rempart.services.runtime import Runtime

log = structlog.get_logger(__name__)

MAX_ATTEMPTS = 5
BATCH = 50
_DELIVERY = system("outbox")


async def queue(
    conn: AsyncConnection,
    *,
    account_id: UUID,
    kind: str,
    subject: str,
    body: str,
    now: datetime,
) -> UUID:
    mail_id = uuid.uuid4()
    await conn.execute(
        mail_outbox.insert().values(
            id=mail_id,
            account_id=account_id,
            kind=kind,
            subject=subject,
            body=body,
            created_at=now,
        )
    )
    return mail_id


@dataclass(frozen=True, slots=True)
class Mail:
    id: UUID
    to: str
    subject: str
    body: str


async def deliver(rt: Runtime) -> int:
    """Send a batch of pending mail; the number sent. Nothing happens without an SMTP URL."""
    if rt.settings.smtp_url is None:
        return 0
    now = rt.now()
    async with rt.db.transaction() as conn:
        rows = (
            await conn.execute(
                select(
                    mail_outbox.c.id,
                    mail_outbox.c.account_id,
                    mail_outbox.c.subject,
                    mail_outbox.c.body,
                )
                .where(mail_outbox.c.sent_at.is_(None), mail_outbox.c.attempts < MAX_ATTEMPTS)
                .order_by(mail_outbox.c.created_at)
                .limit(BATCH)
            )
        ).all()
        to = await access.mail_recipients(
            conn, rt.keys, principal=_DELIVERY, accounts=[r.account_id for r in rows], now=now
        )
    mails = [Mail(r.id, to[r.account_id], r.subject, r.body) for r in rows if r.account_id in to]
    if not mails:
        return 0
    outcome = await asyncio.to_thread(
        _send, rt.settings.smtp_url.get_secret_value(), rt.settings.mail_from, mails
    )
    sent = [m for m, error in outcome.items() if error is None]
    async with rt.db.transaction() as conn:
        if sent:
            await conn.execute(
                update(mail_outbox).where(mail_outbox.c.id.in_(sent)).values(sent_at=rt.now())
            )
        for mail_id, error in outcome.items():
            if error is not None:
                await conn.execute(
                    update(mail_outbox)
                    .where(mail_outbox.c.id == mail_id)
                    .values(attempts=mail_outbox.c.attempts + 1, last_error=error[:300])
                )
                log.warning("outbox.send_failed", mail_id=str(mail_id), error=error[:300])
    return len(sent)


def _send(url: str, sender: str, mails: list[Mail]) -> dict[UUID, str | None]:
    """One SMTP connection for the batch; per mail, None when sent or the error."""
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ValueError("REMPART_SMTP_URL: expected smtp://host:port or smtps://…")
    cls = smtplib.SMTP_SSL if parts.scheme == "smtps" else smtplib.SMTP
    default_port = 465 if parts.scheme == "smtps" else 25
    outcome: dict[UUID, str | None] = {}
    try:
        with cls(parts.hostname, parts.port or default_port, timeout=10) as smtp:
            if parts.username:
                smtp.login(unquote(parts.username), unquote(parts.password or ""))
            for m in mails:
                msg = EmailMessage()
                msg["From"], msg["To"], msg["Subject"] = sender, m.to, m.subject
                msg.set_content(m.body)
                try:
                    smtp.send_message(msg)
                    outcome[m.id] = None
                except smtplib.SMTPException as exc:
                    outcome[m.id] = f"{type(exc).__name__}: {exc}"
    except (OSError, smtplib.SMTPException) as exc:
        for m in mails:
            outcome.setdefault(m.id, f"{type(exc).__name__}: {exc}")
    return outcome
