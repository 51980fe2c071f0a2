"""initial schema: users, Amazon credentials, scans and what they find

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# BIGINT ids on PostgreSQL; on SQLite only INTEGER PRIMARY KEY is the auto-numbered rowid
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIMESTAMP = sa.DateTime(timezone=True)


def _fk(table: str, column: str, target: str, ondelete: str, *, nullable: bool) -> sa.Column[int]:
    name = op.f(f"fk_{table}_{column}_{target.split('.')[0]}")
    return sa.Column(
        column, sa.Integer(), sa.ForeignKey(target, ondelete=ondelete, name=name), nullable=nullable
    )


def _scan_fk(table: str) -> sa.Column[int]:
    return _fk(table, "scan_id", "scan.id", "CASCADE", nullable=False)


def upgrade() -> None:
    op.create_table(
        "user",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("is_admin", sa.Boolean(), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user")),
        sa.UniqueConstraint("email", name=op.f("uq_user_email")),
    )
    op.create_table(
        "amazon_credential",
        sa.Column("id", sa.Integer(), nullable=False),
        _fk("amazon_credential", "user_id", "user.id", "CASCADE", nullable=False),
        sa.Column("label", sa.String(200), nullable=False),
        sa.Column("credential_id", sa.String(200), nullable=False),
        sa.Column("secret_encrypted", sa.Text(), nullable=False),
        sa.Column("version", sa.String(8), nullable=False),
        sa.Column("country", sa.String(8), nullable=False),
        sa.Column("partner_tag", sa.String(128), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_amazon_credential")),
    )
    op.create_index(op.f("ix_amazon_credential_user_id"), "amazon_credential", ["user_id"])
    op.create_table(
        "scan",
        sa.Column("id", sa.Integer(), nullable=False),
        _fk("scan", "user_id", "user.id", "CASCADE", nullable=True),
        sa.Column("site", sa.Text(), nullable=False),
        sa.Column("marketplace", sa.String(64), nullable=False),
        sa.Column("partner_tag", sa.String(128), nullable=True),
        sa.Column("options", sa.JSON(), nullable=False),
        _fk("scan", "credential_id", "amazon_credential.id", "SET NULL", nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("started_at", TIMESTAMP, nullable=True),
        sa.Column("finished_at", TIMESTAMP, nullable=True),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("phase", sa.String(64), nullable=False),
        sa.Column("pages_crawled", sa.Integer(), nullable=False),
        sa.Column("pages_discovered", sa.Integer(), nullable=False),
        sa.Column("products_found", sa.Integer(), nullable=False),
        sa.Column("products_checked", sa.Integer(), nullable=False),
        sa.Column("api_requests", sa.Integer(), nullable=False),
        sa.Column("truncated", sa.Boolean(), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=True),
        sa.Column("stats", sa.JSON(), nullable=True),
        sa.CheckConstraint(
            "state IN ('queued', 'running', 'done', 'failed', 'cancelled')",
            name=op.f("ck_scan_state"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scan")),
    )
    op.create_index("ix_scan_state", "scan", ["state"])
    op.create_index("ix_scan_user_id_created_at", "scan", ["user_id", "created_at"])
    op.create_table(
        "scan_page",
        sa.Column("id", BIG_ID, nullable=False),
        _scan_fk("scan_page"),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scan_page")),
    )
    op.create_index("ix_scan_page_scan_id_seq", "scan_page", ["scan_id", "seq"])
    op.create_table(
        "scan_link",
        sa.Column("id", BIG_ID, nullable=False),
        _scan_fk("scan_link"),
        sa.Column("occurrence", sa.Integer(), nullable=False),
        sa.Column("page", sa.Text(), nullable=False),
        sa.Column("href", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("tag", sa.Text(), nullable=True),
        sa.Column("marketplace", sa.String(64), nullable=False),
        sa.Column("asin", sa.String(16), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scan_link")),
    )
    op.create_index("ix_scan_link_scan_id_asin", "scan_link", ["scan_id", "asin"])
    op.create_index("ix_scan_link_scan_id_occurrence", "scan_link", ["scan_id", "occurrence"])
    op.create_table(
        "scan_product",
        sa.Column("id", BIG_ID, nullable=False),
        _scan_fk("scan_product"),
        sa.Column("marketplace", sa.String(64), nullable=False),
        sa.Column("asin", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("availability", sa.Text(), nullable=True),
        sa.Column("detail_page_url", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scan_product")),
        sa.UniqueConstraint(
            "scan_id", "marketplace", "asin", name=op.f("uq_scan_product_scan_id_marketplace_asin")
        ),
    )
    op.create_index("ix_scan_product_scan_id_status", "scan_product", ["scan_id", "status"])
    op.create_table(
        "scan_unresolved",
        sa.Column("id", BIG_ID, nullable=False),
        _scan_fk("scan_unresolved"),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("page", sa.Text(), nullable=False),
        sa.Column("href", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scan_unresolved")),
    )
    op.create_index("ix_scan_unresolved_scan_id_seq", "scan_unresolved", ["scan_id", "seq"])


def downgrade() -> None:
    for table in ("scan_unresolved", "scan_product", "scan_link", "scan_page", "scan"):
        op.drop_table(table)
    op.drop_table("amazon_credential")
    op.drop_table("user")
