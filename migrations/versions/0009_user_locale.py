"""Accounts: the language the user chose for pages, and the first-run guide's steps done

Accounts with a finished scan when this runs are past the first-run guide (it is for new ones).

Revision ID: 0009_user_locale
Revises: 0008_monitoring
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_user_locale"
down_revision: str | None = "0008_monitoring"
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
    # accounts that already read a finished scan's report are past the guide: it is for new ones
    op.execute(
        "INSERT INTO first_run_step (user_id, step, done_at) "
        "SELECT DISTINCT user_id, 'finished', CURRENT_TIMESTAMP FROM scan "
        "WHERE state = 'done' AND user_id IS NOT NULL"
    )


def downgrade() -> None:
    op.drop_table("first_run_step")
    with op.batch_alter_table("user") as batch:
        batch.drop_column("locale")
