"""ClickBank: notifications received, checkout references, tickets filed

Revision ID: 0007_clickbank
Revises: 0006_credits
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_clickbank"
down_revision: str | None = "0006_credits"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)


def _user_fk(table: str, ondelete: str) -> sa.ForeignKey:
    return sa.ForeignKey("user.id", ondelete=ondelete, name=op.f(f"fk_{table}_user_id_user"))


def upgrade() -> None:
    op.create_table(
        "clickbank_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("transaction_type", sa.String(32), nullable=False),
        sa.Column("receipt", sa.String(40), nullable=False),
        sa.Column("base_receipt", sa.String(40), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("transaction_time", TIMESTAMP, nullable=False),
        sa.Column("received_at", TIMESTAMP, nullable=False),
        sa.Column("deliveries", sa.Integer(), nullable=False),
        sa.Column("raw", sa.Text(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("outcome", sa.Text(), nullable=True),
        sa.Column("user_id", sa.Integer(), _user_fk("clickbank_event", "SET NULL"), nullable=True),
        sa.Column("sku", sa.String(64), nullable=True),
        sa.Column("amount", sa.Numeric(14, 2), nullable=True),
        sa.Column("currency", sa.String(8), nullable=True),
        sa.Column("credits", sa.Integer(), nullable=True),
        sa.Column("tries", sa.Integer(), nullable=False),
        sa.Column("processed_at", TIMESTAMP, nullable=True),
        sa.Column("waits_for", sa.String(40), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_clickbank_event")),
        sa.UniqueConstraint("key", name=op.f("uq_clickbank_event_key")),
    )
    for column in ("base_receipt", "user_id", "state", "waits_for"):
        op.create_index(op.f(f"ix_clickbank_event_{column}"), "clickbank_event", [column])
    op.create_table(
        "clickbank_checkout",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("reference", sa.String(64), nullable=False),
        sa.Column(
            "user_id", sa.Integer(), _user_fk("clickbank_checkout", "CASCADE"), nullable=False
        ),
        sa.Column("sku", sa.String(64), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("receipt", sa.String(40), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_clickbank_checkout")),
        sa.UniqueConstraint("reference", name=op.f("uq_clickbank_checkout_reference")),
    )
    op.create_index(op.f("ix_clickbank_checkout_user_id"), "clickbank_checkout", ["user_id"])
    op.create_table(
        "clickbank_ticket",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), _user_fk("clickbank_ticket", "SET NULL"), nullable=True),
        sa.Column("receipt", sa.String(40), nullable=False),
        sa.Column("kind", sa.String(80), nullable=False),
        sa.Column("ticket_id", sa.String(64), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_clickbank_ticket")),
        sa.UniqueConstraint("receipt", "kind", name=op.f("uq_clickbank_ticket_receipt_kind")),
    )


def downgrade() -> None:
    op.drop_table("clickbank_ticket")
    op.drop_index(op.f("ix_clickbank_checkout_user_id"), table_name="clickbank_checkout")
    op.drop_table("clickbank_checkout")
    for column in ("base_receipt", "user_id", "state", "waits_for"):
        op.drop_index(op.f(f"ix_clickbank_event_{column}"), table_name="clickbank_event")
    op.drop_table("clickbank_event")
