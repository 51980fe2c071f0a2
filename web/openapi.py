"""The OpenAPI 3.1 document of the JSON API, built from the routes' own pydantic models, so the
document and the API cannot drift apart (a test also validates it and checks every route)."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import models_json_schema
from starlette.requests import Request
from starlette.responses import Response

_REF = "#/components/schemas/{model}"
_ERROR_TEXT = {
    400: "Bad request (invalid_json, invalid_query)",
    401: "No valid API token (unauthenticated)",
    402: "No scan credits left (no_credits): buy credits on the Billing page",
    403: "Confirm your e-mail address first (email_not_confirmed)",
    404: "No such scan of yours (not_found)",
    409: "Not possible now (scan_not_finished, scan_failed, too_many_active_scans)",
    422: "Invalid fields (invalid_scan), with a message per field",
    429: "Too many calls (rate_limited): wait the Retry-After seconds",
}


class ErrorOut(BaseModel):
    error: str = Field(description="stable code: not_found, invalid_scan, unauthenticated…")
    message: str = Field(description="what went wrong and what to do, for a human")
    fields: dict[str, str] | None = Field(
        default=None, description="invalid_scan: a message per field"
    )


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ReportLinkOut(_Strict):
    href: str = Field(description="the link as written on the page")
    page: str
    kind: str = Field(description="direct | short | cloaked | widget")
    tag: str | None


class ReportProductOut(_Strict):
    asin: str
    marketplace: str
    title: str | None
    status: str = Field(description="available | removed | out_of_stock | error | not_checked")
    availability: str | None
    detail_page_url: str | None
    error: str | None = Field(description="why the status is error or not_checked")
    links: list[ReportLinkOut]


class FailedPageOut(_Strict):
    url: str
    status: int | None
    error: str
    linked_from: list[str] = Field(description="the first scanned pages that link to it")


class UnresolvedLinkOut(_Strict):
    href: str
    page: str
    kind: str
    error: str


class ReportOut(_Strict):
    """The report, as ``ccbb scan --format json`` prints it (keys may be added, never renamed)."""

    site: str
    marketplace: str
    partner_tag: str | None = None
    started_at: str
    finished_at: str
    summary: dict[str, Any] = Field(
        description="urls_scanned, total_products, total_links, unique_links, by_status, tag_audit"
    )
    notes: list[str] = Field(
        description="what the user should know about the scan, e.g. that a bare domain was "
        "scanned over http:// because https:// did not work"
    )
    products: list[ReportProductOut]
    pages_failed: list[FailedPageOut]
    unresolved_links: list[UnresolvedLinkOut]
    truncated: bool
    stats: dict[str, Any]


class ProductChangeOut(_Strict):
    asin: str
    marketplace: str
    title: str | None
    before: str | None = Field(description="status in the previous scan (null: not on the site)")
    after: str | None = Field(description="status now (null: no longer on the site)")
    reason: str | None
    pages: int = Field(description="pages of the site that link to it")


class TagChangeOut(_Strict):
    page: str
    asin: str
    marketplace: str
    href: str = Field(description="the link as it appears now")
    tag: str | None = Field(description="the tag it carries now (null: none)")


class ChangeListsOut(_Strict):
    counts: dict[str, int] = Field(
        description="newly_out_of_stock, newly_removed, newly_error, recovered, new_products, "
        "gone_products, lost_tag, other_tag, newly_failed_pages"
    )
    newly_broken: list[ProductChangeOut]
    recovered: list[ProductChangeOut]
    new_products: list[ProductChangeOut]
    gone_products: list[ProductChangeOut]
    lost_tag: list[TagChangeOut]
    other_tag: list[TagChangeOut]
    newly_failed_pages: list[FailedPageOut]


class PreviousScanOut(_Strict):
    id: int | None = Field(description="null when that scan was deleted since")
    finished_at: str


class ChangesOut(_Strict):
    """What changed since the previous finished scan of the same site and marketplace; all
    null when there was none (the site's first scan) or the scan is not done."""

    scan_id: int
    previous_scan: PreviousScanOut | None
    summary: str | None = Field(description='"Since scan #41 on 3 March: 3 newly out of stock…"')
    changes: ChangeListsOut | None


Endpoint = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True)
class Operation:
    method: str
    path: str  # under /api/v1, with {scan_id}
    endpoint: Endpoint
    summary: str
    response: type[BaseModel] | None  # None: no body (204) or text (``media``)
    body: type[BaseModel] | None = None
    status: int = 200
    errors: tuple[int, ...] = ()
    query: tuple[str, ...] = ()
    media: str = "application/json"  # of the response
    # added for the credits API (web.credits_api): "bearer", "basic" or "none"; its own path
    # prefix; its own error model and words; request headers it reads (Idempotency-Key)
    auth: str = "bearer"
    prefix: str | None = None
    error_model: type[BaseModel] | None = None
    error_text: dict[int, str] | None = None
    headers: tuple[str, ...] = ()


