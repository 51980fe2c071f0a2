"""Accounts: the language the user chose for pages, and the first-run guide's steps done

Revision ID: 0009_user_locale
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_user_locale"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("user") as batch:  # SQLite rebuilds the table
        batch.add_column(sa.Column("locale", sa.String(length=8), nullable=True))
    op.create_table(
        "first_run_step",
        sa.Column(
            "user_id",
            sa.Integer(),
            sa.ForeignKey(
                "user.id", ondelete="CASCADE", name=op.f("fk_first_run_step_user_id_user")
            ),
            nullable=False,
        ),
        sa.Column("step", sa.String(32), nullable=False),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "step", name=op.f("pk_first_run_step")),
    )


def downgrade() -> None:
    op.drop_table("first_run_step")
    with op.batch_alter_table("user") as batch:
        batch.drop_column("locale")
