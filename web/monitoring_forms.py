"""Schedules and alert channels as the Monitoring page and the API change them: the checks
(each problem a sentence saying what to do) and the store calls, shared by both."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ccbb.schedule_rules import Rule, describe, problems
from notify import hooks
from store import monitoring as store_monitoring
from store import scans as store_scans
from store.crypto import mask
from store.models import utcnow
from store.monitoring import ALERT_ON, CHANNEL_KINDS, AlertChannel, SiteSchedule
from web import confirmation
from web.auth import plausible_email
from web.i18n import N_, _

# what the page and the API say (the API in English: _() there is English)
EMAIL_PROBLEM = N_("Enter an e-mail address such as you@example.com.")
KIND_PROBLEM = N_("Choose e-mail, Slack or webhook.")
ALERT_ON_PROBLEM = N_("Choose newly broken only, or broken and recovered.")
NO_SCAN = N_("Scan this site once first: a schedule repeats the settings of its last scan.")
MAX_CHANNELS = 20
TOO_MANY = N_("You have %(count)s alert channels already: delete one first.")


class FormProblems(Exception):
    def __init__(self, fields: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in fields.items()))
        self.fields = fields


def _int(value: Any, default: int) -> int:
    try:
        return int(str(value).strip())
    except ValueError:
        return -1 if str(value).strip() else default


def parse_rule(form: dict[str, Any]) -> Rule:
    rule = Rule(
        frequency=str(form.get("frequency", "off")).strip(),
        weekday=_int(form.get("weekday", 0), 0),
        day_of_month=_int(form.get("day_of_month", 1), 1),
        hour=_int(form.get("hour", 6), 6),
        time_zone=str(form.get("time_zone", "UTC")).strip() or "UTC",
    )
    found = problems(rule)
    if found:
        raise FormProblems(found)
    return rule


async def save_schedule(state: Any, *, user_id: int, scan_id: int, rule: Rule) -> SiteSchedule:
    """Set the schedule of the site of ``scan_id`` (the user's); raises FormProblems, or
    confirmation.EmailNotConfirmed when turning one on before the address is confirmed."""
    if rule.frequency != "off":
        await confirmation.check_confirmed(state, user_id=user_id)
    async with state.sessions() as session:
        scan = await store_scans.get_scan(session, scan_id=scan_id, user_id=user_id)
        if scan is None:
            raise FormProblems({"site": _(NO_SCAN)})
        return await store_monitoring.save_schedule(
            session, from_scan=scan, rule=rule, now=utcnow()
        )


@dataclass(frozen=True)
class NewChannel:
    row: AlertChannel
    secret: str | None  # the webhook's signing secret: shown once, at creation


def _label(kind: str, target: str) -> str:
    if kind == "email":
        return target
    parts = urlsplit(target)
    if kind == "slack":  # the whole URL is the secret
        return f"{parts.scheme}://{parts.hostname}/…{mask(target)[-4:]}"
    return f"{parts.scheme}://{parts.netloc}{parts.path}"  # no query: it may hold a token


async def add_channel(state: Any, *, user_id: int, form: dict[str, Any]) -> NewChannel:
    kind = str(form.get("kind", "")).strip()
    target = str(form.get("target", "")).strip()
    alert_on = str(form.get("alert_on", "broken")).strip()
    weekly = str(form.get("weekly_summary", "")).lower() in ("1", "on", "true", "yes")
    found: dict[str, str] = {}
    if kind not in CHANNEL_KINDS:
        found["kind"] = _(KIND_PROBLEM)
    if alert_on not in ALERT_ON:
        found["alert_on"] = _(ALERT_ON_PROBLEM)
    if kind == "email":
        if not plausible_email(target):
            found["target"] = _(EMAIL_PROBLEM)
    elif kind in ("slack", "webhook"):
        problem = await asyncio.to_thread(
            hooks.url_problem,
            target,
            allow_private=state.settings.allow_private_network,
            slack=kind == "slack",
        )
        if problem:
            found["target"] = problem
    if found:
        raise FormProblems(found)
    box = state.box
    secret = hooks.new_secret() if kind == "webhook" else None
    async with state.sessions() as session:
        if len(await store_monitoring.list_channels(session, user_id=user_id)) >= MAX_CHANNELS:
            raise FormProblems({"kind": _(TOO_MANY) % {"count": MAX_CHANNELS}})
        row = await store_monitoring.create_channel(
            session,
            user_id=user_id,
            kind=kind,
            label=_label(kind, target),
            target_encrypted=box.encrypt(target),
            secret_encrypted=box.encrypt(secret) if secret else None,
            alert_on=alert_on,
            weekly_summary=weekly,
        )
    return NewChannel(row, secret)


def channel_json(row: AlertChannel) -> dict[str, Any]:
    """A channel as the API and the page may show it (never the URL or the secret)."""
    return {
        "id": row.id,
        "kind": row.kind,
        "label": row.label,
        "alert_on": row.alert_on,
        "weekly_summary": row.weekly_summary,
        "enabled": row.enabled,
        "created_at": row.created_at.isoformat(),
    }


def delivery_json(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "event_id": row.event_id,
        "event": row.event,
        "state": row.state,
        "attempts": row.attempts,
        "last_status": row.last_status,
        "last_error": row.last_error,
        "created_at": row.created_at.isoformat(),
        "delivered_at": row.delivered_at.isoformat() if row.delivered_at else None,
    }


def schedule_json(row: SiteSchedule) -> dict[str, Any]:
    rule = store_monitoring.rule_of(row)
    return {
        "id": row.id,
        "site": row.site,
        "marketplace": row.marketplace,
        "frequency": row.frequency,
        "weekday": row.weekday,
        "day_of_month": row.day_of_month,
        "hour": row.hour,
        "time_zone": row.time_zone,
        "description": describe(rule),
        "next_due_at": row.next_due_at.isoformat() if row.next_due_at else None,
        "paused_reason": row.paused_reason,
        "last_outcome": row.last_outcome,
        "last_scan_id": row.last_scan_id,
    }
