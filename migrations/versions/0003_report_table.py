"""the report's detailed table, its orders and the tag audit, made when a scan finishes

Scans finished before this revision have none: the dashboard reads their report from the
findings, as before.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _scan_fk(table: str) -> sa.Column[int]:
    return sa.Column(
        "scan_id",
        sa.Integer(),
        sa.ForeignKey("scan.id", ondelete="CASCADE", name=op.f(f"fk_{table}_scan_id_scan")),
        nullable=False,
    )


def upgrade() -> None:
    op.create_table(
        "scan_row",
        sa.Column("id", BIG_ID, nullable=False),
        _scan_fk("scan_row"),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("marketplace", sa.String(64), nullable=False),
        sa.Column("asin", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("availability", sa.Text(), nullable=True),
        sa.Column("detail_page_url", sa.Text(), nullable=True),
        sa.Column("href", sa.Text(), nullable=True),
        sa.Column("pages_count", sa.Integer(), nullable=False),
        sa.Column("pages", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scan_row")),
    )
    op.create_index("ix_scan_row_scan_id_seq", "scan_row", ["scan_id", "seq"])
    op.create_index("ix_scan_row_scan_id_asin", "scan_row", ["scan_id", "asin"])
    op.create_table(
        "scan_order",
        sa.Column("id", BIG_ID, nullable=False),
        _scan_fk("scan_order"),
        sa.Column("sort", sa.String(16), nullable=False),
        sa.Column("descending", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("seqs", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scan_order")),
        sa.UniqueConstraint(
            "scan_id",
            "sort",
            "descending",
            "status",
            name=op.f("uq_scan_order_scan_id_sort_descending_status"),
        ),
    )
    if op.get_bind().dialect.name == "postgresql":
        # uncompressed out of line: a page of an order reads the TOAST chunk it is in, not the
        # whole value
        op.execute("ALTER TABLE scan_order ALTER COLUMN seqs SET STORAGE EXTERNAL")
    op.create_table(
        "scan_audit",
        sa.Column("id", BIG_ID, nullable=False),
        _scan_fk("scan_audit"),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("href", sa.Text(), nullable=False),
        sa.Column("tag", sa.Text(), nullable=True),
        sa.Column("pages", sa.Integer(), nullable=False),
        sa.Column("links", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scan_audit")),
    )
    op.create_index("ix_scan_audit_scan_id_seq", "scan_audit", ["scan_id", "seq"])


def downgrade() -> None:
    for table in ("scan_audit", "scan_order", "scan_row"):
        op.drop_table(table)
