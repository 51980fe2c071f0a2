"""The JSON API under ``/api/v1``, for scripts: create a scan, list scans, a scan's progress,
cancel, and the report in the shape ``ccbb scan --format json`` prints.

Callers authenticate with a personal API token (``Authorization: Bearer ccbb_…``, made in
Settings); the :class:`web.app.AuthGate` puts its owner in ``scope["user"]``. Every error is
JSON ``{"error": code, "message": text}`` with a stable code. A scan id of another user is
404, as on the pages. The OpenAPI document is built from the same models (:mod:`web.openapi`).
"""

from __future__ import annotations

import math
import time
from datetime import datetime
from typing import Annotated, Any

from limits import parse_many
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from ccbb import jobs
from scanner.report import iter_json
from store import credentials as store_credentials
from store import monitoring as store_monitoring
from store import scans as store_scans
from store import tokens as store_tokens
from store.models import ACTIVE_STATES, Scan, ScanState, utcnow
from web import (
    affiliate_api,
    confirmation,
    credits_api,
    fields,
    monitoring_api,
    openapi,
    report_page,
)
from web import changes as web_changes
from web import scans as scans_page
from web.fields import MAX_LENGTHS as MAX
from web.new_scan import (
    MAX_PREFIXES,
    NoCredits,
    TooManyActiveScans,
    check_scan_form,
    queue_scan,
)
from web.settings_page import user_id

PREFIX = "/api/v1"
MAX_LIMIT = 100
ACTIVE = tuple(s.value for s in ACTIVE_STATES)


