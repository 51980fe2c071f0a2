"""Settings: the user's saved Amazon credentials (list, add, delete, test the connection) and
personal API tokens (create, revoke). A credential's secret is stored encrypted and only ever
shown masked; a token is shown once, when it is made, and stored as a hash."""

from __future__ import annotations

import logging
import secrets
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from ccbb import jobs
from ccbb.limiter import RedisRateLimiter
from scanner.amazon import OLD_KEYS, is_old_paapi_key
from scanner.amazon_urls import COUNTRY_MARKETPLACES, TAG_RE, marketplace_for_country
from scanner.creators_api import probe_connection
from store import credentials as store_credentials
from store import tokens as store_tokens
from store.crypto import SecretKeyError, mask
from store.models import AmazonCredential, User
from web import engine_messages, fields, first_run
from web.i18n import N_, _, number
from web.templating import render

log = logging.getLogger(__name__)

# "Test connection" clicks allowed per user per window (each is a real Amazon request)
TESTS_PER_WINDOW, TEST_WINDOW = 10, 10 * 60
# the causes the FAQ lists when the application cannot reach the Amazon API
FREQUENT_CAUSES = (  # translated when shown (settings.html)
    N_(
        "You have not registered for the Amazon Creators API yet (Associates Central → Tools → "
        "Creators API)."
    ),
    N_(
        "The Credential ID and/or Credential Secret are not valid (or the version does not "
        "match the one shown next to them)."
    ),
    N_(
        "The partner tag is not the one tied to these credentials (use the tracking ID of the "
        "account, in the country, that created them)."
    ),
    N_(
        "Your Associates account is not eligible for the API yet: Amazon requires recent "
        "qualifying sales."
    ),
)
VERSIONS = ("2.1", "2.2", "2.3", "3.1", "3.2", "3.3")
# one entry per marketplace (UK and GB are the same one)
COUNTRIES = tuple(code for code in COUNTRY_MARKETPLACES if code != "GB")


def user_id(request: Request) -> int:
    """The logged-in user's id (the AuthGate lets no anonymous request through)."""
    user: User = request.scope["user"]
    assert user.id is not None
    return user.id


def tag_problem(tag: str) -> str | None:
    if not tag:
        return _("Give your partner tag (tracking ID), such as yourname-20.")
    if len(tag) > fields.MAX_LENGTHS["partner_tag"]:
        return fields.too_long_message(fields.MAX_LENGTHS["partner_tag"])
    if not TAG_RE.match(tag):
        problem = _("“%(tag)s” does not look like a partner tag such as yourname-20.")
        return problem % {"tag": fields.shown(tag)}
    return None


MAX_TPS = 10.0  # what Amazon grants its best-selling associates


def parse_tps(text: str) -> tuple[float, str | None]:
    """The requests per second typed in (empty: 1), or 1 and what to fix."""
    if not text.strip():
        return 1.0, None
    try:
        tps = float(text.replace(",", "."))
    except ValueError:
        tps = -1.0
    if not 0.1 <= tps <= MAX_TPS:
        return 1.0, _(
            "Give the requests per second Amazon allows these credentials, from 0.1 to "
            "%(most)s (1 for a new account)."
        ) % {"most": number(MAX_TPS)}
    return tps, None


def credential_problems(form: dict[str, str], *, need_tag: bool = True) -> dict[str, str]:
    """Errors of a typed-in credential (fields credential_id, secret, version, country, tag,
    tps)."""
    errors: dict[str, str] = fields.too_long(form)
    if "tps" not in errors and (problem := parse_tps(form.get("tps", ""))[1]):
        errors["tps"] = problem
    if not form.get("credential_id"):
        errors["credential_id"] = _("Give the Credential ID of your Amazon API credentials.")
    elif is_old_paapi_key(form["credential_id"]):
        old_keys = engine_messages.translate(OLD_KEYS[:1].upper() + OLD_KEYS[1:] + ".")
        errors.setdefault("credential_id", old_keys)
    if not form.get("secret"):
        errors["secret"] = _("Give the Credential Secret that goes with this Credential ID.")
    if form.get("version") not in VERSIONS:
        errors["version"] = _("Choose the version shown next to your credentials.")
    if form.get("country") not in COUNTRIES:
        errors["country"] = _("Choose the Amazon country of your credentials.")
    if need_tag and (problem := tag_problem(form.get("partner_tag", ""))):
        errors.setdefault("partner_tag", problem)
    return errors


