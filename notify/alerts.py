"""Alerts: told only when something changed, to each of the user's channels (e-mail, Slack,
generic webhook), plus an optional weekly summary and a test per channel.

When a scan finishes with changes (``store.monitoring.ScanChange``), :func:`queue_alerts`
makes one delivery per channel that cares — ``broken`` channels hear of products newly out
of stock, removed or in error, links that lost the partner tag or carry someone else's, and
pages that newly fail; ``broken_and_recovered`` channels hear of recovered products too —
under a stable event id (``changes-<scan id>``: once per channel however often it is queued),
and queues ``deliver_alert_job``, which sends it and retries with backoff. Every attempt is in
the channel's delivery log.
"""

from __future__ import annotations

import json
import logging
import uuid
from datetime import datetime, timedelta
from typing import Any

import aiohttp
from arq import Retry

from notify import hooks, messages
from notify.email import Mail, queue_mail
from scanner.changes import headline, lines
from store import monitoring as store_monitoring
from store import users as store_users
from store.crypto import SecretBox
from store.models import Scan, utcnow
from store.monitoring import AlertChannel, ScanChange
from web import i18n

log = logging.getLogger(__name__)

BROKEN_KINDS = frozenset(
    {
        "newly_out_of_stock",
        "newly_removed",
        "newly_error",
        "lost_tag",
        "other_tag",
        "newly_failed_pages",
    }
)
RECOVERED_KINDS = frozenset({"recovered"})
DELIVERY_TRIES = 6
BACKOFF = (10, 60, 300, 900, 3600)  # seconds before each retry
LINE_LINKS = {  # where each line of the changes leads in the report page (also web.changes)
    "newly_out_of_stock": "?status=out_of_stock",
    "newly_removed": "?status=removed",
    "newly_error": "?status=error",
    "recovered": "?status=available",
    "lost_tag": "#tag-audit",
    "other_tag": "#tag-audit",
    "newly_failed_pages": "#failed-pages",
}
SUMMARY_NOTHING = "nothing changed"


def kinds_for(alert_on: str) -> frozenset[str]:
    return BROKEN_KINDS | RECOVERED_KINDS if alert_on == "broken_and_recovered" else BROKEN_KINDS


def report_url(public_url: str, scan_id: int) -> str:
    return f"{public_url.rstrip('/')}/scans/{scan_id}"


def changes_event(scan: Scan, row: ScanChange, public_url: str) -> dict[str, Any]:
    """The stable JSON of a changes event (what a webhook receives; keys may be added,
    never renamed). ``lines`` hold every non-zero count with its link; each channel keeps
    the lines it cares about."""
    assert scan.id is not None
    changes = row.changes()
    since = f"Since scan #{row.previous_scan_id}" if row.previous_scan_id else "Since the last scan"
    report = report_url(public_url, scan.id)
    return {
        "event_id": f"changes-{scan.id}",
        "event": "scan.changes",
        "created_at": utcnow().isoformat(),
        "site": scan.site,
        "marketplace": scan.marketplace,
        "scan_id": scan.id,
        "previous_scan_id": row.previous_scan_id,
        "report_url": report,
        "summary": headline(changes, since),
        "counts": changes.counts(),
        "lines": [
            {
                "kind": x.kind,
                "count": x.count,
                "text": x.text,
                "url": report + LINE_LINKS.get(x.kind, ""),
            }
            for x in lines(changes)
        ],
        "newly_broken": [
            {
                "asin": c.asin,
                "marketplace": c.marketplace,
                "title": c.title,
                "before": c.before,
                "after": c.after,
                "reason": c.reason,
            }
            for c in changes.newly_broken
        ],
        "recovered": [
            {"asin": c.asin, "marketplace": c.marketplace, "title": c.title}
            for c in changes.recovered
        ],
    }


def for_channel(event: dict[str, Any], alert_on: str) -> dict[str, Any] | None:
    """The event as this channel gets it (only the lines it cares about); None when none."""
    wanted = kinds_for(alert_on)
    kept = [line for line in event["lines"] if line["kind"] in wanted]
    if not kept:
        return None
    out = {**event, "lines": kept}
    if "recovered" not in wanted:
        out["recovered"] = []
    return out


