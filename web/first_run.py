"""The first-run guide on a new account's dashboard: the FAQ's quick start as four steps (save
Creators API credentials → Test connection → first scan → read the report), each ticked off
from what the account really did, each with a link; the guide is gone once all four are done.

Everything is read from the database (store.onboarding): saved credentials, scans, finished
scans, and the two steps that leave no row of their own, recorded when they happen: a
connection test that worked, a finished scan's report opened. A finished scan also counts as a
working connection (it made lookups with the credentials). Once every step was done, the guide
does not come back (then one read by primary key on each dashboard)."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from store.onboarding import guide_finished, onboarding, record_step
from web.i18n import N_, _


@dataclass(frozen=True)
class Step:
    key: str
    title: str  # translated
    text: str
    href: str | None  # None: not possible yet (no finished scan to read)
    action: str
    done: bool


TITLES = {
    "credentials": (
        N_("Save your Creators API credentials"),
        N_("Your Credential ID, Credential Secret and version, from Amazon Associates Central."),
        N_("Add credentials"),
    ),
    "connection": (
        N_("Test the connection"),
        N_("One real lookup with your credentials: it says “Connected” or what to fix."),
        N_("Test connection"),
    ),
    "scan": (
        N_("Start your first scan"),
        N_("Enter your site and your partner tag; the dashboard follows the scan's progress."),
        N_("New Scan"),
    ),
    "report": (
        N_("Read the report"),
        N_("The products removed or out of stock, the links without your tag, the pages to fix."),
        N_("Open the report"),
    ),
}


async def mark(request: Request, user_id: int, step: str) -> None:
    """Records that the user did ``step`` ("connection" or "report")."""
    async with request.app.state.sessions() as session:
        await record_step(session, user_id=user_id, step=step)


async def steps(request: Request, user_id: int) -> list[Step] | None:
    """The guide's steps for this user, or None once every step is done."""
    async with request.app.state.sessions() as session:
        if await guide_finished(session, user_id=user_id):
            return None
        seen = await onboarding(session, user_id=user_id)
        done = {
            "credentials": seen.credentials > 0,
            "connection": "connection" in seen.steps or seen.last_done_scan is not None,
            "scan": seen.scans > 0,
            "report": "report" in seen.steps and seen.last_done_scan is not None,
        }
        if all(done.values()):  # gone, and not back if credentials are deleted later
            await record_step(session, user_id=user_id, step="finished")
            return None
    report_href = f"/scans/{seen.last_done_scan}" if seen.last_done_scan else None
    hrefs: dict[str, str | None] = {
        "credentials": "/settings#add-credentials",
        "connection": "/settings#credentials",
        "scan": "/scans/new",
        "report": report_href,
    }
    return [
        Step(key, _(title), _(text), hrefs[key], _(action), done[key])
        for key, (title, text, action) in TITLES.items()
    ]
