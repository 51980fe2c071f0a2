"""New Scan: the form's checks (shared with the JSON API), storing the scan and queueing it.

:func:`check_scan_form` is pure: it turns the submitted fields into a :class:`ScanRequest` or
a message per field saying what to fix; :func:`queue_scan` stores and queues what it checked."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from billing import messages
from ccbb import jobs
from scanner.amazon_urls import marketplace_for_country
from scanner.urls import BadSiteUrl, SiteScope, cloak_prefix, is_bare_domain, normalize, site_url
from store import credentials as store_credentials
from store import credits as store_credits
from store import scans as store_scans
from store.crypto import SecretBox, SecretKeyError, mask
from store.models import AmazonCredential, Scan
from store.scans import NoCredits, TooManyActiveScans
from web import confirmation, fields
from web.auth import forget_user
from web.i18n import N_, _, number
from web.settings_page import (
    COUNTRIES,
    VERSIONS,
    credential_problems,
    parse_tps,
    tag_problem,
    user_id,
)
from web.templating import render

NOT_A_URL = N_("“%(site)s” is not a web address: give a domain such as example.com")
MAX_PAGES_LIMIT = 100_000
BILLING_LINK = {"href": "/billing", "text": messages.NO_CREDITS_LINK}
__all__ = ["NoCredits", "TooManyActiveScans", "check_scan_form", "queue_scan"]
MAX_PREFIXES = 50
FIELDS = (
    "domain", "saved_credential", "credential_id", "secret", "version", "country",
    "partner_tag", "cloak_prefixes", "max_pages", "tps",
)  # fmt: skip


@dataclass(frozen=True)
class ScanRequest:
    """A checked New Scan: what to store and queue."""

    site: str
    marketplace: str
    partner_tag: str
    options: dict[str, Any]
    saved: AmazonCredential | None  # one of the user's saved credentials…
    typed: dict[str, str] = field(default_factory=dict, repr=False)  # …or typed in (has the secret)


def cloak_prefixes(text: str, site: str | None) -> tuple[list[str], str | None]:
    """The cloaking prefixes (one per line) in normalised form, or the first problem."""
    out: list[str] = []
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) > MAX_PREFIXES:
        return [], _("Give at most %(count)s prefixes.") % {"count": MAX_PREFIXES}
    for line in lines:
        if len(line) > fields.MAX_LENGTHS["cloak_prefix"]:
            return [], fields.too_long_message(fields.MAX_LENGTHS["cloak_prefix"])
        raw = line
        if site is not None and raw.startswith("/"):
            raw = urljoin(site, raw)
        elif "://" not in raw:
            raw = "https://" + raw
        try:
            parts = urlsplit(raw)
            ok = parts.scheme in ("http", "https") and bool(parts.hostname)
            prefix = cloak_prefix(raw) if ok else ""
        except ValueError:
            ok, prefix = False, ""
        if not ok:
            problem = _("“%(line)s” is not a URL: write it as https://yoursite.com/go/")
            return [], problem % {"line": fields.shown(line)}
        if site is None:
            continue  # the domain has its own error
        if not SiteScope.of(site).contains(prefix):
            return [], _("“%(line)s” is not on %(host)s: give prefixes of your site.") % {
                "line": fields.shown(line),
                "host": urlsplit(site).hostname,
            }
        if prefix not in out:
            out.append(prefix)
    return out, None


def checked_site(raw: str) -> str:
    """The start URL of the site typed in, its host name checked and in ASCII (punycode).
    Raises BadSiteUrl or fields.BadHost with what to fix."""
    try:
        site = site_url(raw)
    except BadSiteUrl:
        raise
    except ValueError:  # what urlsplit raises itself ("Invalid IPv6 URL")
        raise BadSiteUrl(_(NOT_A_URL) % {"site": fields.shown(raw)}) from None
    parts = urlsplit(site)
    host = parts.hostname or ""
    ascii_name = fields.ascii_host(host)
    if ascii_name != host:
        netloc = ascii_name if parts.port is None else f"{ascii_name}:{parts.port}"
        site = normalize(urlunsplit((parts.scheme, netloc, parts.path, parts.query, "")))
    return site


def stored_problem(site: str, partner_tag: str) -> str | None:
    """What is wrong with a stored scan's site or tag (scans saved before these checks): a
    re-run checks them again, so that nothing unchecked reaches the worker."""
    try:
        checked_site(site)
    except (BadSiteUrl, fields.BadHost) as exc:
        return _("This scan's site cannot be scanned (%(why)s): start a New Scan.") % {
            "why": fields.shown(str(exc), 200)
        }
    if len(site) > fields.MAX_LENGTHS["site"] or tag_problem(partner_tag):
        return _("This scan's site or partner tag is not valid: start a New Scan.")
    return None


def check_scan_form(
    form: dict[str, str], saved: Sequence[AmazonCredential]
) -> tuple[ScanRequest | None, dict[str, str]]:
    """The New Scan fields (:data:`FIELDS`, as text) → the request, or a message per field."""
    errors: dict[str, str] = fields.too_long(form)
    site: str | None = None
    if "domain" not in errors:
        try:
            site = checked_site(form.get("domain", ""))
        except (BadSiteUrl, fields.BadHost) as exc:
            msg = str(exc)
            errors["domain"] = msg[:1].upper() + msg[1:] + ("" if msg.endswith(".") else ".")
    credential: AmazonCredential | None = None
    if form.get("saved_credential"):
        credential = next((c for c in saved if str(c.id) == form["saved_credential"]), None)
        if credential is None:
            errors["saved_credential"] = _("Choose one of your saved credentials.")
    else:
        for key, msg in credential_problems(form, need_tag=False).items():
            errors.setdefault(key, msg)
    country = form.get("country", "")
    if country not in COUNTRIES:
        errors["country"] = _("Choose the Amazon country of your credentials.")
    tag = form.get("partner_tag", "")
    if "partner_tag" not in errors and (problem := tag_problem(tag)):
        errors["partner_tag"] = problem
    prefixes, problem = cloak_prefixes(form.get("cloak_prefixes", ""), site)
    if problem:
        errors["cloak_prefixes"] = problem
    max_pages: int | None = None
    if form.get("max_pages") and "max_pages" not in errors:
        try:
            max_pages = int(form["max_pages"])
        except ValueError:
            errors["max_pages"] = _("Give a whole number of pages, or leave empty.")
        else:
            if not 1 <= max_pages <= MAX_PAGES_LIMIT:
                errors["max_pages"] = _("Give a number from 1 to %(limit)s.") % {
                    "limit": number(MAX_PAGES_LIMIT)
                }
    marketplace = marketplace_for_country(country) if country else None
    if marketplace is None and "country" not in errors:
        errors["country"] = _("Choose the Amazon country of your credentials.")
    if errors or site is None or marketplace is None:
        return None, errors
    tps = credential.tps if credential else parse_tps(form.get("tps", ""))[0]
    options: dict[str, Any] = {"cloak_prefixes": prefixes, "tps": tps}
    if is_bare_domain(form.get("domain", "")):
        options["http_fallback"] = True  # https:// first, then http:// (scanner.scan)
    if max_pages is not None:
        options["max_pages"] = max_pages
    typed = {} if credential else {k: form[k] for k in ("credential_id", "secret", "version")}
    return ScanRequest(
        site, marketplace, tag, options, credential, typed | {"country": country}
    ), {}


async def queue_scan(state: Any, *, user_id: int, req: ScanRequest) -> Scan:
    """Store the scan (and typed-in credentials, encrypted, for re-runs), pay for it with one
    credit (unless ``CCBB_CREDITS=off``) and queue it. ``state`` is the app's (sessions, redis,
    box, settings, catalogue). The plan's max pages is the scan's page budget. Raises
    TooManyActiveScans when the user already has ``settings.active_scans_per_user`` scans
    queued or running, NoCredits when they have no credit left."""
    box: SecretBox = state.box
    await confirmation.check_confirmed(state, user_id=user_id)  # raises EmailNotConfirmed
    settings = state.settings
    cap = settings.active_scans_per_user
    async with state.sessions() as session:
        # a first look, so that a refused scan saves no typed-in credentials; the creation
        # below checks both again under the user's lock (store.scans.create_scan_spending_credit)
        active = len(await store_scans.list_active_ids(session, user_id=user_id))
        if active >= cap:
            raise TooManyActiveScans(active=active, cap=cap)
        account = await store_credits.get_account(session, user_id=user_id)
        await session.commit()
        if settings.credits_enabled and (account is None or account.balance < 1):
            raise NoCredits(balance=0)
        options = dict(req.options)
        if settings.credits_enabled:
            budget = state.catalogue.max_pages_for(account.live_plan if account else None)
            options["max_pages"] = min(int(options.get("max_pages", budget)), budget)
        credential = req.saved
        if credential is None:
            credential = await store_credentials.create_credential(
                session,
                box=box,
                user_id=user_id,
                credential_id=req.typed["credential_id"],
                secret=req.typed["secret"],
                version=req.typed["version"],
                country=req.typed["country"],
                partner_tag=req.partner_tag,
                label=urlsplit(req.site).hostname or req.site,
                tps=float(req.options["tps"]),
            )
        scan = await store_scans.create_scan_spending_credit(
            session,
            user_id=user_id,
            credits_enabled=settings.credits_enabled,
            active_cap=cap,
            site=req.site,
            marketplace=req.marketplace,
            partner_tag=req.partner_tag,
            options=options,
            credential_id=credential.id,
        )
    forget_user(state, user_id)  # the header's balance changed
    await jobs.enqueue_scan(state.redis, scan)
    return scan


_KEPT = "kept-secret"  # what a kept secret's plain text starts with (see keep_secret)


def keep_secret(box: SecretBox, secret: str, *, user_id: int) -> str:
    """The secret typed in a form that failed, to send back hidden in the page: encrypted with
    its purpose and its user, so that no other encrypted text of the server (a saved
    credential's, another user's kept secret) is taken for it."""
    return box.encrypt(f"{_KEPT}\0{user_id}\0{secret}")


def unkeep_secret(box: SecretBox, kept: str, *, user_id: int) -> str:
    """The secret :func:`keep_secret` kept for this user, else "" (then the form asks again)."""
    if len(kept) > 4 * fields.MAX_LENGTHS["secret"]:
        return ""
    try:
        purpose, owner, secret = box.decrypt(kept).split("\0", 2)
    except (SecretKeyError, ValueError):
        return ""
    return secret if purpose == _KEPT and owner == str(user_id) else ""


async def new_scan(request: Request) -> Response:
    state = request.app.state
    async with state.sessions() as session:
        saved = await store_credentials.list_credentials(session, user_id=user_id(request))
    if request.method == "GET":
        form = {"country": "US", "version": "2.1", "saved_credential": ""}
        if saved:
            last = saved[-1]
            form |= {
                "saved_credential": str(last.id),
                "country": last.country,
                "partner_tag": last.partner_tag,
            }
        return _page(request, saved, form, {})
    raw: FormData = await request.form()
    form = {key: str(raw.get(key, "")).strip() for key in FIELDS}
    form["cloak_prefixes"] = str(raw.get("cloak_prefixes", ""))
    kept_secret = str(raw.get("secret_kept", ""))
    if not form["secret"] and kept_secret:  # the secret typed before a failed submission
        form["secret"] = unkeep_secret(state.box, kept_secret, user_id=user_id(request))
    req, errors = check_scan_form(form, saved)
    if req is None:
        return _page(request, saved, form, errors, status=400)
    try:
        await queue_scan(state, user_id=user_id(request), req=req)
    except TooManyActiveScans as exc:
        return _page(request, saved, form, {}, status=409, error=str(exc))
    except NoCredits as exc:
        return _page(request, saved, form, {}, status=402, error=str(exc), error_link=BILLING_LINK)
    except confirmation.EmailNotConfirmed as exc:
        return _page(request, saved, form, {}, status=403, error=str(exc))
    return RedirectResponse("/?queued=1", status_code=303)


def _page(
    request: Request,
    saved: Sequence[AmazonCredential],
    form: dict[str, str],
    errors: dict[str, str],
    status: int = 200,
    error: str | None = None,
    error_link: dict[str, str] | None = None,
) -> Response:
    form = fields.clipped(form)  # an over-long value is not sent back in full
    secret = form.pop("secret", "")
    # a typed secret is kept across a failed submission encrypted (never in clear in the page)
    kept = keep_secret(request.app.state.box, secret, user_id=user_id(request)) if secret else ""
    ctx = {
        "unconfirmed": status == 403,  # EmailNotConfirmed: offer to send the mail again
        "form": form,
        "errors": errors,
        "secret_kept": kept,
        "secret_masked": mask(secret) if secret else "",
        "saved": [
            {
                "id": c.id,
                "label": c.label,
                "credential_id": c.credential_id,
                "country": c.country,
                "partner_tag": c.partner_tag,
            }
            for c in saved
        ],
        "versions": VERSIONS,
        "countries": COUNTRIES,
        "error": error,
        "error_link": error_link,
    }
    return render(request, "new_scan.html", ctx, status)


routes = [Route("/scans/new", new_scan, methods=["GET", "POST"])]
