"""Use case: post business events to the ledger; read balances (DOMAIN.md §8, ``domain.ledger``).

Postings are written in the transaction of the event they record (an invoice decided, a
payment exported), once per event (``uq_ledger_posting_once``): a replayed event posts nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

from sqlalchemy import func, select, union_all
from sqlalchemy.ext.asyncio import AsyncConnection

from rempart.db.tables import ledger_posting
from rempart.db.upsert import insert_for
from rempart.domain.errors import Forbidden
from rempart.domain.ledger import Posting
from rempart.domain.roles import Permission
from rempart.security.principal import Principal
from rempart.services.runtime import Runtime


async def post(
    conn: AsyncConnection, dialect: str, postings: Sequence[tuple[UUID, Posting]], now: datetime
) -> None:
    """``(ref, posting)`` pairs, in the caller's transaction."""
    if not postings:
        return
    stmt = insert_for(dialect, ledger_posting).on_conflict_do_nothing()
    await conn.execute(
        stmt,
        [
            {
                "id": uuid.uuid4(),
                "at": now,
                "event": p.event,
                "ref": ref,
                "debit": p.debit,
                "credit": p.credit,
                "amount_cents": p.cents,
            }
            for ref, p in postings
        ],
    )


async def balances(rt: Runtime, actor: Principal, account: str | None = None) -> dict[str, int]:
    """Debits minus credits per account (every account, or the one named); they sum to 0."""
    if not actor.may(Permission.READ_LEDGER):
        raise Forbidden("Réservé aux opérateurs des paiements.")
    legs = union_all(
        select(ledger_posting.c.debit.label("account"), ledger_posting.c.amount_cents),
        select(
            ledger_posting.c.credit.label("account"),
            (-ledger_posting.c.amount_cents).label("amount_cents"),
        ),
    ).subquery()
    q = select(legs.c.account, func.sum(legs.c.amount_cents)).group_by(legs.c.account)
    if account is not None:
        q = q.where(legs.c.account == account)
    async with rt.db.read(replica_ok=True) as conn:  # a report: seconds of lag are fine
        return {a: int(n) for a, n in await conn.execute(q.order_by(legs.c.account))}
