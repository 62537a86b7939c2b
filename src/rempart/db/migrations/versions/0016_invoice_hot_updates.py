"""invoice: status and payment changes become HOT updates

Revision ID: 0016
Revises: 0014
Create Date: 2026-12-02

A payment run writes every invoice it pays twice (claimed at prepare, paid at export). While
``payment_id`` was indexed and ``status`` sat in the work-queue index's predicate, each of those
writes was a new heap tuple plus an entry in every index of the table. Invoices of a payment
are found through ``remitted_invoice`` (its primary key starts with ``payment_id``), the work
queue is keyed on what only adjudication and cancellation change, and pages keep room for the
new versions (fillfactor), so both writes can stay on their page without touching an index.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0014"
branch_labels = None
depends_on = None

_QUEUE = "decided_at IS NULL AND cancelled_at IS NULL"


def upgrade() -> None:
    with op.batch_alter_table("invoice", schema=None) as batch_op:
        batch_op.drop_index("ix_invoice_payment")
        batch_op.drop_index("ix_invoice_to_decide")
        batch_op.create_index(
            "ix_invoice_to_decide",
            ["received_at"],
            unique=False,
            postgresql_where=sa.text(_QUEUE),
            sqlite_where=sa.text(_QUEUE),
        )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE invoice SET (fillfactor = 70)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE invoice RESET (fillfactor)")
    with op.batch_alter_table("invoice", schema=None) as batch_op:
        batch_op.drop_index("ix_invoice_to_decide")
        batch_op.create_index(
            "ix_invoice_to_decide",
            ["received_at"],
            unique=False,
            postgresql_where=sa.text("status = 'received'"),
            sqlite_where=sa.text("status = 'received'"),
        )
        batch_op.create_index("ix_invoice_payment", ["payment_id"], unique=False)
