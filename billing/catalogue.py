"""The plans and credit packs on sale, as data: a TOML file bundled with the app
(``billing/catalogue.toml``), which an operator replaces with their own (``CCBB_PLANS_FILE``).

:func:`load_catalogue` reads and checks it; every mistake gets a message of its own (the file,
the entry, the field, what to write instead), all of them at once, in :class:`CatalogueError`.
The web app loads it when it starts, so a wrong file stops the start, not a customer's checkout.

Top-level sections this module does not know (``[[flow]]``, say, which the ClickBank checkout
defines and checks itself) are kept as they are: :meth:`Catalogue.section`.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

BUNDLED = Path(__file__).with_name("catalogue.toml")
SKU_RE = re.compile(r"^[a-z0-9][a-z0-9_]{0,63}$")
CURRENCY_RE = re.compile(r"^[A-Z]{3}$")
MAX_PRICE = Decimal("10000")
KNOWN_TOP = {"currency", "max_pages_without_plan", "plan", "pack"}
ITEM_FIELDS = {
    "plan": {"sku", "name", "price", "credits", "max_pages", "clickbank_item"},
    "pack": {"sku", "name", "price", "credits", "clickbank_item"},
}
DEFAULT_MAX_PAGES = 1000

Kind = Literal["plan", "pack"]


class CatalogueError(ValueError):
    """The catalogue file is wrong; ``problems`` holds one line per mistake."""

    def __init__(self, path: Path, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(
            f"the plans catalogue {path} has {len(problems)} mistake(s); fix them (or unset "
            f"CCBB_PLANS_FILE to use the bundled catalogue):\n{lines}"
        )


@dataclass(frozen=True)
class CatalogueItem:
    """A plan (recurring, monthly) or a one-off credit pack."""

    sku: str
    name: str
    kind: Kind
    price: Decimal
    currency: str
    credits: int
    max_pages: int | None  # plans only: the largest site a scan may cover
    clickbank_item: str
    recurring: bool

    def public(self) -> dict[str, Any]:
        """The item as ``GET /api/v1/plans`` lists it (the price as a string: "19.00")."""
        return {
            "sku": self.sku,
            "name": self.name,
            "kind": self.kind,
            "price": f"{self.price:.2f}",
            "currency": self.currency,
            "credits": self.credits,
            "max_pages": self.max_pages,
            "clickbank_item": self.clickbank_item,
            "recurring": self.recurring,
        }


@dataclass(frozen=True)
class Catalogue:
    items: tuple[CatalogueItem, ...]
    currency: str = "USD"
    max_pages_without_plan: int = DEFAULT_MAX_PAGES
    path: Path = BUNDLED
    sections: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def plans(self) -> list[CatalogueItem]:
        return [i for i in self.items if i.kind == "plan"]

    @property
    def packs(self) -> list[CatalogueItem]:
        return [i for i in self.items if i.kind == "pack"]

    def get(self, sku: str) -> CatalogueItem | None:
        return next((i for i in self.items if i.sku == sku), None)

    def by_clickbank_item(self, item_no: str) -> CatalogueItem | None:
        return next((i for i in self.items if i.clickbank_item == str(item_no)), None)

    def section(self, name: str) -> list[dict[str, Any]]:
        """A top-level section this module does not check (``[[flow]]`` → its tables; a single
        ``[name]`` table → a list of one), as read; ``[]`` when the file has none."""
        return [dict(t) for t in self.sections.get(name, [])]

    def max_pages_for(self, plan_sku: str | None) -> int:
        """The page budget of a scan by a user on ``plan_sku`` (None: no plan)."""
        plan = self.get(plan_sku) if plan_sku else None
        if plan is not None and plan.max_pages is not None:
            return plan.max_pages
        return self.max_pages_without_plan


def load_catalogue(path: Path | None = None) -> Catalogue:
    """Read and check the catalogue at ``path`` (None: ``CCBB_PLANS_FILE`` if set, else the
    bundled one). Raises :class:`CatalogueError` listing every mistake."""
    if path is None:
        from ccbb.settings import get_settings

        path = get_settings().plans_file or BUNDLED
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CatalogueError(path, ["the file does not exist: check CCBB_PLANS_FILE"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CatalogueError(path, [f"the file cannot be read ({exc})"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise CatalogueError(path, [f"it is not valid TOML: {exc}"]) from None
    return parse_catalogue(data, path)


@lru_cache
def bundled_catalogue() -> Catalogue:
    return load_catalogue(BUNDLED)


def parse_catalogue(data: dict[str, Any], path: Path = BUNDLED) -> Catalogue:
    """The checked catalogue from parsed TOML (pure: no file access)."""
    problems: list[str] = []
    currency = data.get("currency", "USD")
    if not isinstance(currency, str) or not CURRENCY_RE.match(currency):
        problems.append(f'currency = {currency!r}: write a 3-letter code such as "USD"')
        currency = "USD"
    default_pages = data.get("max_pages_without_plan", DEFAULT_MAX_PAGES)
    if not _positive_int(default_pages):
        problems.append(
            f"max_pages_without_plan = {default_pages!r}: write a whole number of pages above 0"
        )
        default_pages = DEFAULT_MAX_PAGES
    items: list[CatalogueItem] = []
    for kind in ("plan", "pack"):
        entries = data.get(kind, [])
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            problems.append(f"{kind}: write each {kind} as a [[{kind}]] table")
            continue
        for n, entry in enumerate(entries, 1):
            item = _item(kind, n, entry, currency, problems)
            if item is not None:
                items.append(item)
    if not any(i.kind == "plan" for i in items) and not problems:
        problems.append("there is no [[plan]]: sell at least one plan")
    for attr in ("sku", "clickbank_item"):
        seen: dict[str, str] = {}
        for item in items:
            value = getattr(item, attr)
            if value in seen:
                problems.append(
                    f"{item.kind} {item.sku}: {attr} {value!r} is also {seen[value]}'s: "
                    f"give each item its own"
                )
            seen.setdefault(value, item.sku)
    sections: dict[str, list[dict[str, Any]]] = {}
    for key, value in data.items():
        if key in KNOWN_TOP:
            continue
        if isinstance(value, list) and all(isinstance(v, dict) for v in value):
            sections[key] = value
        elif isinstance(value, dict):
            sections[key] = [value]
    if problems:
        raise CatalogueError(path, problems)
    return Catalogue(tuple(items), currency, int(default_pages), path, sections)


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _item(
    kind: Kind, n: int, entry: dict[str, Any], currency: str, problems: list[str]
) -> CatalogueItem | None:
    where = f"{kind} #{n}" + (f" ({entry['sku']})" if isinstance(entry.get("sku"), str) else "")
    before = len(problems)
    allowed = ITEM_FIELDS[kind]
    for key in sorted(set(entry) - allowed):
        hint = " (packs have no page limit: the plan's applies)" if key == "max_pages" else ""
        problems.append(f"{where}: unknown field {key!r}{hint}; the fields are "
                        f"{', '.join(sorted(allowed))}")  # fmt: skip
    for key in sorted(allowed - set(entry)):
        problems.append(f"{where}: {key} is missing")
    sku = entry.get("sku")
    if "sku" in entry and (not isinstance(sku, str) or not SKU_RE.match(sku)):
        problems.append(
            f"{where}: sku {sku!r} must be lower-case letters, digits and _ (e.g. plan_pro)"
        )
    name = entry.get("name")
    if "name" in entry and (not isinstance(name, str) or not name.strip()):
        problems.append(f'{where}: name must be a text such as "Pro"')
    price = _price(entry.get("price"))
    if "price" in entry and price is None:
        problems.append(
            f"{where}: price {entry.get('price')!r} must be a string of at most 2 decimals, "
            f'from 0 to {MAX_PRICE}, e.g. price = "19.00" (never a float)'
        )
    credits = entry.get("credits")
    if "credits" in entry and not _positive_int(credits):
        problems.append(f"{where}: credits {credits!r} must be a whole number above 0")
    max_pages = entry.get("max_pages")
    if kind == "plan" and "max_pages" in entry and not _positive_int(max_pages):
        problems.append(f"{where}: max_pages {max_pages!r} must be a whole number above 0")
    item_no = entry.get("clickbank_item")
    if isinstance(item_no, int) and not isinstance(item_no, bool):
        item_no = str(item_no)
    if "clickbank_item" in entry and (
        not isinstance(item_no, str) or not re.match(r"^[A-Za-z0-9_-]{1,32}$", item_no)
    ):
        problems.append(
            f"{where}: clickbank_item {entry.get('clickbank_item')!r} must be ClickBank's item "
            'number, e.g. clickbank_item = "1"'
        )
    if len(problems) > before:
        return None
    assert price is not None and isinstance(item_no, str)
    return CatalogueItem(
        sku=str(sku),
        name=str(name).strip(),
        kind=kind,
        price=price,
        currency=currency,
        credits=int(credits),  # type: ignore[arg-type]
        max_pages=int(max_pages) if kind == "plan" else None,  # type: ignore[arg-type]
        clickbank_item=item_no,
        recurring=kind == "plan",
    )


def _price(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    try:
        price = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    if not price.is_finite() or price < 0 or price > MAX_PRICE:
        return None
    exponent = price.as_tuple().exponent
    if not isinstance(exponent, int) or exponent < -2:
        return None
    return price.quantize(Decimal("0.01"))
