"""Every table of the store, imported so that ``SQLModel.metadata`` holds them all (migrations,
the schema check, foreign keys between modules). ``store/__init__.py`` imports this module, so
entering the package through any of its modules registers every table. A module that adds a
table is named here."""

from store import (
    affiliates,
    clickbank,
    credits,
    mail,
    models,
    monitoring,
    onboarding,
    payouts,
    sessions,
)

__all__ = [
    "affiliates",
    "clickbank",
    "credits",
    "mail",
    "models",
    "monitoring",
    "onboarding",
    "payouts",
    "sessions",
]
