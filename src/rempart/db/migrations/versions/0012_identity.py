"""identity: step-up, known devices, recovery requests, transitional passwords

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import rempart.db.types

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("account", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("password_allowed", sa.Boolean(), server_default="0", nullable=False)
        )
        batch_op.add_column(sa.Column("password_hash", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("totp_secret_enc", sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column("totp_last_step", sa.BigInteger(), nullable=True))
    with op.batch_alter_table("web_session", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("stepped_up_at", rempart.db.types.UtcDateTime(timezone=True), nullable=True)
        )
    op.create_table(
        "known_device",
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("device_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("first_seen_at", rempart.db.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", rempart.db.types.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["account.id"], name=op.f("fk_known_device_account_id_account")
        ),
        sa.PrimaryKeyConstraint("account_id", "device_hash", name=op.f("pk_known_device")),
    )
    op.create_table(
        "recovery_request",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("requested_by", sa.Uuid(), nullable=False),
        sa.Column("reason", sa.String(length=300), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("created_at", rempart.db.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("approved_by", sa.Uuid(), nullable=True),
        sa.Column("approved_at", rempart.db.types.UtcDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"], ["account.id"], name=op.f("fk_recovery_request_account_id_account")
        ),
        sa.ForeignKeyConstraint(
            ["requested_by"],
            ["account.id"],
            name=op.f("fk_recovery_request_requested_by_account"),
        ),
        sa.ForeignKeyConstraint(
            ["approved_by"], ["account.id"], name=op.f("fk_recovery_request_approved_by_account")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recovery_request")),
    )
    with op.batch_alter_table("recovery_request", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_recovery_request_account_id"), ["account_id"], unique=False
        )


def downgrade() -> None:
    op.drop_table("recovery_request")
    op.drop_table("known_device")
    with op.batch_alter_table("web_session", schema=None) as batch_op:
        batch_op.drop_column("stepped_up_at")
    with op.batch_alter_table("account", schema=None) as batch_op:
        batch_op.drop_column("totp_last_step")
        batch_op.drop_column("totp_secret_enc")
        batch_op.drop_column("password_hash")
        batch_op.drop_column("password_allowed")
