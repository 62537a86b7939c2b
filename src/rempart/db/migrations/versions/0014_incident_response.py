"""incident response: public incidents, breach scopes, notices, mass revocation

Revision ID: 0014
Revises: 0012
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import rempart.db.types

revision = "0014"
down_revision = "0012"
branch_labels = None
depends_on = None

UTC = rempart.db.types.UtcDateTime


def upgrade() -> None:
    op.create_table(
        "incident",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("advice", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("opened_at", UTC(timezone=True), nullable=False),
        sa.Column("updated_at", UTC(timezone=True), nullable=False),
        sa.Column("next_update_at", UTC(timezone=True), nullable=True),
        sa.Column("closed_at", UTC(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incident")),
    )
    op.create_table(
        "incident_update",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("incident_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("at", UTC(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("advice", sa.Text(), nullable=False),
        sa.Column("next_update_at", UTC(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["incident_id"], ["incident.id"], name=op.f("fk_incident_update_incident_id_incident")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incident_update")),
    )
    op.create_index(
        op.f("ix_incident_update_incident_id"), "incident_update", ["incident_id"], unique=False
    )
    op.create_table(
        "incident_scope",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("incident_id", sa.Uuid(), nullable=True),
        sa.Column("principal_kind", sa.String(length=10), nullable=True),
        sa.Column("principal_id", sa.Uuid(), nullable=True),
        sa.Column("structure_id", sa.Uuid(), nullable=True),
        sa.Column("since", UTC(timezone=True), nullable=True),
        sa.Column("until", UTC(timezone=True), nullable=True),
        sa.Column("created_at", UTC(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("reads", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("tree_size", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["incident_id"], ["incident.id"], name=op.f("fk_incident_scope_incident_id_incident")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incident_scope")),
    )
    op.create_table(
        "incident_subject",
        sa.Column("scope_id", sa.Uuid(), nullable=False),
        sa.Column("subject_kind", sa.String(length=20), nullable=False),
        sa.Column("subject_id", sa.Uuid(), nullable=False),
        sa.Column("ocam_id", sa.Uuid(), nullable=True),
        sa.Column("categories", sa.String(length=200), nullable=False),
        sa.Column("reads", sa.Integer(), nullable=False),
        sa.Column("first_at", UTC(timezone=True), nullable=False),
        sa.Column("last_at", UTC(timezone=True), nullable=False),
        sa.Column("evidence_event_id", sa.Uuid(), nullable=False),
        sa.Column("proof", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["scope_id"],
            ["incident_scope.id"],
            name=op.f("fk_incident_subject_scope_id_incident_scope"),
        ),
        sa.PrimaryKeyConstraint(
            "scope_id", "subject_kind", "subject_id", name=op.f("pk_incident_subject")
        ),
    )
    op.create_table(
        "notice",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("structure_id", sa.Uuid(), nullable=False),
        sa.Column("scope_id", sa.Uuid(), nullable=True),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", UTC(timezone=True), nullable=False),
        sa.Column("read_at", UTC(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["scope_id"], ["incident_scope.id"], name=op.f("fk_notice_scope_id_incident_scope")
        ),
        sa.ForeignKeyConstraint(
            ["structure_id"], ["structure.id"], name=op.f("fk_notice_structure_id_structure")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notice")),
        sa.UniqueConstraint("structure_id", "scope_id", name="uq_notice_structure_scope"),
    )
    op.create_index(op.f("ix_notice_structure_id"), "notice", ["structure_id"], unique=False)
    op.create_table(
        "reverify",
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("required_at", UTC(timezone=True), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["account.id"], name=op.f("fk_reverify_account_id_account")
        ),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_reverify")),
    )
    op.create_table(
        "mass_action",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("scope", sa.String(length=20), nullable=False),
        sa.Column("target_id", sa.Uuid(), nullable=True),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("requested_by", sa.String(length=100), nullable=False),
        sa.Column("requested_at", UTC(timezone=True), nullable=False),
        sa.Column("approved_by", sa.String(length=100), nullable=True),
        sa.Column("done_at", UTC(timezone=True), nullable=True),
        sa.Column("result", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mass_action")),
    )


def downgrade() -> None:
    for name in (
        "mass_action",
        "reverify",
        "notice",
        "incident_subject",
        "incident_scope",
        "incident_update",
        "incident",
    ):
        op.drop_table(name)