async def queue_alerts(ctx: dict[str, Any], *, scan: Scan, row: ScanChange) -> int:
    """One delivery per enabled channel of the scan's owner that cares about these changes;
    how many were queued (0 when nothing changed that anyone asked to hear about)."""
    if row.changes().is_empty or scan.user_id is None:
        return 0
    event = changes_event(scan, row, ctx["settings"].public_url)
    async with ctx["sessions"]() as session:
        channels = await store_monitoring.list_channels(
            session, user_id=scan.user_id, enabled_only=True
        )
    count = 0
    for channel in channels:
        payload = for_channel(event, channel.alert_on)
        if payload is not None and await _queue(ctx, channel, payload, scan_id=scan.id):
            count += 1
    return count


async def queue_test(state: Any, channel: AlertChannel) -> int:
    """A test message to one channel (a fresh event each time); the delivery's id."""
    assert channel.id is not None
    event = {
        "event_id": f"test-{uuid.uuid4().hex[:16]}",
        "event": "test",
        "created_at": utcnow().isoformat(),
        "summary": messages.test_message(channel.kind).text.strip(),
        "lines": [],
    }
    ctx = {"sessions": state.sessions, "redis": state.redis}
    delivery_id = await _queue(ctx, channel, event)
    assert delivery_id is not None
    return delivery_id


async def _queue(
    ctx: dict[str, Any], channel: AlertChannel, payload: dict[str, Any], scan_id: int | None = None
) -> int | None:
    assert channel.id is not None
    async with ctx["sessions"]() as session:
        delivery, new = await store_monitoring.add_delivery(
            session,
            channel_id=channel.id,
            event_id=payload["event_id"],
            event=payload["event"],
            payload=payload,
            scan_id=scan_id,
        )
    if not new:
        return None
    stamp = int(delivery.created_at.timestamp() * 1000)
    await ctx["redis"].enqueue_job(
        "deliver_alert_job", delivery.id, _job_id=f"alert:{delivery.id}:{stamp}"
    )
    return delivery.id


# ---- delivering ---------------------------------------------------------------------------


