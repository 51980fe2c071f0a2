"""Settings: the user's saved Amazon credentials (list, add, delete). The secret is stored
encrypted and only ever shown masked."""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from ccbb.cli import TAG_RE
from scanner.amazon_urls import COUNTRY_MARKETPLACES
from store import credentials as store_credentials
from store.crypto import mask
from store.models import AmazonCredential, User
from web.templating import render

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
        return "Give your partner tag (tracking ID), such as yourname-20."
    if not TAG_RE.match(tag):
        return f"“{tag}” does not look like a partner tag such as yourname-20."
    return None


def credential_problems(form: dict[str, str], *, need_tag: bool = True) -> dict[str, str]:
    """Errors of a typed-in credential (fields credential_id, secret, version, country, tag)."""
    errors: dict[str, str] = {}
    if not form.get("credential_id"):
        errors["credential_id"] = "Give the Credential ID of your Amazon API credentials."
    elif len(form["credential_id"]) > 200:
        errors["credential_id"] = "This Credential ID is too long (200 characters at most)."
    if not form.get("secret"):
        errors["secret"] = "Give the Credential Secret that goes with this Credential ID."  # noqa: S105
    if form.get("version") not in VERSIONS:
        errors["version"] = "Choose the version shown next to your credentials."
    if form.get("country") not in COUNTRIES:
        errors["country"] = "Choose the Amazon country of your credentials."
    if need_tag and (problem := tag_problem(form.get("partner_tag", ""))):
        errors["partner_tag"] = problem
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
    }


async def _page(
    request: Request,
    user: User,
    *,
    form: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    message: str | None = None,
    status: int = 200,
) -> Response:
    box = request.app.state.box
    async with request.app.state.sessions() as session:
        saved = await store_credentials.list_credentials(session, user_id=user_id(request))
    rows = []
    for c in saved:
        try:
            secret = box.decrypt(c.secret_encrypted)
        except Exception:  # a key rotated away: still list it
            secret = ""
        rows.append(public(c, secret))
    ctx = {
        "credentials": rows,
        "form": form or {"version": "2.1", "country": "US"},
        "errors": errors or {},
        "versions": VERSIONS,
        "countries": COUNTRIES,
        "message": message,
    }
    return render(request, "settings.html", ctx, status)


async def settings_page(request: Request) -> Response:
    user: User = request.scope["user"]
    if request.method == "GET":
        saved = request.query_params.get("saved")
        deleted = request.query_params.get("deleted")
        message = "Credentials saved." if saved else "Credentials deleted." if deleted else None
        return await _page(request, user, message=message)
    raw = await request.form()
    form = {
        key: str(raw.get(key, "")).strip()
        for key in ("label", "credential_id", "secret", "version", "country", "partner_tag")
    }
    errors = credential_problems(form)
    if len(form["label"]) > 200:
        errors["label"] = "Use 200 characters at most."
    if errors:
        form.pop("secret")  # never written back into the page
        return await _page(request, user, form=form, errors=errors, status=400)
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
        )
    return RedirectResponse("/settings?saved=1", status_code=303)


async def delete_credential(request: Request) -> Response:
    credential_id = request.path_params["credential_id"]
    async with request.app.state.sessions() as session:
        deleted = await store_credentials.delete_credential(
            session, credential_id=credential_id, user_id=user_id(request)
        )
    if not deleted:
        raise HTTPException(status_code=404, detail="No such credentials.")
    return RedirectResponse("/settings?deleted=1", status_code=303)


routes = [
    Route("/settings", settings_page, methods=["GET", "POST"]),
    Route("/settings/credentials/{credential_id:int}/delete", delete_credential, methods=["POST"]),
]