def public(credential: AmazonCredential, secret: str) -> dict[str, Any]:
    """What a page may show of a credential: never the secret, only its mask."""
    return {
        "id": credential.id,
        "label": credential.label,
        "credential_id": credential.credential_id,
        "masked": mask(secret),
        "version": credential.version,
        "country": credential.country,
        "partner_tag": credential.partner_tag,
        "tps": f"{credential.tps:g}",
    }


async def _page(
    request: Request,
    *,
    form: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    message: str | None = None,
    tested: dict[str, Any] | None = None,
    new_token: str | None = None,
    token_error: str | None = None,
    status: int = 200,
) -> Response:
    box = request.app.state.box
    async with request.app.state.sessions() as session:
        saved = await store_credentials.list_credentials(session, user_id=user_id(request))
        tokens = await store_tokens.list_tokens(session, user_id=user_id(request))
    rows = []
    for c in saved:
        try:
            secret = box.decrypt(c.secret_encrypted)
        except Exception:  # a key rotated away: still list it
            secret = ""
        rows.append(public(c, secret))
    ctx = {
        "credentials": rows,
        "form": form or {"version": "2.1", "country": "US", "tps": "1"},
        "errors": errors or {},
        "versions": VERSIONS,
        "countries": COUNTRIES,
        "message": message,
        "tested": tested,
        "causes": FREQUENT_CAUSES,
        "tokens": tokens,
        "new_token": new_token,
        "token_error": token_error,
    }
    response = render(request, "settings.html", ctx, status)
    if new_token:
        response.headers["Cache-Control"] = "no-store"  # the token is shown once, never cached
    return response


async def settings_page(request: Request) -> Response:
    if request.method == "GET":
        done = {
            "saved": _("Credentials saved."),
            "deleted": _("Credentials deleted."),
            "revoked": _("Token revoked: it no longer works."),
        }
        message = next((text for key, text in done.items() if key in request.query_params), None)
        shown = request.query_params.get("token")
        if shown:  # the token just made: shown by this one response, then gone from Redis
            token = await request.app.state.redis.getdel(_new_token_key(request, shown))
            if token is None:
                message = _("That token was shown once already: create another if you lost it.")
            else:
                return await _page(request, new_token=token.decode(), message=message)
        return await _page(request, message=message)
    raw = await request.form()
    form = {
        key: str(raw.get(key, "")).strip()
        for key in ("label", "credential_id", "secret", "version", "country", "partner_tag", "tps")
    }
    errors = credential_problems(form)
    if errors:
        form.pop("secret")  # never written back into the page
        return await _page(request, form=fields.clipped(form), errors=errors, status=400)
    async with request.app.state.sessions() as session:
        await store_credentials.create_credential(
            session,
            box=request.app.state.box,
            user_id=user_id(request),
            credential_id=form["credential_id"],
            secret=form["secret"],
            version=form["version"],
            country=form["country"],
            partner_tag=form["partner_tag"],
            label=form["label"] or form["credential_id"],
            tps=parse_tps(form["tps"])[0],
        )
    return RedirectResponse("/settings?saved=1", status_code=303)


async def delete_credential(request: Request) -> Response:
    credential_id = fields.path_id(request, "credential_id")
    async with request.app.state.sessions() as session:
        deleted = await store_credentials.delete_credential(
            session, credential_id=credential_id, user_id=user_id(request)
        )
    if not deleted:
        raise HTTPException(status_code=404, detail=_("No such credentials."))
    return RedirectResponse("/settings?deleted=1", status_code=303)


