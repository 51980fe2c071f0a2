"""What a new account has done yet, for the dashboard's first-run guide (web.first_run): read
from the account's own rows, so the guide's steps tick themselves off. Two steps leave no row
of their own (a connection test that worked, a finished scan's report opened): they are
recorded in ``first_run_step``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from store.models import AmazonCredential, Scan, ScanState, UtcDateTime, utcnow

# the steps recorded here; "finished": every step was done once, the guide is gone for good
STEPS = ("connection", "report", "finished")


class FirstRunStep(SQLModel, table=True):
    """A first-run step the user did (once per user and step)."""

    __tablename__ = "first_run_step"

    user_id: int = Field(foreign_key="user.id", ondelete="CASCADE", primary_key=True)
    step: str = Field(max_length=32, primary_key=True)
    done_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)


@dataclass(frozen=True)
class Onboarding:
    credentials: int  # saved Amazon credentials
    scans: int  # scans ever started (queued included)
    last_done_scan: int | None  # the newest scan that finished, whose report can be read
    steps: frozenset[str]  # the recorded steps (STEPS) done


async def onboarding(session: AsyncSession, *, user_id: int) -> Onboarding:
    credentials = (
        await session.exec(select(func.count()).where(col(AmazonCredential.user_id) == user_id))
    ).one()
    scans = (await session.exec(select(func.count()).where(col(Scan.user_id) == user_id))).one()
    last_done = (
        await session.exec(
            select(col(Scan.id))
            .where(col(Scan.user_id) == user_id, col(Scan.state) == ScanState.DONE.value)
            .order_by(col(Scan.finished_at).desc(), col(Scan.id).desc())
            .limit(1)
        )
    ).first()
    steps = await session.exec(
        select(col(FirstRunStep.step)).where(col(FirstRunStep.user_id) == user_id)
    )
    return Onboarding(int(credentials), int(scans), last_done, frozenset(steps.all()))


async def guide_finished(session: AsyncSession, *, user_id: int) -> bool:
    """Did the user once do every step (one read by primary key: the common case)?"""
    return await session.get(FirstRunStep, (user_id, "finished")) is not None


async def record_step(session: AsyncSession, *, user_id: int, step: str) -> bool:
    """Records that the user did ``step`` (one of STEPS); False if it was already recorded."""
    if step not in STEPS:
        raise ValueError(f"unknown first-run step {step!r}")
    if await session.get(FirstRunStep, (user_id, step)) is not None:
        return False
    session.add(FirstRunStep(user_id=user_id, step=step))
    try:
        await session.commit()
    except IntegrityError:  # recorded meanwhile by another request
        await session.rollback()
        return False
    return True
