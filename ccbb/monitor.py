"""After a scan finishes: what changed since the previous scan of the same site is computed
(``scanner.changes``) and stored (``store.monitoring``), and the user's alert channels are
told when something changed (``notify.alerts``). Called by ``ccbb.jobs`` after
``finish_scan``; a failure here never fails the scan."""

from __future__ import annotations

import logging
from typing import Any

from notify import alerts
from scanner.changes import compare
from scanner.scan import ScanReport
from store import monitoring as store_monitoring
from store import scans as store_scans

log = logging.getLogger(__name__)


async def record_changes(
    sessions: Any, *, scan_id: int, report: ScanReport
) -> store_monitoring.ScanChange | None:
    """Compare the finished scan ``scan_id`` (its ``report``) with the previous finished scan
    of the same user, site and marketplace, and store the changes; None when there is no
    previous scan."""
    async with sessions() as session:
        scan = await store_scans.get_scan(session, scan_id=scan_id)
        if scan is None:
            return None
        previous = await store_monitoring.previous_scan(session, scan=scan)
        if previous is None or previous.id is None:
            return None
        old = await store_scans.load_report(session, scan_id=previous.id)
        changes = compare(old, report)
        row = await store_monitoring.save_changes(
            session, scan_id=scan_id, previous=previous, changes=changes
        )
    log.info("scan %s: changes since scan %s: %s", scan_id, previous.id, row.counts)
    return row


async def after_scan(ctx: dict[str, Any], *, scan_id: int, report: ScanReport) -> int:
    """The worker's hook after a scan is done: record the changes and queue the alerts they
    call for; how many alerts were queued."""
    row = await record_changes(ctx["sessions"], scan_id=scan_id, report=report)
    if row is None:
        return 0
    async with ctx["sessions"]() as session:
        scan = await store_scans.get_scan(session, scan_id=scan_id)
    if scan is None:
        return 0
    return await alerts.queue_alerts(ctx, scan=scan, row=row)
