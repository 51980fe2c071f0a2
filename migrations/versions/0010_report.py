"""The report a site owner can act on: error reasons and one row per product in the detailed
table, the pages that link to a failed page, the pages of each link to fix

Revision ID: 0010_report
Revises: 0005_sessions
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_report"
down_revision: str | None = "0005_sessions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD_UQ = "uq_scan_order_scan_id_sort_descending_status"
_NEW_UQ = "uq_scan_order_scan_id_grain_sort_descending_status"


def upgrade() -> None:
    with op.batch_alter_table("scan_page") as batch:
        batch.add_column(sa.Column("referrers", sa.Text(), nullable=True))
    with op.batch_alter_table("scan_row") as batch:
        batch.add_column(
            sa.Column("grain", sa.String(length=8), nullable=False, server_default="link")
        )
        batch.add_column(sa.Column("error", sa.Text(), nullable=True))
        batch.add_column(sa.Column("links_count", sa.Integer(), nullable=False, server_default="0"))
    with op.batch_alter_table("scan_order") as batch:
        batch.add_column(
            sa.Column("grain", sa.String(length=8), nullable=False, server_default="link")
        )
        batch.drop_constraint(_OLD_UQ, type_="unique")
        batch.create_unique_constraint(
            _NEW_UQ, ["scan_id", "grain", "sort", "descending", "status"]
        )
    with op.batch_alter_table("scan_audit") as batch:
        batch.add_column(sa.Column("first_pages", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("scan_audit") as batch:
        batch.drop_column("first_pages")
    op.execute("DELETE FROM scan_order WHERE grain <> 'link'")
    with op.batch_alter_table("scan_order") as batch:
        batch.drop_constraint(_NEW_UQ, type_="unique")
        batch.create_unique_constraint(_OLD_UQ, ["scan_id", "sort", "descending", "status"])
        batch.drop_column("grain")
    op.execute("DELETE FROM scan_row WHERE grain <> 'link'")
    with op.batch_alter_table("scan_row") as batch:
        batch.drop_column("links_count")
        batch.drop_column("error")
        batch.drop_column("grain")
    with op.batch_alter_table("scan_page") as batch:
        batch.drop_column("referrers")
