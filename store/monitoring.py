"""Monitoring tables and their queries: what changed since the previous scan of a site
(``scan_change``), per-site schedules (``site_schedule``), alert channels (``alert_channel``)
and the log of what was sent to them (``alert_delivery``). E-mail has its own module
(:mod:`store.mail`).

Imported at the end of :mod:`store.models`, so Alembic and the tests see these tables.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Index,
    Text,
    UniqueConstraint,
    bindparam,
    delete,
    func,
    text,
    update,
)
from sqlalchemy import select as core_select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from ccbb.schedule_rules import FREQUENCIES, Rule, next_due
from scanner.changes import Changes
from store.models import ACTIVE_STATES, Scan, ScanState, UtcDateTime, table_of, utcnow

CHANNEL_KINDS = ("email", "slack", "webhook")
ALERT_ON = ("broken", "broken_and_recovered")


# ---- changes since the previous scan ----------------------------------------------------


class ScanChange(SQLModel, table=True):
    """What changed in a finished scan since the previous finished scan of the same user,
    site and marketplace (``scanner.changes``). One row per scan that had a previous one."""

    __tablename__ = "scan_change"

    scan_id: int = Field(foreign_key="scan.id", ondelete="CASCADE", primary_key=True)
    previous_scan_id: int | None = Field(default=None, foreign_key="scan.id", ondelete="SET NULL")
    previous_finished_at: datetime = Field(sa_type=UtcDateTime)
    counts: dict[str, int] = Field(default_factory=dict, sa_type=JSON)
    details: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)  # Changes.to_json()
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)

    def changes(self) -> Changes:
        return Changes.from_json(self.details)


async def previous_scan(session: AsyncSession, *, scan: Scan) -> Scan | None:
    """The last scan of the same user, site and marketplace that finished (``done``) before
    ``scan`` was made; None if there is none."""
    stmt = (
        select(Scan)
        .where(
            col(Scan.user_id) == scan.user_id,
            col(Scan.site) == scan.site,
            col(Scan.marketplace) == scan.marketplace,
            col(Scan.state) == ScanState.DONE.value,
            col(Scan.id) != scan.id,
            col(Scan.created_at) <= scan.created_at,
        )
        .order_by(col(Scan.finished_at).desc(), col(Scan.id).desc())
        .limit(1)
    )
    return (await session.exec(stmt)).first()


async def save_changes(
    session: AsyncSession, *, scan_id: int, previous: Scan, changes: Changes
) -> ScanChange:
    """Store (or replace) what changed in ``scan_id`` since ``previous``."""
    await session.exec(delete(ScanChange).where(col(ScanChange.scan_id) == scan_id))
    row = ScanChange(
        scan_id=scan_id,
        previous_scan_id=previous.id,
        previous_finished_at=previous.finished_at or previous.created_at,
        counts=changes.counts(),
        details=changes.to_json(),
    )
    session.add(row)
    await session.commit()
    return row


async def get_changes(session: AsyncSession, *, scan_id: int) -> ScanChange | None:
    return await session.get(ScanChange, scan_id, populate_existing=True)


# ---- schedules --------------------------------------------------------------------------


class SiteSchedule(SQLModel, table=True):
    """When a site is scanned again by itself: off / daily / weekly (on ``weekday``, 0 =
    Monday) / monthly (on ``day_of_month``, 1–28) at ``hour`` in ``time_zone``. A scheduled
    scan repeats the settings of the scan the schedule was made from (``options``…).

    ``next_due_at`` (UTC) is when the dispatcher queues the next scan; None when off or
    paused. ``paused_reason`` says why a schedule stopped by itself (no credits left);
    ``paused_notified`` that the user was told (once)."""

    __tablename__ = "site_schedule"
    __table_args__ = (
        UniqueConstraint("user_id", "site_hash", "marketplace"),
        Index("ix_site_schedule_next_due_at", "next_due_at"),
        CheckConstraint(
            "frequency IN ({})".format(", ".join(f"'{f}'" for f in FREQUENCIES)),
            name="frequency",
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user.id", ondelete="CASCADE")
    site: str = Field(sa_type=Text)
    # SHA-256 of the site: one schedule per site (no index holds URL text: see store.models)
    site_hash: str = Field(max_length=64)
    marketplace: str = Field(default="www.amazon.com", max_length=64)
    partner_tag: str | None = Field(default=None, max_length=128)
    credential_id: int | None = Field(
        default=None, foreign_key="amazon_credential.id", ondelete="SET NULL"
    )
    options: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    frequency: str = Field(default="off", max_length=16)
    weekday: int = 0
    day_of_month: int = 1
    hour: int = 6
    time_zone: str = Field(default="UTC", max_length=64)
    next_due_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    paused_reason: str | None = Field(default=None, sa_type=Text)
    paused_notified: bool = False
    # the last due time a worker took up (exactly once: see take_due_run), and what came of it
    last_due_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    last_outcome: str | None = Field(default=None, sa_type=Text)
    last_scan_id: int | None = Field(default=None, foreign_key="scan.id", ondelete="SET NULL")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)


# ---- alert channels and deliveries ------------------------------------------------------


class AlertChannel(SQLModel, table=True):
    """Where a user's alerts go: an e-mail address, a Slack incoming webhook, or a generic
    webhook (JSON signed with HMAC-SHA256). The Slack URL and the webhook's signing secret are
    secrets: kept encrypted with the server key (store.crypto.SecretBox), never shown again
    after creation except masked."""

    __tablename__ = "alert_channel"
    __table_args__ = (
        CheckConstraint(
            "kind IN ({})".format(", ".join(f"'{k}'" for k in CHANNEL_KINDS)), name="kind"
        ),
        CheckConstraint(
            "alert_on IN ({})".format(", ".join(f"'{k}'" for k in ALERT_ON)), name="alert_on"
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user.id", ondelete="CASCADE", index=True)
    kind: str = Field(max_length=16)
    label: str = Field(default="", max_length=200)  # the address, or the masked URL
    target_encrypted: str = Field(sa_type=Text, repr=False)  # address or URL, encrypted
    secret_encrypted: str | None = Field(default=None, sa_type=Text, repr=False)  # webhook HMAC
    alert_on: str = Field(default="broken", max_length=32)
    weekly_summary: bool = False
    enabled: bool = True
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)


class AlertDelivery(SQLModel, table=True):
    """One event sent (or being sent) to one channel: the delivery log the user sees. The
    ``event_id`` is stable (an alert for scan 42 is ``changes-42``), so an event is delivered
    once per channel however often it is queued."""

    __tablename__ = "alert_delivery"
    __table_args__ = (
        UniqueConstraint("channel_id", "event_id"),
        Index("ix_alert_delivery_channel_id_created_at", "channel_id", "created_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    channel_id: int = Field(foreign_key="alert_channel.id", ondelete="CASCADE")
    event_id: str = Field(max_length=100)
    event: str = Field(max_length=32)  # changes / summary / test
    scan_id: int | None = Field(default=None, foreign_key="scan.id", ondelete="SET NULL")
    payload: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    state: str = Field(default="pending", max_length=16)  # pending / delivered / failed
    attempts: int = 0
    last_status: int | None = None  # HTTP status of the last attempt
    last_error: str | None = Field(default=None, sa_type=Text)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
    delivered_at: datetime | None = Field(default=None, sa_type=UtcDateTime)


async def touch(session: AsyncSession, model: type[SQLModel], row_id: int, **values: Any) -> None:
    """``UPDATE model SET values WHERE id = row_id`` and commit."""
    table = model.__table__  # type: ignore[attr-defined]
    await session.exec(update(table).where(table.c.id == row_id).values(**values))
    await session.commit()


# ---- schedule queries -------------------------------------------------------------------


def site_hash(site: str) -> str:
    return hashlib.sha256(site.encode()).hexdigest()


def rule_of(schedule: SiteSchedule) -> Rule:
    return Rule(
        schedule.frequency,
        schedule.weekday,
        schedule.day_of_month,
        schedule.hour,
        schedule.time_zone,
    )


async def get_schedule(
    session: AsyncSession, *, schedule_id: int, user_id: int | None = None
) -> SiteSchedule | None:
    row = await session.get(SiteSchedule, schedule_id, populate_existing=True)
    if row is None or (user_id is not None and row.user_id != user_id):
        return None
    return row


async def find_schedule(
    session: AsyncSession, *, user_id: int, site: str, marketplace: str
) -> SiteSchedule | None:
    stmt = select(SiteSchedule).where(
        col(SiteSchedule.user_id) == user_id,
        col(SiteSchedule.site_hash) == site_hash(site),
        col(SiteSchedule.marketplace) == marketplace,
    )
    return (await session.exec(stmt.execution_options(populate_existing=True))).first()


async def list_schedules(session: AsyncSession, *, user_id: int) -> list[SiteSchedule]:
    stmt = (
        select(SiteSchedule)
        .where(col(SiteSchedule.user_id) == user_id)
        .order_by(col(SiteSchedule.site), col(SiteSchedule.marketplace))
    )
    return list((await session.exec(stmt.execution_options(populate_existing=True))).all())


async def save_schedule(
    session: AsyncSession, *, from_scan: Scan, rule: Rule, now: datetime
) -> SiteSchedule:
    """Create or change the schedule of ``from_scan``'s site and marketplace: scheduled scans
    repeat that scan's settings (credentials, partner tag, cloaking prefixes…). Turning a
    schedule on again ends a pause."""
    assert from_scan.user_id is not None
    row = await find_schedule(
        session, user_id=from_scan.user_id, site=from_scan.site, marketplace=from_scan.marketplace
    )
    if row is None:
        row = SiteSchedule(
            user_id=from_scan.user_id,
            site=from_scan.site,
            site_hash=site_hash(from_scan.site),
            marketplace=from_scan.marketplace,
        )
    row.partner_tag = from_scan.partner_tag
    row.credential_id = from_scan.credential_id
    row.options = dict(from_scan.options or {})
    row.frequency, row.weekday, row.day_of_month = rule.frequency, rule.weekday, rule.day_of_month
    row.hour, row.time_zone = rule.hour, rule.time_zone
    row.next_due_at = next_due(rule, now)
    row.paused_reason, row.paused_notified = None, False
    session.add(row)
    await session.commit()
    await session.refresh(row)
    return row


SCHEDULE_TABLE = table_of(SiteSchedule)
_S = SCHEDULE_TABLE.c


async def claim_due(
    session: AsyncSession, *, now: datetime, limit: int = 10_000
) -> list[tuple[int, datetime, datetime]]:
    """Take the schedules due at ``now`` and move each to its next due time, in one
    transaction: (schedule id, due time, the schedule's creation time) of each taken.

    Many dispatchers may run at once: the update names the due time it read, so a row another
    dispatcher moved meanwhile is not taken twice (PostgreSQL makes the second update wait for
    the first to commit, then finds the row moved; SQLite serialises writers). No row lock is
    taken before the update: on PostgreSQL a ``FOR UPDATE`` of 10,000 rows writes each of them
    once more. The caller queues one job per (id, due time), then commits."""
    stmt = (
        core_select(
            _S.id,
            _S.frequency,
            _S.weekday,
            _S.day_of_month,
            _S.hour,
            _S.time_zone,
            _S.next_due_at,
            _S.created_at,
        )
        .where(_S.next_due_at.is_not(None), _S.next_due_at <= now)
        .order_by(_S.next_due_at)
        .limit(limit)
    )
    conn = await session.connection()
    rows = (await conn.execute(stmt)).all()
    if not rows:
        return []
    moves = []
    made: dict[int, datetime] = {}
    # sites due together mostly share their rule (6:00 in Europe/Paris…): each distinct
    # (rule, time) is worked out once
    nexts: dict[tuple[Rule, datetime], datetime | None] = {}
    for row_id, frequency, weekday, dom, hour, zone, due, created_at in rows:
        after = max(due, now)  # a schedule overdue by days is due once, then from now on
        rule = Rule(frequency, weekday, dom, hour, zone)
        if (rule, after) not in nexts:
            nexts[(rule, after)] = next_due(rule, after)
        moves.append({"rid": row_id, "due": due, "next": nexts[(rule, after)]})
        made[row_id] = created_at
    move = (
        update(SCHEDULE_TABLE)
        .where(_S.id == bindparam("rid"), _S.next_due_at == bindparam("due"))
        .values(next_due_at=bindparam("next"))
    )
    if conn.dialect.name == "postgresql":  # one statement; RETURNING names the rows we moved
        moved = await conn.execute(
            _PG_MOVE,
            {
                "ids": [m["rid"] for m in moves],
                "dues": [m["due"] for m in moves],
                "nexts": [m["next"] for m in moves],
            },
        )
        ours = {row_id for (row_id,) in moved}
        return [(m["rid"], m["due"], made[m["rid"]]) for m in moves if m["rid"] in ours]
    # SQLite: another dispatcher may have moved a row since our read; each row's own rowcount
    # tells (executemany's does not)
    taken = []
    for m in moves:
        if (await conn.execute(move, m)).rowcount == 1:
            taken.append((m["rid"], m["due"], made[m["rid"]]))
    return taken


_PG_MOVE = text(
    "UPDATE site_schedule AS s SET next_due_at = v.next "
    "FROM unnest(CAST(:ids AS integer[]), CAST(:dues AS timestamptz[]), "
    "CAST(:nexts AS timestamptz[])) AS v(id, due, next) "
    "WHERE s.id = v.id AND s.next_due_at = v.due RETURNING s.id"
)


async def take_due_run(
    session: AsyncSession, *, schedule_id: int, due_at: datetime
) -> SiteSchedule | None:
    """Mark ``due_at`` as taken up for this schedule; the schedule, or None when this due time
    (or a later one) was taken already — the run happens once however often its job runs."""
    stmt = (
        update(SCHEDULE_TABLE)
        .where(
            _S.id == schedule_id,
            (_S.last_due_at.is_(None)) | (_S.last_due_at < due_at),
        )
        .values(last_due_at=due_at)
    )
    result = await session.exec(stmt)
    await session.commit()
    if result.rowcount != 1:
        return None
    return await get_schedule(session, schedule_id=schedule_id)


async def site_is_being_scanned(
    session: AsyncSession, *, user_id: int, site: str, marketplace: str
) -> bool:
    stmt = (
        select(func.count())
        .select_from(Scan)
        .where(
            col(Scan.user_id) == user_id,
            col(Scan.site) == site,
            col(Scan.marketplace) == marketplace,
            col(Scan.state).in_([s.value for s in ACTIVE_STATES]),
        )
    )
    return int((await session.exec(stmt)).one()) > 0


async def record_outcome(
    session: AsyncSession, *, schedule_id: int, outcome: str, scan_id: int | None = None
) -> None:
    values: dict[str, Any] = {"last_outcome": outcome}
    if scan_id is not None:
        values["last_scan_id"] = scan_id
    await touch(session, SiteSchedule, schedule_id, **values)


async def pause_schedule(session: AsyncSession, *, schedule_id: int, reason: str) -> bool:
    """Stop the schedule (no next due time) for ``reason``. True the first time since it was
    last turned on — the user is told then, once."""
    await touch(
        session,
        SiteSchedule,
        schedule_id,
        next_due_at=None,
        paused_reason=reason,
        last_outcome=reason,
    )
    stmt = (
        update(SCHEDULE_TABLE)
        .where(_S.id == schedule_id, _S.paused_notified.is_(False))
        .values(paused_notified=True)
    )
    result = await session.exec(stmt)
    await session.commit()
    return bool(result.rowcount == 1)


# ---- channel and delivery queries -------------------------------------------------------


async def create_channel(
    session: AsyncSession,
    *,
    user_id: int,
    kind: str,
    label: str,
    target_encrypted: str,
    secret_encrypted: str | None,
    alert_on: str,
    weekly_summary: bool,
) -> AlertChannel:
    row = AlertChannel(
        user_id=user_id,
        kind=kind,
        label=label,
        target_encrypted=target_encrypted,
        secret_encrypted=secret_encrypted,
        alert_on=alert_on,
        weekly_summary=weekly_summary,
    )
    session.add(row)
    await session.commit()
    await session.refresh(row)
    return row


async def list_channels(
    session: AsyncSession, *, user_id: int, enabled_only: bool = False
) -> list[AlertChannel]:
    stmt = select(AlertChannel).where(col(AlertChannel.user_id) == user_id)
    if enabled_only:
        stmt = stmt.where(col(AlertChannel.enabled).is_(True))
    stmt = stmt.order_by(col(AlertChannel.id))
    return list((await session.exec(stmt.execution_options(populate_existing=True))).all())


async def get_channel(
    session: AsyncSession, *, channel_id: int, user_id: int | None = None
) -> AlertChannel | None:
    row = await session.get(AlertChannel, channel_id, populate_existing=True)
    if row is None or (user_id is not None and row.user_id != user_id):
        return None
    return row


async def delete_channel(session: AsyncSession, *, channel_id: int, user_id: int) -> bool:
    row = await get_channel(session, channel_id=channel_id, user_id=user_id)
    if row is None:
        return False
    await session.delete(row)
    await session.commit()
    return True


async def add_delivery(
    session: AsyncSession,
    *,
    channel_id: int,
    event_id: str,
    event: str,
    payload: dict[str, Any],
    scan_id: int | None = None,
) -> tuple[AlertDelivery, bool]:
    """The delivery of ``event_id`` to the channel: (row, True) when new, (the existing row,
    False) when this event was queued for this channel before."""
    row = AlertDelivery(
        channel_id=channel_id, event_id=event_id, event=event, payload=payload, scan_id=scan_id
    )
    session.add(row)
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()
        stmt = select(AlertDelivery).where(
            col(AlertDelivery.channel_id) == channel_id, col(AlertDelivery.event_id) == event_id
        )
        return (await session.exec(stmt)).one(), False
    await session.refresh(row)
    return row, True


async def get_delivery(session: AsyncSession, *, delivery_id: int) -> AlertDelivery | None:
    return await session.get(AlertDelivery, delivery_id, populate_existing=True)


async def list_deliveries(
    session: AsyncSession, *, channel_id: int, limit: int = 20
) -> list[AlertDelivery]:
    stmt = (
        select(AlertDelivery)
        .where(col(AlertDelivery.channel_id) == channel_id)
        .order_by(col(AlertDelivery.created_at).desc(), col(AlertDelivery.id).desc())
        .limit(limit)
    )
    return list((await session.exec(stmt.execution_options(populate_existing=True))).all())


async def record_attempt(
    session: AsyncSession,
    *,
    delivery_id: int,
    state: str,
    status: int | None = None,
    error: str | None = None,
) -> None:
    row = await session.get(AlertDelivery, delivery_id)
    if row is None:
        return
    row.attempts += 1
    row.state, row.last_status, row.last_error = state, status, (error or None)
    if state == "delivered":
        row.delivered_at = utcnow()
    session.add(row)
    await session.commit()


async def changes_since(
    session: AsyncSession, *, user_id: int, since: datetime
) -> list[tuple[Scan, ScanChange]]:
    """The user's scans finished since ``since`` that have changes, oldest first."""
    stmt = (
        select(Scan, ScanChange)
        .join(ScanChange, col(ScanChange.scan_id) == col(Scan.id))
        .where(col(Scan.user_id) == user_id, col(ScanChange.created_at) >= since)
        .order_by(col(ScanChange.created_at))
    )
    return [(scan, change) for scan, change in (await session.exec(stmt)).all()]


async def users_with_summaries(session: AsyncSession) -> list[int]:
    stmt = (
        select(AlertChannel.user_id)
        .where(col(AlertChannel.weekly_summary).is_(True), col(AlertChannel.enabled).is_(True))
        .distinct()
    )
    return list((await session.exec(stmt)).all())


async def latest_scans_per_site(session: AsyncSession, *, user_id: int) -> list[Scan]:
    """The user's newest finished (done) scan of each site and marketplace, by site."""
    newest = (
        select(func.max(Scan.id))
        .where(col(Scan.user_id) == user_id, col(Scan.state) == ScanState.DONE.value)
        .group_by(col(Scan.site), col(Scan.marketplace))
    )
    stmt = select(Scan).where(col(Scan.id).in_(newest)).order_by(col(Scan.site))
    return list((await session.exec(stmt.execution_options(populate_existing=True))).all())
