"""The Monitoring page (``/monitoring``): each scanned site's schedule, the alert channels
with a test button and their delivery log. Parse the form, call web.monitoring_forms,
render."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from babel import Locale
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from ccbb.schedule_rules import FREQUENCIES
from notify import alerts
from store import monitoring as store_monitoring
from web import confirmation, fields, i18n
from web.i18n import N_, Translated, _
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

SAVED = N_("Schedule saved.")
ADDED = N_("Alert channel added.")
DELETED = N_("Alert channel deleted.")
TEST_QUEUED = N_("Test message queued: its delivery shows below within a few seconds.")
ALERT_ON_LABELS = Translated(
    {"broken": N_("Newly broken only"), "broken_and_recovered": N_("Broken and recovered")}
)
FREQUENCY_LABELS = Translated(
    {"off": N_("Off"), "daily": N_("Daily"), "weekly": N_("Weekly"), "monthly": N_("Monthly")}
)
KIND_LABELS = Translated({"email": N_("E-mail"), "slack": "Slack", "webhook": "Webhook"})
KIND_CHOICES = Translated(
    {
        "email": N_("E-mail"),
        "slack": N_("Slack incoming webhook"),
        "webhook": N_("Webhook (signed JSON)"),
    }
)
DELIVERY_STATES = Translated(
    {
        "queued": N_("queued"),
        "retrying": N_("retrying"),
        "delivered": N_("delivered"),
        "failed": N_("failed"),
    }
)


def weekdays() -> list[tuple[int, str]]:
    """Monday (0) to Sunday in the page's language, as Babel names them."""
    names = Locale.parse(i18n.current()).days["format"]["wide"]
    return [(n, names[n][:1].upper() + names[n][1:]) for n in range(7)]


def describe(schedule: dict[str, Any]) -> str:
    """A schedule in words, in the page's language (the API says it in English:
    ``ccbb.schedule_rules.describe``)."""
    values = {"hour": f"{schedule['hour']:02d}:00", "zone": schedule["time_zone"]}
    frequency = schedule["frequency"]
    if frequency == "daily":
        return _("every day at %(hour)s (%(zone)s)") % values
    if frequency == "weekly":
        day = Locale.parse(i18n.current()).days["format"]["wide"][schedule["weekday"]]
        return _("every %(weekday)s at %(hour)s (%(zone)s)") % {**values, "weekday": day}
    if frequency == "monthly":
        day_of_month = schedule["day_of_month"]
        return _("on day %(day)s of every month at %(hour)s (%(zone)s)") % {
            **values,
            "day": day_of_month,
        }
    return _("off")


def _when(iso: str | None) -> datetime | None:
    return datetime.fromisoformat(iso) if iso else None


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
            deliveries = [{**delivery_json(d), "created": d.created_at} for d in log]
            channels.append({**channel_json(row), "deliveries": deliveries})
    ctx = {
        "sites": [
            {
                "scan_id": s.id,
                "site": s.site,
                "marketplace": s.marketplace,
                "schedule": (found := schedules.get((s.site, s.marketplace))),
                "described": describe(found) if found else "",
                "next_due": _when(found["next_due_at"]) if found else None,
            }
            for s in sites
        ],
        "channels": channels,
        "frequencies": [(f, FREQUENCY_LABELS[f]) for f in FREQUENCIES],
        "weekdays": weekdays(),
        "alert_on": list(ALERT_ON_LABELS.items()),
        "kinds": list(KIND_LABELS.items()),
        "kind_choices": list(KIND_CHOICES.items()),
        "delivery_states": list(DELIVERY_STATES.items()),
        "message": request.query_params.get("done")
        and {
            "saved": _(SAVED),
            "added": _(ADDED),
            "deleted": _(DELETED),
            "test": _(TEST_QUEUED),
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
        # a problem of the site itself has no field to stand by: said at the top
        top = exc.fields.get("site") or _("Please correct the fields marked below.")
        return await _page(request, 400, errors=exc.fields, error=top)
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
        return await _page(request, 201, new_secret=made.secret, message=_(ADDED))
    return RedirectResponse("/monitoring?done=added", status_code=303)


NO_CHANNEL = N_("No such alert channel.")


async def channel_delete(request: Request) -> Response:
    async with request.app.state.sessions() as session:
        deleted = await store_monitoring.delete_channel(
            session, channel_id=fields.path_id(request, "channel_id"), user_id=user_id(request)
        )
    if not deleted:  # none, or another account's: the same answer
        raise HTTPException(status_code=404, detail=_(NO_CHANNEL))
    return RedirectResponse("/monitoring?done=deleted", status_code=303)


async def channel_test(request: Request) -> Response:
    async with request.app.state.sessions() as session:
        row = await store_monitoring.get_channel(
            session, channel_id=fields.path_id(request, "channel_id"), user_id=user_id(request)
        )
    if row is None:
        raise HTTPException(status_code=404, detail=_(NO_CHANNEL))
    await alerts.queue_test(request.app.state, row)
    return RedirectResponse("/monitoring?done=test", status_code=303)


routes = [
    Route("/monitoring", monitoring),
    Route("/monitoring/schedule", schedule, methods=["POST"]),
    Route("/monitoring/channels", channel_add, methods=["POST"]),
    Route("/monitoring/channels/{channel_id:int}/delete", channel_delete, methods=["POST"]),
    Route("/monitoring/channels/{channel_id:int}/test", channel_test, methods=["POST"]),
]
