"""Alerts after a scan, through real local servers: an alert mail received by aiosmtpd with the
right lines and links, a webhook delivery verified by its HMAC, a Slack payload received by a
local server, nothing sent when nothing changed, retries with a delivery log, the weekly
summary, and private webhook addresses refused by the crawler's guard (never connected to)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from arq import Retry
from arq.connections import RedisSettings, create_pool

from ccbb import monitor
from ccbb.sandbox.smtp_catcher import Catcher, running_catcher
from ccbb.settings import Settings
from notify import alerts, hooks
from notify.jobs import send_mail_job
from scanner.net import NetworkPolicy, make_session
from scanner.scan import ScanReport
from store import mail as store_mail
from store import monitoring, scans, users
from store.crypto import SecretBox
from store.db import make_engine, session_factory
from store.migrate import upgrade
from tests.test_changes import OK, OOS, R

PUBLIC = "http://ccbb.test"


@dataclass
class Receiver:
    """A local HTTP server standing for Slack and a customer's webhook endpoint."""

    url: str = ""
    got: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    fail_next: int = 0  # answer 500 this many times first

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.got.append((request.path, dict(request.headers), body))
        if self.fail_next:
            self.fail_next -= 1
            return web.Response(status=500, text="try later")
        return web.Response(text="ok")


@dataclass
class World:
    ctx: dict[str, Any]
    smtp: Catcher
    receiver: Receiver
    user_id: int
    secret: str
    channels: dict[str, int]
    reports: list[int] = field(default_factory=list)

    async def scan(self, report: ScanReport) -> int:
        """A finished scan of the user, then the worker's hook; the scan id."""
        async with self.ctx["sessions"]() as session:
            scan = await scans.create_scan(
                session, user_id=self.user_id, site=report.site, marketplace=report.marketplace,
                partner_tag=report.partner_tag,
            )  # fmt: skip
            assert scan.id is not None
            await scans.mark_running(session, scan_id=scan.id)
            await scans.finish_scan(session, scan_id=scan.id, report=report)
        await monitor.after_scan(self.ctx, scan_id=scan.id, report=report)
        return scan.id

    async def deliveries(self, kind: str) -> list[Any]:
        async with self.ctx["sessions"]() as session:
            return await monitoring.list_deliveries(session, channel_id=self.channels[kind])

    async def run_deliveries(self, job_try: int = 1) -> list[str]:
        """Run every pending delivery job, then every queued mail, as a worker would."""
        out = []
        for kind in self.channels:
            for d in await self.deliveries(kind):
                if d.state in ("pending", "retrying"):
                    ctx = {**self.ctx, "job_try": job_try}
                    out.append(await alerts.deliver_alert_job(ctx, d.id))
        async with self.ctx["sessions"]() as session:
            mails = [m for m in await store_mail.recent_mails(session) if m.state == "queued"]
        for m in sorted(mails, key=lambda m: m.id or 0):
            await send_mail_job(self.ctx, m.id)
        return out


@pytest.fixture
def smtp() -> Iterator[tuple[Catcher, int]]:
    with running_catcher() as running:
        yield running


