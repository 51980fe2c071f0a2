"""Affiliate payouts: one PayPal batch per payout date, its items, and what became of them

Revision ID: 0012_payouts
Revises: 0011_affiliates
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_payouts"
down_revision: str | None = "0011_affiliates"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)
MONEY = sa.Numeric(14, 2)


def upgrade() -> None:
    op.create_table(
        "affiliate_payout_batch",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("payout_date", sa.Date(), nullable=False),
        sa.Column("sender_batch_id", sa.String(64), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_affiliate_payout_batch")),
        sa.UniqueConstraint("payout_date", name=op.f("uq_affiliate_payout_batch_payout_date")),
        sa.UniqueConstraint(
            "sender_batch_id", name=op.f("uq_affiliate_payout_batch_sender_batch_id")
        ),
    )
    op.create_table(
        "affiliate_payout",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("batch_id", sa.Integer(), nullable=False),
        sa.Column("affiliate_id", sa.Integer(), nullable=False),
        sa.Column("receiver", sa.String(320), nullable=False),
        sa.Column("amount", MONEY, nullable=False),
        sa.Column("sender_item_id", sa.String(64), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["affiliate_payout_batch.id"],
            ondelete="RESTRICT",
            name=op.f("fk_affiliate_payout_batch_id_affiliate_payout_batch"),
        ),
        sa.ForeignKeyConstraint(
            ["affiliate_id"],
            ["affiliate.id"],
            ondelete="RESTRICT",
            name=op.f("fk_affiliate_payout_affiliate_id_affiliate"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_affiliate_payout")),
        sa.UniqueConstraint(
            "batch_id", "affiliate_id", name=op.f("uq_affiliate_payout_batch_id_affiliate_id")
        ),
        sa.UniqueConstraint("sender_item_id", name=op.f("uq_affiliate_payout_sender_item_id")),
    )
    op.create_index(op.f("ix_affiliate_payout_affiliate_id"), "affiliate_payout", ["affiliate_id"])
    op.create_table(
        "affiliate_payout_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("batch_id", sa.Integer(), nullable=False),
        sa.Column("payout_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("paypal_batch_id", sa.String(64), nullable=False),
        sa.Column("paypal_item_id", sa.String(64), nullable=False),
        sa.Column("transaction_id", sa.String(64), nullable=False),
        sa.Column("detail", sa.String(500), nullable=False),
        sa.Column("returned", MONEY, nullable=False),
        sa.Column("returns_payout_id", sa.Integer(), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["affiliate_payout_batch.id"],
            ondelete="RESTRICT",
            name=op.f("fk_affiliate_payout_event_batch_id_affiliate_payout_batch"),
        ),
        sa.ForeignKeyConstraint(
            ["payout_id"],
            ["affiliate_payout.id"],
            ondelete="RESTRICT",
            name=op.f("fk_affiliate_payout_event_payout_id_affiliate_payout"),
        ),
        sa.ForeignKeyConstraint(
            ["returns_payout_id"],
            ["affiliate_payout.id"],
            ondelete="RESTRICT",
            name=op.f("fk_affiliate_payout_event_returns_payout_id_affiliate_payout"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_affiliate_payout_event")),
        sa.UniqueConstraint(
            "payout_id", "status", name=op.f("uq_affiliate_payout_event_payout_id_status")
        ),
        sa.UniqueConstraint(
            "returns_payout_id", name=op.f("uq_affiliate_payout_event_returns_payout_id")
        ),
    )
    for column in ("batch_id", "payout_id"):
        op.create_index(
            op.f(f"ix_affiliate_payout_event_{column}"), "affiliate_payout_event", [column]
        )


def downgrade() -> None:
    for column in ("batch_id", "payout_id"):
        op.drop_index(
            op.f(f"ix_affiliate_payout_event_{column}"), table_name="affiliate_payout_event"
        )
    op.drop_table("affiliate_payout_event")
    op.drop_index(op.f("ix_affiliate_payout_affiliate_id"), table_name="affiliate_payout")
    op.drop_table("affiliate_payout")
    op.drop_table("affiliate_payout_batch")