async def try_credential(request: Request) -> Response:
    """One real lookup with a saved credential; the page says what worked or what to fix."""
    state = request.app.state
    async with state.sessions() as session:
        credential = await store_credentials.get_credential(
            session,
            credential_id=fields.path_id(request, "credential_id"),
            user_id=user_id(request),
        )
    if credential is None:
        raise HTTPException(status_code=404, detail=_("No such credentials."))
    key = f"ccbb:conntest:{user_id(request)}"
    tries = int(await state.redis.incr(key))
    if tries == 1:
        await state.redis.expire(key, TEST_WINDOW)
    if tries > TESTS_PER_WINDOW:
        result = {"ok": False, "message": _("Too many tests: wait 10 minutes, then try again.")}
        return await _page(request, tested={"id": credential.id, **result}, status=429)
    marketplace = marketplace_for_country(credential.country) or "www.amazon.com"
    try:
        access = jobs.amazon_access(
            credential,
            state.box,
            state.settings,
            partner_tag=credential.partner_tag,
            marketplace=marketplace,
            tps=credential.tps,
        )
    except SecretKeyError:
        result = {
            "ok": False,
            "message": _(
                "This secret cannot be read since the server key changed: delete these "
                "credentials and add them again."
            ),
        }
    else:
        check = await probe_connection(access, RedisRateLimiter.for_access(state.redis, access))
        result = {"ok": check.ok, "message": check.message}
        if check.ok:
            await first_run.mark(request, user_id(request), "connection")
        log.info("connection test of credential %s: ok=%s", credential.id, check.ok)
    return await _page(request, tested={"id": credential.id, **result})


async def create_token(request: Request) -> Response:
    name = str((await request.form()).get("name", "")).strip()
    error = None
    if not name:
        error = _("Give the token a name, such as the script that will use it.")
    elif len(name) > fields.MAX_LENGTHS["name"]:
        error = fields.too_long_message(fields.MAX_LENGTHS["name"])
    async with request.app.state.sessions() as session:
        count = len(await store_tokens.list_tokens(session, user_id=user_id(request)))
        if error is None and count >= store_tokens.MAX_TOKENS:
            error = _(
                "You have %(count)s tokens, the most allowed: revoke one you no longer use."
            ) % {"count": count}
        if error is not None:
            return await _page(request, token_error=error, status=400)
        _row, token = await store_tokens.create_token(session, user_id=user_id(request), name=name)
    # redirect after POST (a reload must not make a second token): the next GET shows it once
    nonce = secrets.token_urlsafe(16)
    await request.app.state.redis.set(_new_token_key(request, nonce), token, ex=NEW_TOKEN_TTL)
    return RedirectResponse(f"/settings?token={nonce}#api-tokens", status_code=303)


NEW_TOKEN_TTL = 300  # seconds a new token waits in Redis for the page that shows it


def _new_token_key(request: Request, nonce: str) -> str:
    return f"ccbb:new-token:{user_id(request)}:{nonce[:64]}"


async def revoke_token(request: Request) -> Response:
    async with request.app.state.sessions() as session:
        revoked = await store_tokens.revoke_token(
            session, token_id=fields.path_id(request, "token_id"), user_id=user_id(request)
        )
    if not revoked:
        raise HTTPException(status_code=404, detail=_("No such token."))
    return RedirectResponse("/settings?revoked=1", status_code=303)


routes = [
    Route("/settings", settings_page, methods=["GET", "POST"]),
    Route("/settings/credentials/{credential_id:int}/delete", delete_credential, methods=["POST"]),
    Route("/settings/credentials/{credential_id:int}/test", try_credential, methods=["POST"]),
    Route("/settings/tokens", create_token, methods=["POST"]),
    Route("/settings/tokens/{token_id:int}/revoke", revoke_token, methods=["POST"]),
]