@pytest.fixture
async def world(
    tmp_path: Path, test_redis_url: str, smtp: tuple[Catcher, int]
) -> AsyncIterator[World]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'ccbb.sqlite3'}"
    await asyncio.to_thread(upgrade, url)
    catcher, port = smtp
    settings = Settings(CCBB_DATA_DIR=tmp_path, CCBB_SMTP_HOST="127.0.0.1", CCBB_SMTP_PORT=port,
                        CCBB_SMTP_TLS="off", CCBB_PUBLIC_URL=PUBLIC)  # fmt: skip
    receiver = Receiver()
    app = web.Application()
    app.router.add_post("/{tail:.*}", receiver.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    receiver.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    engine = make_engine(url)
    redis = await create_pool(RedisSettings.from_dsn(test_redis_url), default_queue_name="q-alerts")
    box = SecretBox.from_settings(settings)
    # the tests' local servers are on loopback: the operator's switch allows it here only
    http = make_session(NetworkPolicy(allow_private=True))
    ctx = {"settings": settings, "sessions": session_factory(engine), "redis": redis,
           "box": box, "http": http}  # fmt: skip
    secret = hooks.new_secret()
    async with ctx["sessions"]() as session:
        user = await users.create_user(session, email="owner@example.com", password_hash="x")
        assert user.id is not None
        channels = {}
        for kind, target, alert_on, sec in (
            ("email", "alerts@example.com", "broken", None),
            ("slack", receiver.url + "/slack", "broken_and_recovered", None),
            ("webhook", receiver.url + "/hook", "broken", secret),
        ):
            row = await monitoring.create_channel(
                session, user_id=user.id, kind=kind, label=target,
                target_encrypted=box.encrypt(target),
                secret_encrypted=box.encrypt(sec) if sec else None,
                alert_on=alert_on, weekly_summary=kind == "email",
            )  # fmt: skip
            channels[kind] = row.id
    try:
        yield World(ctx, catcher, receiver, user.id, secret, channels)
    finally:
        await http.close()
        await redis.aclose()
        await engine.dispose()
        await runner.cleanup()


def _report(r: R, day: int) -> ScanReport:
    report = r.build()
    report.finished_at = report.started_at = datetime(2026, 3, day, 9, tzinfo=UTC)
    return report


A, B = "B000000001", "B000000002"


async def test_alerts_reach_mail_slack_and_webhook_with_the_right_lines(world: World) -> None:
    first = await world.scan(_report(R({A: OK, B: OOS}), 3))
    assert await world.deliveries("email") == []  # a first scan has nothing to compare with
    second = await world.scan(_report(R({A: OOS, B: OK}), 10))
    assert sorted(await world.run_deliveries()) == ["delivered"] * 3
    report = f"{PUBLIC}/scans/{second}"
    # e-mail: the broken line with its filtered table, not the recovery (a broken-only channel)
    (mail,) = world.smtp.wait_for(1)
    assert mail["To"] == "alerts@example.com"
    text = mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert f"Since scan #{first}: 1 newly out of stock, 1 recovered." in text
    assert f"- 1 newly out of stock: {report}?status=out_of_stock" in text
    assert "- 1 recovered" not in text and f"The whole report: {report}" in text
    html = mail.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert f'<a href="{report}?status=out_of_stock">1 newly out of stock</a>' in html
    # Slack (broken and recovered): both lines, as links
    slack = [g for g in world.receiver.got if g[0] == "/slack"]
    (_, _, body) = slack[0]
    payload = json.loads(body)
    assert payload["text"].startswith(f"Since scan #{first}")
    bullets = payload["blocks"][1]["text"]["text"]
    assert f"<{report}?status=out_of_stock|1 newly out of stock>" in bullets
    assert f"<{report}?status=available|1 recovered>" in bullets
    # the webhook: signed JSON with a stable event id
    ((_, headers, body),) = [g for g in world.receiver.got if g[0] == "/hook"]
    assert hooks.verify(world.secret, body, headers[hooks.SIGNATURE_HEADER])
    assert not hooks.verify("whsec_someone-else", body, headers[hooks.SIGNATURE_HEADER])
    assert not hooks.verify(world.secret, body + b" ", headers[hooks.SIGNATURE_HEADER])
    event = json.loads(body)
    assert event["event_id"] == headers[hooks.EVENT_ID_HEADER] == f"changes-{second}"
    assert event["event"] == "scan.changes" and event["previous_scan_id"] == first
    assert event["newly_broken"] == [{"asin": A, "marketplace": "www.amazon.com",
                                      "title": f"Product {A}", "before": "available",
                                      "after": "out_of_stock", "reason": None}]  # fmt: skip
    assert [x["kind"] for x in event["lines"]] == ["newly_out_of_stock"]
    # the same event queued again is not delivered again
    async with world.ctx["sessions"]() as session:
        scan = await scans.get_scan(session, scan_id=second)
        row = await monitoring.get_changes(session, scan_id=second)
    assert await alerts.queue_alerts(world.ctx, scan=scan, row=row) == 0
    assert await world.run_deliveries() == []
    # the delivery log
    (logged,) = await world.deliveries("webhook")
    assert (logged.state, logged.attempts, logged.last_status) == ("delivered", 1, 200)


async def test_nothing_is_sent_when_nothing_changed(world: World) -> None:
    await world.scan(_report(R({A: OK, B: OOS}), 3))
    await world.scan(_report(R({A: OK, B: OOS}), 10))
    for kind in world.channels:
        assert await world.deliveries(kind) == []
    assert await world.run_deliveries() == []
    assert world.smtp.messages == [] and world.receiver.got == []


async def test_only_a_recovery_reaches_only_channels_that_asked_for_recoveries(
    world: World,
) -> None:
    await world.scan(_report(R({A: OOS}), 3))
    await world.scan(_report(R({A: OK}), 10))
    assert await world.deliveries("email") == [] and await world.deliveries("webhook") == []
    assert len(await world.deliveries("slack")) == 1


async def test_a_failing_webhook_is_retried_and_logged(world: World) -> None:
    world.receiver.fail_next = 1
    await world.scan(_report(R({A: OK}), 3))
    await world.scan(_report(R({A: OOS}), 10))
    (delivery,) = await world.deliveries("webhook")
    ctx = {**world.ctx, "job_try": 1}
    with pytest.raises(Retry):
        await alerts.deliver_alert_job(ctx, delivery.id)
    (logged,) = await world.deliveries("webhook")
    assert (logged.state, logged.last_status, logged.last_error) == ("retrying", 500, "HTTP 500")
    assert await alerts.deliver_alert_job({**world.ctx, "job_try": 2}, delivery.id) == "delivered"
    hooks_got = [g for g in world.receiver.got if g[0] == "/hook"]
    assert len(hooks_got) == 2
    # the retry carries the same event id
    assert hooks_got[0][1][hooks.EVENT_ID_HEADER] == hooks_got[1][1][hooks.EVENT_ID_HEADER]
    (logged,) = await world.deliveries("webhook")
    assert (logged.state, logged.attempts) == ("delivered", 2)


async def test_the_weekly_summary_and_the_test_send(world: World) -> None:
    await world.scan(_report(R({A: OK}), 3))
    second = await world.scan(_report(R({A: OOS}), 10))
    await world.run_deliveries()
    world.ctx["clock"] = lambda: datetime.now(UTC) + timedelta(days=1)
    assert await alerts.weekly_summary_job(world.ctx) == 1  # the e-mail channel asked for it
    assert await alerts.weekly_summary_job(world.ctx) == 0  # once per week
    await world.run_deliveries()
    summary = world.smtp.wait_for(2)[1]
    text = summary.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "your week" in summary["Subject"]
    assert f"- https://site.example/: 1 newly out of stock ({PUBLIC}/scans/{second})" in text

    class State:
        sessions, redis = world.ctx["sessions"], world.ctx["redis"]

    async with world.ctx["sessions"]() as session:
        channel = await monitoring.get_channel(session, channel_id=world.channels["webhook"])
    await alerts.queue_test(State, channel)
    await world.run_deliveries()
    ((_, headers, body),) = [g for g in world.receiver.got if g[0] == "/hook"][-1:]
    assert json.loads(body)["event"] == "test" and hooks.verify(world.secret, body,
                                                                headers[hooks.SIGNATURE_HEADER])  # fmt: skip


@pytest.mark.parametrize(
    "url",
    ["http://10.1.2.3/hook", "https://192.168.0.10/x", "http://127.0.0.1:9/", "http://[::1]/",
     "http://169.254.169.254/latest/meta-data/", "http://100.64.0.1/", "http://localhost/hook",
     "http://[::ffff:10.0.0.1]/"],
)  # fmt: skip
def test_a_private_webhook_address_is_refused_by_the_guard(url: str) -> None:
    problem = hooks.url_problem(url, allow_private=False)
    assert problem is not None and "private, loopback or reserved" in problem


@pytest.mark.parametrize(
    ("url", "message"),
    [("ftp://example.com/", "http:// or https://"), ("not a url", "http:// or https://"),
     ("http://hooks.slack.com/services/x", "Slack incoming webhook")],
)  # fmt: skip
def test_bad_webhook_addresses_say_what_to_give(url: str, message: str) -> None:
    problem = hooks.url_problem(url, allow_private=False, slack=True)
    assert problem is not None and message in problem


def test_a_public_address_is_accepted_without_connecting() -> None:
    # an IP literal is judged as it is: no DNS, no connection
    assert hooks.url_problem("https://93.184.215.14/hook", allow_private=False) is None


async def test_alerts_are_written_in_the_account_language(world: World) -> None:
    """A French account's mail and Slack message are in French (from the event's kinds and
    counts); the webhook's JSON stays English, the stable contract."""
    async with world.ctx["sessions"]() as session:
        await users.set_locale(session, user_id=world.user_id, locale="fr")
    first = await world.scan(_report(R({A: OK, B: OOS}), 3))
    second = await world.scan(_report(R({A: OOS, B: OK}), 10))
    assert sorted(await world.run_deliveries()) == ["delivered"] * 3
    report = f"{PUBLIC}/scans/{second}"
    (mail,) = world.smtp.wait_for(1)
    text = mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert (
        f"Depuis le scan n°{first} : 1 produit passé en rupture de stock, 1 produit rétabli."
        in text
    ), text
    assert f"- 1 produit passé en rupture de stock : {report}?status=out_of_stock" in text
    assert f"Le rapport complet : {report}" in text
    assert "newly out of stock" not in text and "Since scan" not in text
    html = mail.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert ">Ouvrir le rapport</a>" in html
    (_, _, body) = next(g for g in world.receiver.got if g[0] == "/slack")
    payload = json.loads(body)
    assert payload["text"].startswith(f"Depuis le scan n°{first}")
    assert "1 produit rétabli" in payload["blocks"][1]["text"]["text"]
    assert payload["blocks"][2]["elements"][0]["text"] == f"<{report}|Ouvrir le rapport>"
    ((_, _, body),) = [g for g in world.receiver.got if g[0] == "/hook"]
    event = json.loads(body)
    assert event["summary"].startswith(f"Since scan #{first}")
    assert [x["text"] for x in event["lines"]] == ["1 newly out of stock"]
