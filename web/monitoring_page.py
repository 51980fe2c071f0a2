"""The Monitoring page (``/monitoring``): each scanned site's schedule, the alert channels
with a test button and their delivery log. Parse the form, call web.monitoring_forms,
render."""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from ccbb.schedule_rules import FREQUENCIES, WEEKDAYS
from notify import alerts
from store import monitoring as store_monitoring
from web import confirmation, fields
from web.monitoring_forms import (
    FormProblems,
    add_channel,
    channel_json,
    delivery_json,
    parse_rule,
    save_schedule,
    schedule_json,
)
from web.settings_page import user_id
from web.templating import render

SAVED = "Schedule saved."
ADDED = "Alert channel added."
DELETED = "Alert channel deleted."
TEST_QUEUED = "Test message queued: its delivery shows below within a few seconds."
ALERT_ON_LABELS = {"broken": "Newly broken only", "broken_and_recovered": "Broken and recovered"}
FREQUENCY_LABELS = {"off": "Off", "daily": "Daily", "weekly": "Weekly", "monthly": "Monthly"}


async def _page(request: Request, status: int = 200, **extra: Any) -> Response:
    uid = user_id(request)
    async with request.app.state.sessions() as session:
        sites = await store_monitoring.latest_scans_per_site(session, user_id=uid)
        schedules = {
            (s.site, s.marketplace): schedule_json(s)
            for s in await store_monitoring.list_schedules(session, user_id=uid)
        }
        channels = []
        for row in await store_monitoring.list_channels(session, user_id=uid):
            assert row.id is not None
            log = await store_monitoring.list_deliveries(session, channel_id=row.id, limit=10)
            channels.append({**channel_json(row), "deliveries": [delivery_json(d) for d in log]})
    ctx = {
        "sites": [
            {
                "scan_id": s.id,
                "site": s.site,
                "marketplace": s.marketplace,
                "schedule": schedules.get((s.site, s.marketplace)),
            }
            for s in sites
        ],
        "channels": channels,
        "frequencies": [(f, FREQUENCY_LABELS[f]) for f in FREQUENCIES],
        "weekdays": list(enumerate(WEEKDAYS)),
        "alert_on": list(ALERT_ON_LABELS.items()),
        "message": request.query_params.get("done")
        and {
            "saved": SAVED,
            "added": ADDED,
            "deleted": DELETED,
            "test": TEST_QUEUED,
        }.get(request.query_params["done"]),
        **extra,
    }
    return render(request, "monitoring.html", ctx, status)


async def monitoring(request: Request) -> Response:
    return await _page(request)


async def schedule(request: Request) -> Response:
    form = dict(await request.form())
    try:
        rule = parse_rule(form)
        await save_schedule(
            request.app.state,
            user_id=user_id(request),
            scan_id=int(str(form.get("scan_id", "0")) or 0),
            rule=rule,
        )
    except FormProblems as exc:
        return await _page(request, 400, errors=exc.fields, error=str(exc))
    except confirmation.EmailNotConfirmed as exc:
        return await _page(request, 403, error=str(exc))
    return RedirectResponse("/monitoring?done=saved", status_code=303)


async def channel_add(request: Request) -> Response:
    form = dict(await request.form())
    try:
        made = await add_channel(request.app.state, user_id=user_id(request), form=form)
    except FormProblems as exc:
        return await _page(request, 400, channel_errors=exc.fields, channel_form=form)
    if made.secret:  # shown this once
        return await _page(request, 201, new_secret=made.secret, message=ADDED)
    return RedirectResponse("/monitoring?done=added", status_code=303)


NO_CHANNEL = "No such alert channel."


async def channel_delete(request: Request) -> Response:
    async with request.app.state.sessions() as session:
        deleted = await store_monitoring.delete_channel(
            session, channel_id=fields.path_id(request, "channel_id"), user_id=user_id(request)
        )
    if not deleted:  # none, or another account's: the same answer
        raise HTTPException(status_code=404, detail=NO_CHANNEL)
    return RedirectResponse("/monitoring?done=deleted", status_code=303)


async def channel_test(request: Request) -> Response:
    async with request.app.state.sessions() as session:
        row = await store_monitoring.get_channel(
            session, channel_id=fields.path_id(request, "channel_id"), user_id=user_id(request)
        )
    if row is None:
        raise HTTPException(status_code=404, detail=NO_CHANNEL)
    await alerts.queue_test(request.app.state, row)
    return RedirectResponse("/monitoring?done=test", status_code=303)


routes = [
    Route("/monitoring", monitoring),
    Route("/monitoring/schedule", schedule, methods=["POST"]),
    Route("/monitoring/channels", channel_add, methods=["POST"]),
    Route("/monitoring/channels/{channel_id:int}/delete", channel_delete, methods=["POST"]),
    Route("/monitoring/channels/{channel_id:int}/test", channel_test, methods=["POST"]),
]