_QUERY: dict[str, dict[str, Any]] = {
    "limit": {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1,
              "maximum": 100, "default": 20}},
    "offset": {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0,
               "default": 0}},
    # the affiliate statistics' period (web.affiliate_api)
    "from": {"name": "from", "in": "query", "description": "first UTC day, YYYY-MM-DD (default: "
             "29 days before to)", "schema": {"type": "string", "format": "date"}},
    "to": {"name": "to", "in": "query", "description": "last UTC day, YYYY-MM-DD (default: "
           "today)", "schema": {"type": "string", "format": "date"}},
}  # fmt: skip


def document(operations: Sequence[Operation], prefix: str = "/api/v1") -> dict[str, Any]:
    models: set[type[BaseModel]] = {ErrorOut}
    for op in operations:
        models |= ({op.response} if op.response else set()) | ({op.body} if op.body else set())
        models |= {op.error_model} if op.error_model else set()
    _, top = models_json_schema(
        [(m, "serialization") for m in sorted(models, key=lambda m: m.__name__)],
        ref_template=_REF,
    )
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        path = (op.prefix if op.prefix is not None else prefix) + op.path
        error_text = op.error_text or _ERROR_TEXT
        error_codes = {"bearer": (401, *op.errors, 429), "basic": (401, *op.errors)}.get(
            op.auth, op.errors
        )
        item: dict[str, Any] = {
            "summary": op.summary,
            "operationId": op.endpoint.__name__,
            "security": [] if op.auth == "none" else [{op.auth: []}],
            "responses": {
                str(op.status): _success(op),
                **{
                    str(code): {
                        "description": error_text[code],
                        "content": {
                            "application/json": {"schema": _ref(op.error_model or ErrorOut)}
                        },
                    }
                    for code in error_codes
                },
            },
        }
        parameters: list[dict[str, Any]] = [_QUERY[name] for name in op.query]
        for name in re.findall(r"{(\w+)}", path):
            kind = "integer" if name in ("scan_id", "channel_id") else "string"
            parameters.append(
                {"name": name, "in": "path", "required": True, "schema": {"type": kind}}
            )
        for name in op.headers:
            parameters.append(
                {"name": name, "in": "header", "required": False, "schema": {"type": "string"},
                 "description": "a repeat with the same key answers the first result and "
                 "changes nothing"}
            )  # fmt: skip
        if parameters:
            item["parameters"] = parameters
        if op.body is not None:
            item["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": _ref(op.body)}},
            }
        paths.setdefault(path, {})[op.method.lower()] = item
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "ClickClickBankBank API",
            "version": "1",
            "description": "Scan your site's Amazon links and read the reports. Authenticate "
            "with a personal API token (Settings → API tokens) as 'Authorization: Bearer "
            "<token>'. Errors are JSON {error, message}.",
        },
        "paths": paths,
        "components": {
            "schemas": top.get("$defs", {}),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "basic": {
                    "type": "http",
                    "scheme": "basic",
                    "description": "CCBB_MERCHANT_ID:CCBB_MERCHANT_API_KEY",
                },
            },
        },
    }


def _success(op: Operation) -> dict[str, Any]:
    if op.response is not None:
        return {"description": "OK", "content": {op.media: {"schema": _ref(op.response)}}}
    if op.status == 204:
        return {"description": "Done: nothing to return"}
    return {"description": "OK", "content": {op.media: {"schema": {"type": "string"}}}}


def _ref(model: type[BaseModel]) -> dict[str, Any]:
    return {"$ref": _REF.format(model=model.__name__)}
