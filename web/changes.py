"""What changed since the previous scan, as the report page shows it (``_changes.html``) and
as the API returns it (``GET /api/v1/scans/{id}/changes``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from babel.dates import format_date

from notify import messages
from notify.alerts import LINE_LINKS as LINE_FILTER
from scanner.changes import Changes, lines
from scanner.changes import headline as english_headline
from store import monitoring as store_monitoring
from store.monitoring import ScanChange
from web import i18n
from web.i18n import _

DETAILS_SHOWN = 20  # products or links listed under a line on the page


def since_text(row: ScanChange, now_year: int | None = None) -> str:
    """``"Since scan #41 on 3 March"`` (the year too when it is not this one), in the
    language of the moment (English in the API)."""
    day = _day(row.previous_finished_at, now_year)
    if row.previous_scan_id is None:  # the previous scan was deleted since
        return _("Since the previous scan on %(day)s") % {"day": day}
    return _("Since scan #%(scan_id)s on %(day)s") % {"scan_id": row.previous_scan_id, "day": day}


def _day(at: datetime, now_year: int | None) -> str:
    pattern = "d MMMM" if now_year in (None, at.year) else "d MMMM y"
    return format_date(at, pattern, locale=i18n.current())


def headline(changes: Changes, since: str) -> str:
    return messages.headline(since, [messages.change_line(x.kind, x.count) for x in lines(changes)])


def block(scan_id: int, row: ScanChange | None, now_year: int) -> dict[str, Any] | None:
    """The template's view of the changes: the headline, and one entry per non-zero line with
    its link and the first products or links behind it."""
    if row is None:
        return None
    changes = row.changes()
    details = _details(changes)
    base = f"/scans/{scan_id}"
    return {
        "since": since_text(row, now_year),
        "headline": headline(changes, since_text(row, now_year)),
        "previous_scan_id": row.previous_scan_id,
        "lines": [
            {
                "kind": line.kind,
                "text": messages.change_line(line.kind, line.count),
                "href": base + LINE_FILTER[line.kind] if line.kind in LINE_FILTER else None,
                "entries": details.get(line.kind, [])[:DETAILS_SHOWN],
            }
            for line in lines(changes)
        ],
    }


def _on_page(asin: str, page: str) -> str:
    return _("%(asin)s on %(page)s") % {"asin": asin, "page": page}


def _details(changes: Changes) -> dict[str, list[dict[str, str | None]]]:
    def product(c: Any) -> dict[str, str | None]:
        return {"asin": c.asin, "text": f"{c.asin} {c.title or ''}".strip(), "extra": c.reason}

    broken: dict[str, list[dict[str, str | None]]] = {}
    for c in changes.newly_broken:
        kind = {"out_of_stock": "newly_out_of_stock", "removed": "newly_removed"}.get(
            c.after or "", "newly_error"
        )
        broken.setdefault(kind, []).append(product(c))
    return {
        **broken,
        "recovered": [product(c) for c in changes.recovered],
        "new_products": [product(c) for c in changes.new_products],
        "gone_products": [product(c) for c in changes.gone_products],
        "lost_tag": [
            {"asin": c.asin, "text": _on_page(c.asin, c.page), "extra": c.href}
            for c in changes.lost_tag
        ],
        "other_tag": [
            {"asin": c.asin, "text": _on_page(c.asin, c.page), "extra": c.tag}
            for c in changes.other_tag
        ],
        "newly_failed_pages": [
            {"asin": None, "text": c.url, "extra": c.error} for c in changes.newly_failed_pages
        ],
    }


async def load_block(session: Any, scan_id: int, now_year: int) -> dict[str, Any] | None:
    return block(scan_id, await store_monitoring.get_changes(session, scan_id=scan_id), now_year)


def api_json(scan_id: int, row: ScanChange | None) -> dict[str, Any]:
    """The API's answer: ``previous_scan`` null when this is the site's first scan."""
    if row is None:
        return {"scan_id": scan_id, "previous_scan": None, "summary": None, "changes": None}
    changes = row.changes()
    return {
        "scan_id": scan_id,
        "previous_scan": {
            "id": row.previous_scan_id,
            "finished_at": row.previous_finished_at.isoformat(),
        },
        "summary": english_headline(changes, since_text(row)),  # the API speaks English
        "changes": changes.to_json(),
    }
