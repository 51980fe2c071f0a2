"""``/demo/mail``: the mails the demo's local SMTP catcher caught (``ccbb run --demo`` only;
elsewhere the page does not exist), so a newcomer sees the confirmation mail at once."""

from __future__ import annotations

import asyncio
from email.utils import parsedate_to_datetime
from pathlib import Path

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ccbb.sandbox.smtp_catcher import read_folder
from web.i18n import moment
from web.templating import render


def _when(header: str | None) -> str:
    """The mail's Date header as the page's language writes a moment (as it is if unreadable)."""
    try:
        return moment(parsedate_to_datetime(header)) if header else ""
    except (TypeError, ValueError):
        return header or ""


async def demo_mail(request: Request) -> Response:
    folder: Path | None = request.app.state.settings.demo_mail_dir
    if folder is None:
        raise HTTPException(404)
    mails = []
    caught = await asyncio.to_thread(read_folder, folder)
    for msg in caught:
        body = msg.get_body(("plain",))
        mails.append({
            "to": msg["To"], "subject": msg["Subject"], "date": _when(msg["Date"]),
            "text": body.get_content() if body is not None else "",
        })  # fmt: skip
    return render(request, "demo_mail.html", {"mails": mails})


routes = [Route("/demo/mail", demo_mail)]
PUBLIC_PATHS = ("/demo/mail",)
