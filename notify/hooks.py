"""Slack incoming webhooks and generic webhooks: what is posted and how it is signed.

A generic webhook gets JSON with a stable ``event_id`` and the headers ``CCBB-Event-Id``,
``CCBB-Event`` and ``CCBB-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>" with
the channel's signing secret>`` (check it with :func:`verify`, or the same three lines in any
language; reject a ``t`` older than a few minutes). Slack gets a plain POST of its
``{"text", "blocks"}`` JSON. Both go through the crawler's guarded session
(``scanner.net.make_session``): a URL that resolves to a private, loopback or reserved address
is refused, at saving (:func:`url_problem`) and again at connection time.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import socket
import time
from typing import Any

import aiohttp
from yarl import URL

from ccbb.marks import N_
from scanner.net import is_public, literal_ip

SIGNATURE_HEADER = "CCBB-Signature"
EVENT_ID_HEADER = "CCBB-Event-Id"
EVENT_HEADER = "CCBB-Event"
POST_TIMEOUT = aiohttp.ClientTimeout(total=10)

# user-facing messages (plain English, one place; pages translate them: web.engine_messages)
NOT_HTTP = N_("Give an http:// or https:// address, such as https://example.com/hooks/ccbb.")
NOT_SLACK = N_("Give the Slack incoming webhook address: https://hooks.slack.com/services/…")
PRIVATE = N_(
    "{host} is a private, loopback or reserved address ({addresses}): alerts are only sent to "
    "public addresses."
)
UNKNOWN_HOST = N_("{host} does not resolve: check the address.")


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(24)


def signature(secret: str, body: bytes, timestamp: int) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify(
    secret: str, body: bytes, header: str, *, now: float | None = None, tolerance: int = 300
) -> bool:
    """Is ``header`` (``CCBB-Signature``) a valid signature of ``body`` made within
    ``tolerance`` seconds? What a receiver runs."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        stamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - stamp) > tolerance:
        return False
    return hmac.compare_digest(signature(secret, body, stamp), f"t={stamp},v1={parts.get('v1')}")


def _addresses(host: str) -> list[str]:
    ip = literal_ip(host)
    if ip is not None:
        return [ip]
    infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    return sorted({str(info[4][0]) for info in infos})


def url_problem(url: str, *, allow_private: bool, slack: bool = False) -> str | None:
    """What is wrong with a webhook address (None: it may be used). Resolves the host name
    (no connection is made) and asks the crawler's guard (``scanner.net.is_public``) about
    each address. Blocking: call it in a thread."""
    try:
        parsed = URL(url.strip())
    except ValueError:
        return NOT_HTTP
    if parsed.scheme not in ("http", "https") or not parsed.host:
        return NOT_HTTP
    if slack and parsed.scheme != "https":
        return NOT_SLACK
    try:
        addresses = _addresses(parsed.host)
    except (OSError, UnicodeError):
        return UNKNOWN_HOST.format(host=parsed.host)
    if not allow_private:
        refused = [a for a in addresses if not is_public(a)]
        if refused:
            return PRIVATE.format(host=parsed.host, addresses=", ".join(refused[:3]))
    return None


def webhook_request(
    payload: dict[str, Any], secret: str, *, now: int | None = None
) -> tuple[bytes, dict[str, str]]:
    """The body and headers of a generic webhook delivery."""
    body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    headers = {
        "Content-Type": "application/json",
        EVENT_ID_HEADER: str(payload["event_id"]),
        EVENT_HEADER: str(payload["event"]),
        SIGNATURE_HEADER: signature(secret, body, int(time.time()) if now is None else now),
    }
    return body, headers


def slack_payload(
    headline: str,
    lines: list[tuple[str, str]],
    link: str | None,
    link_text: str = "Open the report",
) -> dict[str, Any]:
    """Slack's message JSON: the headline, one bullet per line linking to its table, and
    ``link_text`` to the report (all in the reader's language: notify.alerts writes them)."""
    bullets = "\n".join(f"• <{href}|{_slack_escape(text)}>" for text, href in lines)
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*{_slack_escape(headline)}*"}}
    ]
    if bullets:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": bullets}})
    if link:
        blocks.append(
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": f"<{link}|{_slack_escape(link_text)}>"}],
            }
        )
    return {"text": headline, "blocks": blocks}


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


async def post(
    session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str]
) -> int:
    """POST and return the HTTP status (redirects are not followed: a 3xx is a failure).
    Raises aiohttp.ClientError / OSError (scanner.net.BlockedAddress for a refused address)."""
    async with session.post(
        url, data=body, headers=headers, allow_redirects=False, timeout=POST_TIMEOUT
    ) as response:
        await response.read()
        return response.status