class ApiError(HTTPException):
    """An error answered as ``{"error": code, "message": message, **extra}``."""

    def __init__(self, status_code: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(status_code=status_code, detail=message)
        self.code = code
        self.extra = extra


# ---- the models (also the OpenAPI schemas) ------------------------------------------------


class ScanIn(BaseModel):
    """A new scan. Give either ``saved_credential`` (the id of credentials saved in Settings)
    or ``credential_id`` + ``credential_secret`` (+ ``credential_version``), which are then
    saved, encrypted, for re-runs."""

    # strict: JSON types as written (true is not 1, "5" is not 5)
    model_config = ConfigDict(extra="forbid", strict=True)

    site: str = Field(
        max_length=MAX["site"], description="your site; a bare domain becomes https://domain/"
    )
    partner_tag: str = Field(
        max_length=MAX["partner_tag"], description="your tracking ID, such as yourname-20"
    )
    country: str = Field(
        default="US", max_length=8, description="Amazon country of the credentials"
    )
    saved_credential: int | None = None
    credential_id: str | None = Field(default=None, max_length=MAX["credential_id"])
    credential_secret: str | None = Field(
        default=None, max_length=MAX["secret"], json_schema_extra={"writeOnly": True}
    )
    credential_version: str = Field(default="2.1", max_length=8)
    credential_tps: float = Field(
        default=1.0, description="requests per second Amazon allows typed-in credentials"
    )
    cloak_prefixes: list[Annotated[str, StringConstraints(max_length=MAX["cloak_prefix"])]] = Field(
        default_factory=list,
        max_length=MAX_PREFIXES,
        description="URL prefixes of your cloaked links, e.g. /go/",
    )
    max_pages: int | None = Field(default=None, description="page budget (default 10,000)")


class ProgressOut(BaseModel):
    state: str = Field(description="queued | running | done | failed | cancelled")
    phase: str
    pages_crawled: int
    pages_discovered: int
    products_found: int
    products_checked: int
    elapsed_seconds: float | None


class ScanOut(BaseModel):
    id: int
    site: str
    marketplace: str
    partner_tag: str | None
    state: str
    error: str | None = Field(description="why a failed scan failed")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    progress: ProgressOut
    summary: dict[str, Any] | None = Field(description="the report's summary, once done")


class CredentialOut(BaseModel):
    """Saved Amazon credentials (their secret never leaves the server)."""

    id: int = Field(description="what a new scan's saved_credential takes")
    label: str
    credential_id: str
    version: str
    country: str
    partner_tag: str
    tps: float = Field(description="requests per second its scans make")


class CredentialListOut(BaseModel):
    credentials: list[CredentialOut]


class ScanListOut(BaseModel):
    scans: list[ScanOut]
    next_offset: int | None = Field(description="offset of the next page; null on the last")


# ---- rate limit ---------------------------------------------------------------------------


class ApiRateLimit:
    """Calls per user over a moving window (``CCBB_API_RATE``), counted in Redis by the
    ``limits`` library, so every web process shares the count."""

    def __init__(self, redis_url: str, rate: str) -> None:
        scheme, rest = redis_url.split("://", 1)
        prefix = {"redis": "async+redis", "rediss": "async+rediss", "unix": "async+redis+unix"}
        storage = RedisStorage(
            f"{prefix[scheme]}://{rest}", implementation="redispy", key_prefix="ccbb:api-rate"
        )
        self._limiter = MovingWindowRateLimiter(storage)
        self._items = parse_many(rate)

    async def wait(self, user_id: int) -> float | None:
        """None if the user may make this call (it is counted), else the seconds to wait."""
        key = str(user_id)
        for item in self._items:
            if not await self._limiter.hit(item, key):
                stats = await self._limiter.get_window_stats(item, key)
                return max(1.0, stats.reset_time - time.time())
        return None


def rate_limited(wait: float) -> JSONResponse:
    seconds = math.ceil(wait)
    return JSONResponse(
        {
            "error": "rate_limited",
            "message": f"Too many API calls: wait {seconds} s (see Retry-After), then go on.",
        },
        status_code=429,
        headers={"Retry-After": str(seconds)},
    )


# ---- authentication -----------------------------------------------------------------------


async def bearer_user(request: Request) -> Any:
    """The owner of the request's bearer token, or None."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    async with request.app.state.sessions() as session:
        return await store_tokens.user_for_token(session, token=token.strip())


def unauthenticated() -> JSONResponse:
    return JSONResponse(
        {
            "error": "unauthenticated",
            "message": "Send a personal API token as 'Authorization: Bearer <token>' "
            "(create one in Settings → API tokens).",
        },
        status_code=401,
        headers={"WWW-Authenticate": "Bearer"},
    )


def error_response(request: Request, exc: Exception) -> JSONResponse:
    """Any error under /api/ as JSON (registered on the app for HTTPException and 500s)."""
    if isinstance(exc, ApiError):
        body = {"error": exc.code, "message": exc.detail, **exc.extra}
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)
    if isinstance(exc, HTTPException):
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        message = {
            404: "No such resource: check the URL and the id (scans of other users are not "
            "visible).",
            405: f"{request.method} is not allowed here.",
        }.get(exc.status_code, str(exc.detail))
        return JSONResponse(
            {"error": code, "message": message}, status_code=exc.status_code, headers=exc.headers
        )
    return JSONResponse(
        {"error": "internal_error", "message": "Something went wrong on our side; try again."},
        status_code=500,
    )


# ---- routes -------------------------------------------------------------------------------


def _progress(scan: Scan, live: dict[str, str | int] | None) -> ProgressOut:
    values: dict[str, Any] = {
        "phase": scan.phase,
        "pages_crawled": scan.pages_crawled,
        "pages_discovered": scan.pages_discovered,
        "products_found": scan.products_found,
        "products_checked": scan.products_checked,
    }
    if live and scan.state in ACTIVE:
        values |= live
    elapsed = None
    if scan.started_at is not None:
        elapsed = round(((scan.finished_at or utcnow()) - scan.started_at).total_seconds(), 1)
    return ProgressOut(state=scan.state, elapsed_seconds=elapsed, **values)


def _scan_out(scan: Scan, live: dict[str, str | int] | None) -> ScanOut:
    assert scan.id is not None
    return ScanOut(
        id=scan.id,
        site=scan.site,
        marketplace=scan.marketplace,
        partner_tag=scan.partner_tag,
        state=scan.state,
        error=scan.error,
        created_at=scan.created_at,
        started_at=scan.started_at,
        finished_at=scan.finished_at,
        progress=_progress(scan, live),
        summary=scan.summary,
    )


def _json(model: BaseModel, status_code: int = 200) -> Response:
    return Response(model.model_dump_json(), status_code=status_code, media_type="application/json")


async def _own_scan(request: Request) -> Scan:
    async with request.app.state.sessions() as session:
        scan = await store_scans.get_scan(
            session, scan_id=fields.path_id(request, "scan_id"), user_id=user_id(request)
        )
    if scan is None:
        raise ApiError(404, "not_found", "No such scan (scans of other users are not visible).")
    return scan


async def _live(request: Request, scans: list[Scan]) -> dict[int, dict[str, str | int]]:
    ids = [s.id for s in scans if s.id is not None and s.state in ACTIVE]
    return await jobs.read_progress(request.app.state.redis, ids)


async def list_scans(request: Request) -> Response:
    limit = _query_int(request, "limit", 20, 1, MAX_LIMIT)
    offset = _query_int(request, "offset", 0, 0, 10**9)
    async with request.app.state.sessions() as session:
        scans = await store_scans.list_scans(
            session, user_id=user_id(request), limit=limit + 1, offset=offset
        )
    more = len(scans) > limit
    scans = scans[:limit]
    live = await _live(request, scans)
    out = ScanListOut(
        scans=[_scan_out(s, live.get(s.id or 0)) for s in scans],
        next_offset=offset + limit if more else None,
    )
    return _json(out)


def _query_int(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise ApiError(
            400, "invalid_query", f"'{name}' must be a whole number from {low} to {high}."
        )
    return value


# ScanIn field → the New Scan form's field (whose messages check_scan_form writes)
_FORM_FIELDS = {
    "site": "domain",
    "partner_tag": "partner_tag",
    "country": "country",
    "saved_credential": "saved_credential",
    "credential_id": "credential_id",
    "credential_secret": "secret",
    "credential_version": "version",
    "credential_tps": "tps",
    "cloak_prefixes": "cloak_prefixes",
    "max_pages": "max_pages",
}
_API_FIELDS = {form: api for api, form in _FORM_FIELDS.items()}


async def create_scan(request: Request) -> Response:
    try:
        body = await request.json()
    except (ValueError, RecursionError):  # RecursionError: nested deeper than json can read
        raise ApiError(400, "invalid_json", "The request body is not JSON.") from None
    try:
        scan_in = ScanIn.model_validate(body)
    except ValidationError as exc:
        fields = {
            ".".join(str(p) for p in e["loc"]) or "body": e["msg"]
            for e in exc.errors(include_url=False, include_input=False)
        }
        raise ApiError(
            422, "invalid_scan", "Fix the fields listed in 'fields'.", fields=fields
        ) from None
    form = {
        "domain": scan_in.site.strip(),
        "partner_tag": scan_in.partner_tag.strip(),
        "country": scan_in.country.strip().upper(),
        "saved_credential": ""
        if scan_in.saved_credential is None
        else str(scan_in.saved_credential),
        "credential_id": (scan_in.credential_id or "").strip(),
        "secret": (scan_in.credential_secret or "").strip(),
        "version": scan_in.credential_version.strip(),
        "tps": str(scan_in.credential_tps),
        "cloak_prefixes": "\n".join(scan_in.cloak_prefixes),
        "max_pages": _text(scan_in.max_pages),
    }
    state = request.app.state
    async with state.sessions() as session:
        saved = await store_credentials.list_credentials(session, user_id=user_id(request))
    req, errors = check_scan_form(form, saved)
    if req is None:
        fields = {_API_FIELDS.get(k, k): v for k, v in errors.items()}
        raise ApiError(422, "invalid_scan", "Fix the fields listed in 'fields'.", fields=fields)
    try:
        scan = await queue_scan(state, user_id=user_id(request), req=req)
    except TooManyActiveScans as exc:
        raise ApiError(409, "too_many_active_scans", str(exc)) from None
    except confirmation.EmailNotConfirmed as exc:
        raise ApiError(403, "email_not_confirmed", str(exc)) from None
    except NoCredits as exc:
        raise ApiError(402, "no_credits", str(exc), balance=exc.balance) from None
    assert scan.id is not None
    return _json(_scan_out(scan, None), status_code=201)


def _text(value: int | None) -> str:
    return "" if value is None else str(value)


async def get_scan(request: Request) -> Response:
    scan = await _own_scan(request)
    live = await _live(request, [scan])
    return _json(_scan_out(scan, live.get(scan.id or 0)))


async def get_progress(request: Request) -> Response:
    scan = await _own_scan(request)
    live = await _live(request, [scan])
    return _json(_progress(scan, live.get(scan.id or 0)))


async def cancel_scan(request: Request) -> Response:
    scan = await _own_scan(request)
    assert scan.id is not None
    if scan.state in ACTIVE:
        await jobs.cancel_scan(request.app.state.sessions, request.app.state.redis, scan.id)
        scan = await _own_scan(request)
    return _json(_scan_out(scan, None))


async def get_report(request: Request) -> Response:
    scan = await _own_scan(request)
    assert scan.id is not None
    if scan.state in ACTIVE:
        raise ApiError(
            409,
            "scan_not_finished",
            f"The scan is {scan.state}: its report is ready when it is done (poll its progress).",
        )
    if scan.state == ScanState.FAILED.value:
        raise ApiError(409, "scan_failed", f"The scan failed: {scan.error or 'no reason given'}.")
    async with request.app.state.sessions() as session:
        report = await store_scans.load_report(session, scan_id=scan.id, user_id=user_id(request))
    return StreamingResponse(
        iter_json(report),
        media_type="application/json",
        headers={"Content-Disposition": f'inline; filename="scan-{scan.id}.json"'},
    )


async def export_csv(request: Request) -> Response:
    scan = await _own_scan(request)
    if scan.state not in report_page.EXPORTABLE:
        raise ApiError(
            409, "scan_not_finished", f"The scan is {scan.state}: its CSV is ready when it is done."
        )
    query, _ = report_page.table_query(request)
    return report_page.csv_response(request, scan, query)


async def delete_scan(request: Request) -> Response:
    scan = await _own_scan(request)
    assert scan.id is not None
    await scans_page.delete_scan(request, scan.id, scan.state)
    return Response(status_code=204)


async def get_changes(request: Request) -> Response:
    scan = await _own_scan(request)
    assert scan.id is not None
    async with request.app.state.sessions() as session:
        row = await store_monitoring.get_changes(session, scan_id=scan.id)
    return _json(openapi.ChangesOut.model_validate(web_changes.api_json(scan.id, row)))


async def list_credentials(request: Request) -> Response:
    async with request.app.state.sessions() as session:
        saved = await store_credentials.list_credentials(session, user_id=user_id(request))
    out = CredentialListOut(
        credentials=[CredentialOut.model_validate(c, from_attributes=True) for c in saved]
    )
    return _json(out)


async def openapi_json(request: Request) -> Response:
    return JSONResponse(
        openapi.document(
            [
                *ROUTES,
                *credits_api.OPERATIONS,
                *monitoring_api.OPERATIONS,
                *affiliate_api.OPERATIONS,
            ]
        )
    )


ROUTES = [
    openapi.Operation("GET", "/scans", list_scans, "List your scans, newest first",
                      response=ScanListOut, query=("limit", "offset")),
    openapi.Operation("POST", "/scans", create_scan, "Create and queue a scan",
                      body=ScanIn, response=ScanOut, status=201, errors=(400, 402, 403, 409, 422)),
    openapi.Operation("GET", "/scans/{scan_id}", get_scan, "A scan: state, progress, summary",
                      response=ScanOut, errors=(404,)),
    openapi.Operation("GET", "/scans/{scan_id}/progress", get_progress, "A scan's live progress",
                      response=ProgressOut, errors=(404,)),
    openapi.Operation("POST", "/scans/{scan_id}/cancel", cancel_scan,
                      "Cancel a queued or running scan (what it found is kept)",
                      response=ScanOut, errors=(404,)),
    openapi.Operation("GET", "/scans/{scan_id}/report", get_report,
                      "The report, in the JSON shape of `ccbb scan --format json`",
                      response=openapi.ReportOut, errors=(404, 409)),
    openapi.Operation("GET", "/scans/{scan_id}/export.csv", export_csv,
                      "The report as CSV, the shape of `ccbb scan --format csv` (columns page, "
                      "href, kind, tag, asin, marketplace, title, status, availability, error); "
                      "the dashboard's filters work here too (status, asin, name, page_url)",
                      response=None, media="text/csv", errors=(404, 409)),
    openapi.Operation("DELETE", "/scans/{scan_id}", delete_scan,
                      "Delete a scan and everything it found (a running one is cancelled first)",
                      response=None, status=204, errors=(404,)),
    openapi.Operation("GET", "/scans/{scan_id}/changes", get_changes,
                      "What changed since the previous scan of the same site and marketplace",
                      response=openapi.ChangesOut, errors=(404,)),
    openapi.Operation("GET", "/credentials", list_credentials,
                      "Your saved Amazon credentials (add them in Settings)",
                      response=CredentialListOut),
]  # fmt: skip

routes = [
    Route(PREFIX + "/openapi.json", openapi_json),
    *(
        Route(
            PREFIX + op.path.replace("{scan_id}", "{scan_id:int}"), op.endpoint, methods=[op.method]
        )
        for op in ROUTES
    ),
]
