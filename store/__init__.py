"""Storage: SQLModel tables (``models``), engines (``db``), migrations (``migrate``), and
keyword-only CRUD functions on an ``AsyncSession``: ``scans``, ``users``, ``credentials``;
Amazon secrets encrypted at rest (``crypto``). SQLite in embedded mode, PostgreSQL in
production."""

# the tables first: store.models imports the modules holding more tables at its very end, and
# those import each other (sessions reads credits); entered through one of them (a script that
# imports store.credits first), the circle would break half-way
from store import models as _models  # noqa: F401
