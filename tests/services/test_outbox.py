"""Notifications: queued with the event, delivered over real SMTP (aiosmtpd on loopback) by the
worker, the address read through the audited path, failures retried with the error kept."""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Iterator
from email import message_from_bytes, policy
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from pydantic import SecretStr
from sqlalchemy import select

from rempart.db.tables import audit_event, mail_outbox
from rempart.domain.roles import Role
from rempart.services import outbox
from rempart.services.registry import create_account
from rempart.services.runtime import Runtime
from tests import factories as f


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:
        self.messages.append(
            (envelope.rcpt_tos, message_from_bytes(envelope.content, policy=policy.default))
        )
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[_Inbox, int]]:
    inbox = _Inbox()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


async def _account(rt: Runtime, email: str) -> Any:
    pro = await f.professional(rt)
    return await create_account(
        rt, username="t.durand", display_name="T. Durand", email=email,
        role=Role.TITULAIRE, structure_id=pro.structure_id, actor=f.ACTOR,
    )  # fmt: skip


def _with_smtp(rt: Runtime, url: str) -> Runtime:
    settings = rt.settings.model_copy(update={"smtp_url": SecretStr(url)})
    return dataclasses.replace(rt, settings=settings)


async def _queue(rt: Runtime, account_id: Any, kind: str = "new_passkey") -> Any:
    async with rt.db.transaction() as conn:
        return await outbox.queue(
            conn, account_id=account_id, kind=kind, subject="Nouvelle clé d'accès",
            body="Une clé d'accès a été ajoutée à votre compte.", now=rt.now(),
        )  # fmt: skip


async def _row(rt: Runtime, mail_id: Any) -> Any:
    async with rt.db.transaction() as conn:
        return (await conn.execute(select(mail_outbox).where(mail_outbox.c.id == mail_id))).one()


async def test_queued_mail_is_delivered_once_to_the_accounts_address(
    rt: Runtime, smtp: tuple[_Inbox, int]
) -> None:
    inbox, port = smtp
    acct = await _account(rt, "titulaire@pharmacie.example")
    mail_id = await _queue(rt, acct.id)
    live = _with_smtp(rt, f"smtp://127.0.0.1:{port}")

    assert await outbox.deliver(live) == 1
    assert await outbox.deliver(live) == 0  # sent once, not again

    [(rcpt, msg)] = inbox.messages
    assert rcpt == ["titulaire@pharmacie.example"]
    assert msg["Subject"] == "Nouvelle clé d'accès"
    assert (await _row(rt, mail_id)).sent_at is not None
    async with rt.db.transaction() as conn:
        reads = (
            await conn.execute(
                select(audit_event).where(
                    audit_event.c.subject_id == acct.id,
                    audit_event.c.purpose == "notification",
                )
            )
        ).all()
    assert [(r.subject_kind, r.categories) for r in reads] == [("account", "contact")]


async def test_without_smtp_mail_waits_in_the_outbox(rt: Runtime) -> None:
    acct = await _account(rt, "titulaire@pharmacie.example")
    mail_id = await _queue(rt, acct.id)
    assert await outbox.deliver(rt) == 0
    row = await _row(rt, mail_id)
    assert (row.sent_at, row.attempts) == (None, 0)


async def test_an_unreachable_server_counts_attempts_and_stops_after_the_last(rt: Runtime) -> None:
    acct = await _account(rt, "titulaire@pharmacie.example")
    mail_id = await _queue(rt, acct.id)
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    down = _with_smtp(rt, f"smtp://127.0.0.1:{dead}")
    for _ in range(outbox.MAX_ATTEMPTS + 2):
        assert await outbox.deliver(down) == 0
    row = await _row(rt, mail_id)
    assert row.sent_at is None
    assert row.attempts == outbox.MAX_ATTEMPTS
    assert "ConnectionRefused" in row.last_error
