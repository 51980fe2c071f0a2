"""Plans and scan credits: the append-only ledger, the balance row, the credits API's kept
answers, a public id per user

Revision ID: 0006_credits
Revises: 0010_report
Create Date: 2026-12-01
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_credits"
down_revision: str | None = "0010_report"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    # every user gets a random public id (what the credits API and the Account page show)
    with op.batch_alter_table("user") as batch:
        batch.add_column(sa.Column("public_id", sa.String(36), nullable=True))
    conn = op.get_bind()
    user = sa.table("user", sa.column("id", sa.Integer), sa.column("public_id", sa.String))
    ids = [row[0] for row in conn.execute(sa.select(user.c.id))]
    for user_id in ids:
        conn.execute(user.update().where(user.c.id == user_id).values(public_id=str(uuid.uuid4())))
    with op.batch_alter_table("user") as batch:
        batch.alter_column("public_id", existing_type=sa.String(36), nullable=False)
        batch.create_unique_constraint(op.f("uq_user_public_id"), ["public_id"])

    op.create_table(
        "credit_account",
        sa.Column(
            "user_id",
            sa.Integer(),
            sa.ForeignKey(
                "user.id", ondelete="CASCADE", name=op.f("fk_credit_account_user_id_user")
            ),
            nullable=False,
            autoincrement=False,
        ),
        sa.Column("balance", sa.Integer(), nullable=False),
        sa.Column("plan_sku", sa.String(64), nullable=True),
        sa.Column("plan_status", sa.String(16), nullable=False),
        sa.Column("period_end", TIMESTAMP, nullable=True),
        sa.Column("renews", sa.Boolean(), nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.CheckConstraint("balance >= 0", name=op.f("ck_credit_account_balance")),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_credit_account")),
    )
    op.create_table(
        "credit_ledger",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column(
            "user_id",
            sa.Integer(),
            sa.ForeignKey(
                "user.id", ondelete="CASCADE", name=op.f("fk_credit_ledger_user_id_user")
            ),
            nullable=False,
        ),
        sa.Column("delta", sa.Integer(), nullable=False),
        sa.Column("balance_after", sa.Integer(), nullable=False),
        sa.Column("shortfall", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("comment", sa.String(500), nullable=False),
        sa.Column("external_id", sa.String(200), nullable=True),
        sa.Column("idempotency_key", sa.String(200), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.CheckConstraint("balance_after >= 0", name=op.f("ck_credit_ledger_balance_after")),
        sa.CheckConstraint("shortfall >= 0", name=op.f("ck_credit_ledger_shortfall")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_credit_ledger")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_credit_ledger_idempotency_key")),
    )
    op.create_index(op.f("ix_credit_ledger_user_id_id"), "credit_ledger", ["user_id", "id"])
    op.create_index(op.f("ix_credit_ledger_external_id"), "credit_ledger", ["external_id"])
    op.create_table(
        "credit_api_answer",
        sa.Column("key", sa.String(300), nullable=False),
        sa.Column("body_sha256", sa.String(64), nullable=False),
        sa.Column("answer", sa.JSON(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_credit_api_answer")),
    )


def downgrade() -> None:
    op.drop_table("credit_api_answer")
    op.drop_index(op.f("ix_credit_ledger_external_id"), table_name="credit_ledger")
    op.drop_index(op.f("ix_credit_ledger_user_id_id"), table_name="credit_ledger")
    op.drop_table("credit_ledger")
    op.drop_table("credit_account")
    with op.batch_alter_table("user") as batch:
        batch.drop_constraint(op.f("uq_user_public_id"), type_="unique")
        batch.drop_column("public_id")
