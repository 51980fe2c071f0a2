"""What changed since the previous scan, as the report page shows it (``_changes.html``) and
as the API returns it (``GET /api/v1/scans/{id}/changes``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from notify.alerts import LINE_LINKS as LINE_FILTER
from scanner.changes import SINCE, Changes, headline, lines
from store import monitoring as store_monitoring
from store.monitoring import ScanChange

DETAILS_SHOWN = 20  # products or links listed under a line on the page


def since_text(row: ScanChange, now_year: int | None = None) -> str:
    """``"Since scan #41 on 3 March"`` (the year too when it is not this one)."""
    day = _day(row.previous_finished_at, now_year)
    if row.previous_scan_id is None:  # the previous scan was deleted since
        return f"Since the previous scan on {day}"
    return SINCE.format(scan_id=row.previous_scan_id, day=day)


def _day(at: datetime, now_year: int | None) -> str:
    text = f"{at.day} {at:%B}"
    return text if now_year in (None, at.year) else f"{text} {at.year}"


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
                "text": line.text,
                "href": base + LINE_FILTER[line.kind] if line.kind in LINE_FILTER else None,
                "entries": details.get(line.kind, [])[:DETAILS_SHOWN],
            }
            for line in lines(changes)
        ],
    }


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
            {"asin": c.asin, "text": f"{c.asin} on {c.page}", "extra": c.href}
            for c in changes.lost_tag
        ],
        "other_tag": [
            {"asin": c.asin, "text": f"{c.asin} on {c.page}", "extra": c.tag}
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
        "summary": headline(changes, since_text(row)),
        "changes": changes.to_json(),
    }
