"""Affiliate program: members, link visits per day, referrals

Revision ID: 0011_affiliates
Revises: 0009_user_locale
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_affiliates"
down_revision: str | None = "0009_user_locale"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "affiliate",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("ref_id", sa.String(16), nullable=False),
        sa.Column("paypal_email", sa.String(320), nullable=False),
        sa.Column("website", sa.String(500), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("status_reason", sa.String(500), nullable=False),
        sa.Column("joined_at", TIMESTAMP, nullable=False),
        sa.Column("status_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["user.id"], ondelete="CASCADE", name=op.f("fk_affiliate_user_id_user")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_affiliate")),
        sa.UniqueConstraint("user_id", name=op.f("uq_affiliate_user_id")),
        sa.UniqueConstraint("ref_id", name=op.f("uq_affiliate_ref_id")),
    )
    op.create_table(
        "affiliate_visit_day",
        sa.Column("affiliate_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("visits", sa.Integer(), nullable=False),
        sa.Column("unique_visits", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["affiliate_id"],
            ["affiliate.id"],
            ondelete="CASCADE",
            name=op.f("fk_affiliate_visit_day_affiliate_id_affiliate"),
        ),
        sa.PrimaryKeyConstraint("affiliate_id", "day", name=op.f("pk_affiliate_visit_day")),
    )
    op.create_table(
        "affiliate_referral",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("affiliate_id", sa.Integer(), nullable=False),
        sa.Column("landed_at", TIMESTAMP, nullable=False),
        sa.Column("signed_up_at", TIMESTAMP, nullable=False),
        sa.Column("self_referral", sa.Boolean(), nullable=False),
        sa.Column("flag_reason", sa.String(500), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user.id"],
            ondelete="CASCADE",
            name=op.f("fk_affiliate_referral_user_id_user"),
        ),
        sa.ForeignKeyConstraint(
            ["affiliate_id"],
            ["affiliate.id"],
            ondelete="CASCADE",
            name=op.f("fk_affiliate_referral_affiliate_id_affiliate"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_affiliate_referral")),
        sa.UniqueConstraint("user_id", name=op.f("uq_affiliate_referral_user_id")),
    )
    op.create_index(
        op.f("ix_affiliate_referral_affiliate_id"), "affiliate_referral", ["affiliate_id"]
    )
    money = sa.Numeric(14, 2)
    op.create_table(
        "affiliate_commission",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("affiliate_id", sa.Integer(), nullable=False),
        sa.Column("customer_user_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("receipt", sa.String(40), nullable=False),
        sa.Column("transaction_time", TIMESTAMP, nullable=False),
        sa.Column("due_at", TIMESTAMP, nullable=False),
        sa.Column("payment_amount", money, nullable=False),
        sa.Column("rate", sa.Numeric(5, 4), nullable=False),
        sa.Column("amount", money, nullable=False),
        sa.Column("reverses_id", sa.Integer(), nullable=True),
        sa.Column("flagged", sa.Boolean(), nullable=False),
        sa.Column("note", sa.String(500), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["affiliate_id"],
            ["affiliate.id"],
            ondelete="RESTRICT",
            name=op.f("fk_affiliate_commission_affiliate_id_affiliate"),
        ),
        sa.ForeignKeyConstraint(
            ["customer_user_id"],
            ["user.id"],
            ondelete="SET NULL",
            name=op.f("fk_affiliate_commission_customer_user_id_user"),
        ),
        sa.ForeignKeyConstraint(
            ["reverses_id"],
            ["affiliate_commission.id"],
            name=op.f("fk_affiliate_commission_reverses_id_affiliate_commission"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_affiliate_commission")),
        sa.UniqueConstraint("key", name=op.f("uq_affiliate_commission_key")),
        sa.UniqueConstraint("reverses_id", name=op.f("uq_affiliate_commission_reverses_id")),
    )
    for column in ("affiliate_id", "receipt"):
        op.create_index(op.f(f"ix_affiliate_commission_{column}"), "affiliate_commission", [column])


def downgrade() -> None:
    for column in ("affiliate_id", "receipt"):
        op.drop_index(op.f(f"ix_affiliate_commission_{column}"), table_name="affiliate_commission")
    op.drop_table("affiliate_commission")
    op.drop_index(op.f("ix_affiliate_referral_affiliate_id"), table_name="affiliate_referral")
    op.drop_table("affiliate_referral")
    op.drop_table("affiliate_visit_day")
    op.drop_table("affiliate")
