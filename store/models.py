"""The tables, as SQLModel classes (``Base → Table``, as in full-stack-fastapi-template).

A scan's findings live in child tables written in bulk when the scan ends (see
:mod:`store.scans`): ``scan_page`` (scanned and failed pages), ``scan_link`` (one row per link
occurrence and product: a widget showing 3 products is 3 rows sharing one ``occurrence``),
``scan_product`` and ``scan_unresolved``. Each child row carries ``seq``/``occurrence``, its
position in the scan's own lists, so the report is rebuilt in exactly the scan's order.
Alembic migrations in ``migrations/`` create the same schema; a test checks they agree.

No index holds URL text: PostgreSQL refuses a B-tree entry over 2704 bytes, so one long URL
(tracking parameters…) would make a whole scan impossible to save. Rows are found by scan and
ASIN, status, or position; a page's links are read within its scan.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    DateTime,
    Dialect,
    Index,
    Integer,
    LargeBinary,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlmodel import Field, SQLModel

SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_N_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# BIGINT ids on PostgreSQL; on SQLite only INTEGER PRIMARY KEY is the auto-numbered rowid
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out, on every backend (SQLite keeps no time zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: give an aware one (UTC)")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_public_id() -> str:
    return str(uuid.uuid4())


class ScanState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


ACTIVE_STATES = (ScanState.QUEUED, ScanState.RUNNING)
_STATE_CHECK = "state IN ({})".format(", ".join(f"'{s.value}'" for s in ScanState))


# ---- users and their Amazon credentials -------------------------------------------------


class UserBase(SQLModel):
    email: str = Field(max_length=320, unique=True)
    is_admin: bool = False


class User(UserBase, table=True):
    __tablename__ = "user"

    id: int | None = Field(default=None, primary_key=True)
    password_hash: str = Field(sa_type=Text)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
    # the id the user and the credits API see (a random UUID; never the database id)
    public_id: str = Field(default_factory=new_public_id, max_length=36, unique=True)
    # the language the user chose for pages ("en", "fr"); None: the browser's (web.i18n)
    locale: str | None = Field(default=None, max_length=8)


class AmazonCredentialBase(SQLModel):
    label: str = Field(default="", max_length=200)
    credential_id: str = Field(max_length=200)  # Amazon's "Credential ID" (not secret)
    version: str = Field(default="2.1", max_length=8)  # 2.1 / 2.2 / 2.3 / 3.x
    country: str = Field(default="US", max_length=8)
    partner_tag: str = Field(default="", max_length=128)
    # API requests per second Amazon allows these credentials (1 for new accounts; more with
    # sales): scans using them are paced at this rate
    tps: float = Field(default=1.0, sa_column_kwargs={"server_default": "1.0"})


class AmazonCredential(AmazonCredentialBase, table=True):
    __tablename__ = "amazon_credential"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user.id", ondelete="CASCADE", index=True)
    # the Credential Secret, encrypted with the server key (store.crypto.SecretBox)
    secret_encrypted: str = Field(sa_type=Text, repr=False)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)


class AmazonCredentialPublic(AmazonCredentialBase):
    """What the API may show: everything but the secret."""

    id: int
    created_at: datetime


class ApiToken(SQLModel, table=True):
    """A personal API token: only its SHA-256 is kept (the token is shown once, at creation).
    ``prefix`` (its first characters) lets the user tell tokens apart."""

    __tablename__ = "api_token"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user.id", ondelete="CASCADE", index=True)
    name: str = Field(max_length=100)
    prefix: str = Field(max_length=16)
    token_hash: str = Field(max_length=64, unique=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
    last_used_at: datetime | None = Field(default=None, sa_type=UtcDateTime)


# ---- scans ------------------------------------------------------------------------------


class ScanBase(SQLModel):
    site: str = Field(sa_type=Text)
    marketplace: str = Field(default="www.amazon.com", max_length=64)
    partner_tag: str | None = Field(default=None, max_length=128)


class Scan(ScanBase, table=True):
    __tablename__ = "scan"
    __table_args__ = (
        CheckConstraint(_STATE_CHECK, name="state"),
        Index("ix_scan_user_id_created_at", "user_id", "created_at"),
        Index("ix_scan_state", "state"),
    )

    id: int | None = Field(default=None, primary_key=True)
    user_id: int | None = Field(default=None, foreign_key="user.id", ondelete="CASCADE")
    # what the worker needs to rebuild the ScanConfig: cloak prefixes, max_pages, …
    options: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    credential_id: int | None = Field(
        default=None, foreign_key="amazon_credential.id", ondelete="SET NULL"
    )
    state: str = Field(default=ScanState.QUEUED.value, max_length=16)
    error: str | None = Field(default=None, sa_type=Text)  # the user-facing reason
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
    started_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    attempt: int = 0  # how many times a worker started it
    # live progress (scanner.crawl.Progress)
    phase: str = Field(default="", max_length=64)
    pages_crawled: int = 0
    pages_discovered: int = 0
    products_found: int = 0
    products_checked: int = 0
    api_requests: int = 0
    # written when the scan is done
    truncated: bool = False
    summary: dict[str, Any] | None = Field(default=None, sa_type=JSON)  # scanner.report.summary
    stats: dict[str, Any] | None = Field(default=None, sa_type=JSON)  # the report's "stats"


class ScanPublic(ScanBase):
    """A scan as the dashboard lists it: state, progress and summary, not its rows."""

    id: int
    state: str
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    phase: str
    pages_crawled: int
    pages_discovered: int
    products_found: int
    products_checked: int
    truncated: bool
    summary: dict[str, Any] | None


# ---- what a scan found (written in bulk) ------------------------------------------------


class ScanPage(SQLModel, table=True):
    """A page scanned (``ok``; status and error empty) or failed (status may be null)."""

    __tablename__ = "scan_page"
    __table_args__ = (Index("ix_scan_page_scan_id_seq", "scan_id", "seq"),)

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId)
    scan_id: int = Field(foreign_key="scan.id", ondelete="CASCADE")
    seq: int  # position in the scan's list of pages (or of failed pages)
    url: str = Field(sa_type=Text)
    ok: bool
    status: int | None = None
    error: str | None = Field(default=None, sa_type=Text)
    # a failed page: the first scanned pages linking to it, one per line
    referrers: str | None = Field(default=None, sa_type=Text)


class ScanLink(SQLModel, table=True):
    """One link occurrence × one product it shows (a 3-product widget is 3 rows)."""

    __tablename__ = "scan_link"
    __table_args__ = (
        Index("ix_scan_link_scan_id_asin", "scan_id", "asin"),
        Index("ix_scan_link_scan_id_occurrence", "scan_id", "occurrence"),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId)
    scan_id: int = Field(foreign_key="scan.id", ondelete="CASCADE")
    occurrence: int  # position of the occurrence in the scan's list of links
    page: str = Field(sa_type=Text)
    href: str = Field(sa_type=Text)
    kind: str = Field(max_length=16)  # direct | short | cloaked | widget
    tag: str | None = Field(default=None, sa_type=Text)
    marketplace: str = Field(max_length=64)
    asin: str = Field(max_length=16)


class ScanProduct(SQLModel, table=True):
    __tablename__ = "scan_product"
    __table_args__ = (
        UniqueConstraint("scan_id", "marketplace", "asin"),
        Index("ix_scan_product_scan_id_status", "scan_id", "status"),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId)
    scan_id: int = Field(foreign_key="scan.id", ondelete="CASCADE")
    marketplace: str = Field(max_length=64)
    asin: str = Field(max_length=16)
    status: str = Field(max_length=16)  # available | removed | out_of_stock | error | not_checked
    title: str | None = Field(default=None, sa_type=Text)
    availability: str | None = Field(default=None, sa_type=Text)
    detail_page_url: str | None = Field(default=None, sa_type=Text)
    error: str | None = Field(default=None, sa_type=Text)


class ScanUnresolved(SQLModel, table=True):
    """A short or cloaked link that does not lead to an Amazon product."""

    __tablename__ = "scan_unresolved"
    __table_args__ = (Index("ix_scan_unresolved_scan_id_seq", "scan_id", "seq"),)

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId)
    scan_id: int = Field(foreign_key="scan.id", ondelete="CASCADE")
    seq: int
    page: str = Field(sa_type=Text)
    href: str = Field(sa_type=Text)
    kind: str = Field(max_length=16)  # short | cloaked
    error: str = Field(sa_type=Text)


# ---- the report's detailed table, made when the scan finishes (see store.report_table) ----


class ScanRow(SQLModel, table=True):
    """A row of the report's detailed table. ``grain`` 'link': one product × one Amazon link as
    written on the site (``href`` null for a product no link led to); 'product': one product
    (``href`` null), its links counted. Each has its number of pages and the first of them
    (sorted, one per line), and why an ``error`` is one. ``seq`` is its place in the scan's
    rows (link rows by ASIN, marketplace, link, then product rows by ASIN, marketplace);
    :class:`ScanOrder` holds the orders."""

    __tablename__ = "scan_row"
    __table_args__ = (
        Index("ix_scan_row_scan_id_seq", "scan_id", "seq"),
        Index("ix_scan_row_scan_id_asin", "scan_id", "asin"),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId)
    scan_id: int = Field(foreign_key="scan.id", ondelete="CASCADE")
    seq: int
    marketplace: str = Field(max_length=64)
    asin: str = Field(max_length=16)
    status: str = Field(max_length=16)
    title: str | None = Field(default=None, sa_type=Text)
    availability: str | None = Field(default=None, sa_type=Text)
    detail_page_url: str | None = Field(default=None, sa_type=Text)
    href: str | None = Field(default=None, sa_type=Text)
    pages_count: int
    pages: str = Field(sa_type=Text)
    grain: str = Field(default="link", max_length=8, sa_column_kwargs={"server_default": "link"})
    error: str | None = Field(default=None, sa_type=Text)
    links_count: int = Field(default=0, sa_column_kwargs={"server_default": "0"})


class ScanOrder(SQLModel, table=True):
    """The detailed table's rows in one order (a sortable column, one direction), within one
    status ('' for all), of one ``grain`` (see :class:`ScanRow`): ``seqs`` holds their
    :attr:`ScanRow.seq` as little-endian uint32, so any page of any order is a 200-byte slice;
    ``rows`` counts them."""

    __tablename__ = "scan_order"
    __table_args__ = (UniqueConstraint("scan_id", "grain", "sort", "descending", "status"),)

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId)
    scan_id: int = Field(foreign_key="scan.id", ondelete="CASCADE")
    sort: str = Field(max_length=16)
    descending: bool
    status: str = Field(max_length=16)
    rows: int
    seqs: bytes = Field(sa_type=LargeBinary)
    grain: str = Field(default="link", max_length=8, sa_column_kwargs={"server_default": "link"})


class ScanAudit(SQLModel, table=True):
    """The tag audit's links to fix: distinct (link, tag) without the partner tag or with
    another one, most used first (at most 100 per scan)."""

    __tablename__ = "scan_audit"
    __table_args__ = (Index("ix_scan_audit_scan_id_seq", "scan_id", "seq"),)

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId)
    scan_id: int = Field(foreign_key="scan.id", ondelete="CASCADE")
    seq: int
    href: str = Field(sa_type=Text)
    tag: str | None = Field(default=None, sa_type=Text)
    pages: int
    links: int
    first_pages: str | None = Field(default=None, sa_type=Text)  # the first pages, one per line


def table_of(model: type[SQLModel]) -> Table:
    table = model.__table__  # type: ignore[attr-defined]
    assert isinstance(table, Table)
    return table


PAGE_TABLE = table_of(ScanPage)
LINK_TABLE = table_of(ScanLink)
PRODUCT_TABLE = table_of(ScanProduct)
UNRESOLVED_TABLE = table_of(ScanUnresolved)
FINDINGS_TABLES = (LINK_TABLE, PAGE_TABLE, PRODUCT_TABLE, UNRESOLVED_TABLE)
ROW_TABLE = table_of(ScanRow)
ORDER_TABLE = table_of(ScanOrder)
AUDIT_TABLE = table_of(ScanAudit)
REPORT_TABLES = (ROW_TABLE, ORDER_TABLE, AUDIT_TABLE)  # made from the findings at finish