class DeliveryFailed(Exception):
    def __init__(self, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.status = status


async def deliver_alert_job(ctx: dict[str, Any], delivery_id: int) -> str:
    """Send one delivery (never twice once delivered); retried with backoff, then failed."""
    async with ctx["sessions"]() as session:
        delivery = await store_monitoring.get_delivery(session, delivery_id=delivery_id)
        channel = (
            await store_monitoring.get_channel(session, channel_id=delivery.channel_id)
            if delivery
            else None
        )
    if delivery is None or channel is None:
        return "no such delivery"
    if delivery.state == "delivered":
        return "delivered already"
    try:
        status = await _send(ctx, channel, delivery.payload, delivery_id)
    except DeliveryFailed as exc:
        job_try = int(ctx.get("job_try", 1))
        final = job_try >= DELIVERY_TRIES
        async with ctx["sessions"]() as session:
            await store_monitoring.record_attempt(
                session,
                delivery_id=delivery_id,
                state="failed" if final else "retrying",
                status=exc.status,
                error=str(exc),
            )
        log.warning(
            "delivery %s to channel %s: attempt %s failed: %s",
            delivery_id,
            channel.id,
            job_try,
            exc,
        )
        if final:
            return f"failed: {exc}"
        raise Retry(defer=BACKOFF[min(job_try, len(BACKOFF)) - 1]) from exc
    async with ctx["sessions"]() as session:
        await store_monitoring.record_attempt(
            session, delivery_id=delivery_id, state="delivered", status=status
        )
    return "delivered"


def _line_text(line: dict[str, Any]) -> str:
    """A line of changes in the language of the moment (the payload keeps the English text)."""
    if "kind" in line and "count" in line:
        return messages.change_line(line["kind"], int(line["count"]))
    return str(line.get("text", ""))


def _what(site: dict[str, Any]) -> str:
    """What changed on a site this week, in the language of the moment."""
    if "lines" not in site:  # a summary queued before the lines were kept
        return str(site.get("what", ""))
    shown = [_line_text(line) for line in site["lines"]]
    return ", ".join(shown) if shown else messages.nothing_changed()


def _headline(payload: dict[str, Any], text_lines: list[tuple[str, str]]) -> str:
    if payload["event"] == "test":
        return str(payload["summary"])  # written in the user's language when queued
    if payload["event"] == "summary":
        return messages.week_title(len(payload.get("sites", [])))
    since = messages.since_scan(payload.get("previous_scan_id"))
    counts = payload.get("counts")
    if isinstance(counts, dict):  # the whole change, as the event's summary says it
        shown = [messages.change_line(k, int(n)) for k, n in counts.items() if n]
        return messages.headline(since, shown)
    return messages.headline(since, [t for t, _link in text_lines])


async def _send(
    ctx: dict[str, Any], channel: AlertChannel, payload: dict[str, Any], delivery_id: int
) -> int | None:
    box: SecretBox = ctx["box"]
    target = box.decrypt(channel.target_encrypted)
    if channel.kind == "webhook":  # the JSON event as it is: English, a stable contract
        secret = box.decrypt(channel.secret_encrypted or "")
        body, headers = hooks.webhook_request(payload, secret)
        return await _post(ctx, channel, target, body, headers)
    async with ctx["sessions"]() as session:  # people read the rest: in their language
        user = await store_users.get_user(session, user_id=channel.user_id)
    with i18n.speaking(user.locale if user else None):
        text_lines = [(_line_text(line), line["url"]) for line in payload.get("lines", [])]
        link = payload.get("report_url")
        headline = _headline(payload, text_lines)
        open_report = messages.open_report()
        if channel.kind == "email":
            if payload["event"] == "test":
                parts = messages.test_message("email")
            elif payload["event"] == "summary":
                rows = [(r["site"], _what(r), r["url"]) for r in payload["sites"]]
                parts = messages.weekly_summary(rows, payload["dashboard"])
            else:
                parts = messages.alert(payload["site"], headline, text_lines, link or "")
        elif payload["event"] == "summary":
            text_lines = [(f"{r['site']}: {_what(r)}", r["url"]) for r in payload["sites"]]
    if channel.kind == "email":
        await queue_mail(
            ctx["sessions"],
            ctx["redis"],
            Mail(f"alert:{delivery_id}", target, parts.subject, parts.text, parts.html),
        )
        return None
    body_json = hooks.slack_payload(headline, text_lines, link, open_report)
    body, headers = json.dumps(body_json).encode(), {"Content-Type": "application/json"}
    return await _post(ctx, channel, target, body, headers)


async def _post(
    ctx: dict[str, Any], channel: AlertChannel, target: str, body: bytes, headers: dict[str, str]
) -> int:
    """POST a Slack message or a webhook event; the answer's status, or DeliveryFailed."""
    try:
        status = await hooks.post(ctx["http"], target, body, headers)
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        # the URL is a secret (Slack's is a password): the log and the page name the label
        reason = f"{type(exc).__name__}: {exc}".replace(target, channel.label)
        raise DeliveryFailed(reason[:300]) from exc
    if not 200 <= status < 300:
        raise DeliveryFailed(f"HTTP {status}", status)
    return status


# ---- the weekly summary ---------------------------------------------------------------------


async def weekly_summary_job(ctx: dict[str, Any]) -> int:
    """Monday's summary of the past week to every channel that asked for one (even when
    nothing changed: a summary is what it promises); event id per channel and ISO week."""
    now: datetime = (ctx.get("clock") or utcnow)()
    since = now - timedelta(days=7)
    week = now.isocalendar()
    public = ctx["settings"].public_url.rstrip("/")
    count = 0
    async with ctx["sessions"]() as session:
        user_ids = await store_monitoring.users_with_summaries(session)
    for user_id in user_ids:
        async with ctx["sessions"]() as session:
            if await store_users.get_user(session, user_id=user_id) is None:
                continue
            found = await store_monitoring.changes_since(session, user_id=user_id, since=since)
            channels = await store_monitoring.list_channels(
                session, user_id=user_id, enabled_only=True
            )
        latest: dict[tuple[str, str], tuple[Scan, ScanChange]] = {}
        for scan, change in found:
            latest[(scan.site, scan.marketplace)] = (scan, change)
        sites = []
        for scan, change in latest.values():
            shown = lines(change.changes())
            what = ", ".join(x.text for x in shown) if shown else SUMMARY_NOTHING
            assert scan.id is not None
            sites.append({
                "site": scan.site, "what": what, "url": report_url(public, scan.id),
                "lines": [{"kind": x.kind, "count": x.count} for x in shown],
            })  # fmt: skip
        summary = f"Your week: {len(sites)} sites scanned" if sites else "Your week: no scans"
        for channel in channels:
            if not channel.weekly_summary:
                continue
            payload = {
                "event_id": f"summary-{channel.id}-{week.year}-W{week.week:02d}",
                "event": "summary",
                "created_at": now.isoformat(),
                "summary": summary,
                "sites": sites,
                "dashboard": public + "/",
                "lines": [],
            }
            if await _queue(ctx, channel, payload):
                count += 1
    return count
