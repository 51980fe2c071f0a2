"""The JSON API of monitoring: schedules (``GET/PUT /api/v1/schedules``) and alert channels
(``/api/v1/alert-channels``: list, add, delete, test, delivery log). Bearer tokens as the
rest of the API (web.api); errors are ``{"error", "message"[, "fields"]}``. Listed in the
OpenAPI document through :data:`OPERATIONS`."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from notify import alerts
from store import monitoring as store_monitoring
from web import confirmation, fields, openapi
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

V1 = "/api/v1"
NO_SITE = "No finished scan of this site and marketplace: scan it once first."
NO_CHANNEL = "No such alert channel (channels of other users are not visible)."


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ScheduleIn(_Strict):
    site: str = Field(description="the site as its scans name it, e.g. https://example.com/")
    marketplace: str = "www.amazon.com"
    frequency: str = Field(description="off | daily | weekly | monthly")
    weekday: int = Field(0, description="weekly: 0 = Monday … 6 = Sunday")
    day_of_month: int = Field(1, description="monthly: 1–28")
    hour: int = Field(6, description="0–23, in time_zone")
    time_zone: str = Field("UTC", description="an IANA name: Europe/Paris, America/New_York…")


class ScheduleOut(BaseModel):
    id: int
    site: str
    marketplace: str
    frequency: str
    weekday: int
    day_of_month: int
    hour: int
    time_zone: str
    description: str
    next_due_at: str | None = Field(description="null when off or paused")
    paused_reason: str | None
    last_outcome: str | None
    last_scan_id: int | None


class ScheduleListOut(BaseModel):
    schedules: list[ScheduleOut]


class ChannelIn(_Strict):
    kind: str = Field(description="email | slack | webhook")
    target: str = Field(description="the address, the Slack incoming webhook URL or your URL")
    alert_on: str = Field("broken", description="broken | broken_and_recovered")
    weekly_summary: bool = False


class ChannelOut(BaseModel):
    id: int
    kind: str
    label: str = Field(description="the address, or the URL masked")
    alert_on: str
    weekly_summary: bool
    enabled: bool
    created_at: str


class ChannelCreatedOut(ChannelOut):
    signing_secret: str | None = Field(
        description="webhooks: the HMAC-SHA256 secret of the CCBB-Signature header, shown once"
    )


class ChannelListOut(BaseModel):
    channels: list[ChannelOut]


class DeliveryOut(BaseModel):
    id: int
    event_id: str
    event: str
    state: str = Field(description="pending | retrying | delivered | failed")
    attempts: int
    last_status: int | None
    last_error: str | None
    created_at: str
    delivered_at: str | None


class DeliveryListOut(BaseModel):
    deliveries: list[DeliveryOut]


def _error(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": code, "message": message, **extra}, status_code=status)


async def _body(request: Request, model: type[BaseModel]) -> BaseModel | JSONResponse:
    try:
        return model.model_validate(await request.json())
    except ValueError as exc:
        if isinstance(exc, ValidationError):
            fields = {
                ".".join(str(p) for p in e["loc"]) or "body": e["msg"]
                for e in exc.errors(include_url=False, include_input=False)
            }
            return _error(
                422, "invalid_fields", "Fix the fields listed in 'fields'.", fields=fields
            )
        return _error(400, "invalid_json", "The request body is not JSON.")


async def list_schedules(request: Request) -> Response:
    async with request.app.state.sessions() as session:
        rows = await store_monitoring.list_schedules(session, user_id=user_id(request))
    return JSONResponse({"schedules": [schedule_json(r) for r in rows]})


async def put_schedule(request: Request) -> Response:
    body = await _body(request, ScheduleIn)
    if isinstance(body, JSONResponse):
        return body
    assert isinstance(body, ScheduleIn)
    uid = user_id(request)
    async with request.app.state.sessions() as session:
        sites = await store_monitoring.latest_scans_per_site(session, user_id=uid)
    scan = next(
        (s for s in sites if (s.site, s.marketplace) == (body.site, body.marketplace)), None
    )
    if scan is None or scan.id is None:
        return _error(422, "invalid_fields", NO_SITE, fields={"site": NO_SITE})
    try:
        rule = parse_rule(body.model_dump())
        row = await save_schedule(request.app.state, user_id=uid, scan_id=scan.id, rule=rule)
    except FormProblems as exc:
        return _error(
            422, "invalid_fields", "Fix the fields listed in 'fields'.", fields=exc.fields
        )
    except confirmation.EmailNotConfirmed as exc:
        return _error(403, "email_not_confirmed", str(exc))
    return JSONResponse(schedule_json(row))


async def list_channels(request: Request) -> Response:
    async with request.app.state.sessions() as session:
        rows = await store_monitoring.list_channels(session, user_id=user_id(request))
    return JSONResponse({"channels": [channel_json(r) for r in rows]})


async def create_channel(request: Request) -> Response:
    body = await _body(request, ChannelIn)
    if isinstance(body, JSONResponse):
        return body
    try:
        made = await add_channel(
            request.app.state, user_id=user_id(request), form=body.model_dump()
        )
    except FormProblems as exc:
        return _error(
            422, "invalid_fields", "Fix the fields listed in 'fields'.", fields=exc.fields
        )
    return JSONResponse({**channel_json(made.row), "signing_secret": made.secret}, status_code=201)


async def _own_channel(request: Request) -> Any:
    async with request.app.state.sessions() as session:
        return await store_monitoring.get_channel(
            session, channel_id=fields.path_id(request, "channel_id"), user_id=user_id(request)
        )


async def delete_channel(request: Request) -> Response:
    async with request.app.state.sessions() as session:
        gone = await store_monitoring.delete_channel(
            session, channel_id=fields.path_id(request, "channel_id"), user_id=user_id(request)
        )
    if not gone:
        return _error(404, "not_found", NO_CHANNEL)
    return Response(status_code=204)


async def test_channel(request: Request) -> Response:
    row = await _own_channel(request)
    if row is None:
        return _error(404, "not_found", NO_CHANNEL)
    delivery_id = await alerts.queue_test(request.app.state, row)
    async with request.app.state.sessions() as session:
        delivery = await store_monitoring.get_delivery(session, delivery_id=delivery_id)
    return JSONResponse(delivery_json(delivery), status_code=202)


async def list_deliveries(request: Request) -> Response:
    row = await _own_channel(request)
    if row is None:
        return _error(404, "not_found", NO_CHANNEL)
    async with request.app.state.sessions() as session:
        log = await store_monitoring.list_deliveries(session, channel_id=row.id, limit=100)
    return JSONResponse({"deliveries": [delivery_json(d) for d in log]})


OPERATIONS = [
    openapi.Operation(
        "GET", "/schedules", list_schedules, "Your sites' schedules", response=ScheduleListOut
    ),
    openapi.Operation(
        "PUT",
        "/schedules",
        put_schedule,
        "Set a site's schedule (off / daily / weekly / monthly at an hour)",
        body=ScheduleIn,
        response=ScheduleOut,
        errors=(400, 403, 422),
    ),
    openapi.Operation(
        "GET", "/alert-channels", list_channels, "Your alert channels", response=ChannelListOut
    ),
    openapi.Operation(
        "POST",
        "/alert-channels",
        create_channel,
        "Add an alert channel (e-mail, Slack, signed webhook)",
        body=ChannelIn,
        response=ChannelCreatedOut,
        status=201,
        errors=(400, 422),
    ),
    openapi.Operation(
        "DELETE",
        "/alert-channels/{channel_id}",
        delete_channel,
        "Delete an alert channel",
        response=ChannelOut,
        status=204,
        errors=(404,),
    ),
    openapi.Operation(
        "POST",
        "/alert-channels/{channel_id}/test",
        test_channel,
        "Queue a test message to a channel",
        response=DeliveryOut,
        status=202,
        errors=(404,),
    ),
    openapi.Operation(
        "GET",
        "/alert-channels/{channel_id}/deliveries",
        list_deliveries,
        "A channel's delivery log, newest first",
        response=DeliveryListOut,
        errors=(404,),
    ),
]

routes = [
    Route(
        V1 + op.path.replace("{channel_id}", "{channel_id:int}"), op.endpoint, methods=[op.method]
    )
    for op in OPERATIONS
]
