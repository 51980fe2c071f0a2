"""Storage: SQLModel tables (``models``), engines (``db``), migrations (``migrate``), and
keyword-only CRUD functions on an ``AsyncSession``: ``scans``, ``users``, ``credentials``;
Amazon secrets encrypted at rest (``crypto``). SQLite in embedded mode, PostgreSQL in
production."""

# every table on SQLModel.metadata, whichever module of the package is entered first
from store import tables as _tables  # noqa: F401
