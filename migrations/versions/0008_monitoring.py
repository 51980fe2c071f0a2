"""monitoring: changes between scans, schedules, alert channels and deliveries, e-mail outbox
and address confirmation

Revision ID: 0008_monitoring
Revises: 0007_clickbank
Create Date: 2026-12-01 11:22:21.862393
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_monitoring"
down_revision: str | None = "0007_clickbank"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "outbox_mail",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("to_addr", sa.String(length=320), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("text_body", sa.Text(), nullable=False),
        sa.Column("html_body", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("sent_at", TIMESTAMP, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox_mail")),
        sa.UniqueConstraint("key", name=op.f("uq_outbox_mail_key")),
    )
    op.create_table(
        "account_email",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("confirmed_at", TIMESTAMP, nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["user.id"], name=op.f("fk_account_email_user_id_user"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_account_email")),
    )
    op.create_table(
        "alert_channel",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("target_encrypted", sa.Text(), nullable=False),
        sa.Column("secret_encrypted", sa.Text(), nullable=True),
        sa.Column("alert_on", sa.String(length=32), nullable=False),
        sa.Column("weekly_summary", sa.Boolean(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.CheckConstraint(
            "alert_on IN ('broken', 'broken_and_recovered')", name=op.f("ck_alert_channel_alert_on")
        ),
        sa.CheckConstraint(
            "kind IN ('email', 'slack', 'webhook')", name=op.f("ck_alert_channel_kind")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["user.id"], name=op.f("fk_alert_channel_user_id_user"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_channel")),
    )
    with op.batch_alter_table("alert_channel", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_alert_channel_user_id"), ["user_id"], unique=False)

    op.create_table(
        "alert_delivery",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("channel_id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.String(length=100), nullable=False),
        sa.Column("event", sa.String(length=32), nullable=False),
        sa.Column("scan_id", sa.Integer(), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("delivered_at", TIMESTAMP, nullable=True),
        sa.ForeignKeyConstraint(
            ["channel_id"],
            ["alert_channel.id"],
            name=op.f("fk_alert_delivery_channel_id_alert_channel"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["scan_id"],
            ["scan.id"],
            name=op.f("fk_alert_delivery_scan_id_scan"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_delivery")),
        sa.UniqueConstraint(
            "channel_id", "event_id", name=op.f("uq_alert_delivery_channel_id_event_id")
        ),
    )
    with op.batch_alter_table("alert_delivery", schema=None) as batch_op:
        batch_op.create_index(
            "ix_alert_delivery_channel_id_created_at", ["channel_id", "created_at"], unique=False
        )

    op.create_table(
        "scan_change",
        sa.Column("scan_id", sa.Integer(), nullable=False),
        sa.Column("previous_scan_id", sa.Integer(), nullable=True),
        sa.Column("previous_finished_at", TIMESTAMP, nullable=False),
        sa.Column("counts", sa.JSON(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["previous_scan_id"],
            ["scan.id"],
            name=op.f("fk_scan_change_previous_scan_id_scan"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["scan_id"], ["scan.id"], name=op.f("fk_scan_change_scan_id_scan"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("scan_id", name=op.f("pk_scan_change")),
    )
    op.create_table(
        "site_schedule",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("site", sa.Text(), nullable=False),
        sa.Column("site_hash", sa.String(length=64), nullable=False),
        sa.Column("marketplace", sa.String(length=64), nullable=False),
        sa.Column("partner_tag", sa.String(length=128), nullable=True),
        sa.Column("credential_id", sa.Integer(), nullable=True),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("frequency", sa.String(length=16), nullable=False),
        sa.Column("weekday", sa.Integer(), nullable=False),
        sa.Column("day_of_month", sa.Integer(), nullable=False),
        sa.Column("hour", sa.Integer(), nullable=False),
        sa.Column("time_zone", sa.String(length=64), nullable=False),
        sa.Column("next_due_at", TIMESTAMP, nullable=True),
        sa.Column("paused_reason", sa.Text(), nullable=True),
        sa.Column("paused_notified", sa.Boolean(), nullable=False),
        sa.Column("last_scan_id", sa.Integer(), nullable=True),
        sa.Column("last_due_at", TIMESTAMP, nullable=True),
        sa.Column("last_outcome", sa.Text(), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.CheckConstraint(
            "frequency IN ('off', 'daily', 'weekly', 'monthly')",
            name=op.f("ck_site_schedule_frequency"),
        ),
        sa.ForeignKeyConstraint(
            ["credential_id"],
            ["amazon_credential.id"],
            name=op.f("fk_site_schedule_credential_id_amazon_credential"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["last_scan_id"],
            ["scan.id"],
            name=op.f("fk_site_schedule_last_scan_id_scan"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["user.id"], name=op.f("fk_site_schedule_user_id_user"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_site_schedule")),
        sa.UniqueConstraint(
            "user_id",
            "site_hash",
            "marketplace",
            name=op.f("uq_site_schedule_user_id_site_hash_marketplace"),
        ),
    )
    with op.batch_alter_table("site_schedule", schema=None) as batch_op:
        batch_op.create_index("ix_site_schedule_next_due_at", ["next_due_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("site_schedule", schema=None) as batch_op:
        batch_op.drop_index("ix_site_schedule_next_due_at")

    op.drop_table("site_schedule")
    op.drop_table("scan_change")
    with op.batch_alter_table("alert_delivery", schema=None) as batch_op:
        batch_op.drop_index("ix_alert_delivery_channel_id_created_at")

    op.drop_table("alert_delivery")
    with op.batch_alter_table("alert_channel", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_alert_channel_user_id"))

    op.drop_table("alert_channel")
    op.drop_table("account_email")
    op.drop_table("outbox_mail")
