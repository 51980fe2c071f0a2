"""The product's e-mail through a real local SMTP server (aiosmtpd): the outbox and its job
(text and HTML parts, sent once, retried, given up), sign-up confirmation (no scan until
confirmed, resend), and password reset (one hour, single use, the same answer for unknown
addresses) — on a real SQLite database and Redis."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from arq import Retry

from ccbb.sandbox.smtp_catcher import Catcher, running_catcher
from ccbb.settings import Settings
from notify.email import smtp_options
from notify.jobs import MAIL_TRIES, send_mail_job
from store import mail as store_mail
from store.db import make_engine, session_factory
from tests.test_web_scans import PASSWORD, SECRET, Env, web_env
from web import password_reset


@pytest.fixture
def catcher() -> Iterator[tuple[Catcher, int]]:
    with running_catcher() as running:
        yield running


@pytest.fixture
def env(tmp_path: Path, test_redis_url: str, catcher: tuple[Catcher, int]) -> Iterator[Env]:
    _, port = catcher
    with web_env(tmp_path, test_redis_url, CCBB_SMTP_HOST="127.0.0.1", CCBB_SMTP_PORT=port,
                 CCBB_SMTP_TLS="off", CCBB_PUBLIC_URL="http://testserver",
                 CCBB_SMTP_FROM="CCBB <robot@ccbb.example>") as e:  # fmt: skip
        yield e


def deliver(env: Env, job_try: int = 1) -> list[str]:
    """Run the mail job for every queued outbox mail, as a worker would (each was queued in
    arq: checked); the jobs' results."""

    async def go() -> list[str]:
        engine = make_engine(env.settings.sqlalchemy_url)
        try:
            sessions = session_factory(engine)
            async with sessions() as session:
                mails = await store_mail.recent_mails(session)
                queued = sorted((m for m in mails if m.state == "queued"), key=lambda m: m.id)
            ctx = {"sessions": sessions, "settings": env.settings, "job_try": job_try}
            out = []
            for mail in queued:
                stamp = int(mail.created_at.timestamp() * 1000)
                assert env.redis.exists(f"arq:job:mail:{mail.id}:{stamp}"), "not queued in arq"
                out.append(await send_mail_job(ctx, mail.id))
            return out
        finally:
            await engine.dispose()

    return list(asyncio.run(go()))


def _text(msg: EmailMessage) -> str:
    part = msg.get_body(("plain",))
    assert part is not None
    return str(part.get_content())  # type: ignore[attr-defined]


def _html(msg: EmailMessage) -> str:
    part = msg.get_body(("html",))
    assert part is not None
    return str(part.get_content())  # type: ignore[attr-defined]


def _link(msg: EmailMessage, path: str) -> str:
    m = re.search(rf"http://testserver({re.escape(path)}\?t=[\w.\-]+)", _text(msg))
    assert m, _text(msg)
    assert m.group(0) in _html(msg)  # the same link in both parts
    return m.group(1)


def _scan_form() -> dict[str, str]:
    return {"domain": "shop.example", "partner_tag": "me-20", "country": "US",
            "credential_id": "CID", "secret": SECRET, "version": "2.1", "tps": "1"}  # fmt: skip


# ---- the SMTP settings ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tls", "use_tls", "start_tls"),
    [("off", False, False), ("starttls", False, True), ("tls", True, False)],
)
def test_tls_setting_maps_to_the_client(tls: str, use_tls: bool, start_tls: bool) -> None:
    settings = Settings(CCBB_SMTP_HOST="mail.example", CCBB_SMTP_PORT=465, CCBB_SMTP_TLS=tls,
                        CCBB_SMTP_USER="u", CCBB_SMTP_PASSWORD="p4ss")  # fmt: skip
    options = smtp_options(settings)
    assert (options["use_tls"], options["start_tls"]) == (use_tls, start_tls)
    assert (options["hostname"], options["port"], options["username"], options["password"]) == (
        "mail.example", 465, "u", "p4ss",
    )  # fmt: skip
    assert "p4ss" not in repr(settings)


def test_a_bad_tls_setting_is_refused_with_the_choices() -> None:
    with pytest.raises(ValueError, match="'off', 'starttls' or 'tls'"):
        Settings(CCBB_SMTP_TLS="ssl")


# ---- sign-up confirmation ---------------------------------------------------------------


def test_signup_sends_a_confirmation_and_scanning_waits_for_it(
    env: Env, catcher: tuple[Catcher, int]
) -> None:
    smtp, _ = catcher
    env.signup("new@example.com")
    assert smtp.messages == []  # never sent inside the request
    assert deliver(env) == ["sent"]
    (msg,) = smtp.wait_for(1)
    assert msg["To"] == "new@example.com" and msg["From"] == "CCBB <robot@ccbb.example>"
    assert "Confirm your e-mail address" in msg["Subject"]
    assert msg.get_body(("plain",)) is not None and msg.get_body(("html",)) is not None
    link = _link(msg, "/confirm")
    r = env.post("/settings/tokens", {"name": "t"})  # redirects; the next page shows it once
    token = re.search(r'<code id="new-token">([^<]+)</code>', env.get(r.headers["location"]).text)
    assert token
    auth = {"Authorization": f"Bearer {token.group(1)}"}
    assert env.client.get("/api/v1/me", headers=auth).json()["email_confirmed"] is False
    r = env.client.post("/api/v1/scans", headers=auth, json={
        "site": "shop.example", "partner_tag": "me-20", "credential_id": "CID",
        "credential_secret": SECRET})  # fmt: skip
    assert r.status_code == 403 and r.json()["error"] == "email_not_confirmed"
    # logged in, but no scan before the address is confirmed; the page offers a resend
    r = env.post("/scans/new", _scan_form())
    assert r.status_code == 403
    assert "Confirm your e-mail address first: we sent a link to new@example.com" in r.text
    assert 'href="/confirm/resend"' in r.text
    # resend: another mail with a working link
    assert env.post("/confirm/resend").status_code == 200
    assert deliver(env) == ["sent"]
    assert _link(smtp.wait_for(2)[1], "/confirm").startswith("/confirm?t=")
    # the link confirms (it works logged out too), then scanning works
    env.client.cookies.clear()
    assert "Your e-mail address is confirmed" in env.get(link).text
    assert "already confirmed" in env.get(link).text
    env.get("/login")
    env.post("/login", {"email": "new@example.com", "password": PASSWORD})
    assert env.post("/scans/new", _scan_form()).status_code == 303
    assert env.client.get("/api/v1/me", headers=auth).json()["email_confirmed"] is True


BANNER = 'id="unconfirmed-banner"'
DASHBOARD_PAGES = ("/", "/scans/new", "/monitoring", "/settings", "/billing", "/affiliate",
                   "/account", "/billing/payments")  # fmt: skip


def test_every_dashboard_page_shows_the_unconfirmed_banner_until_the_link_is_followed(
    env: Env, catcher: tuple[Catcher, int]
) -> None:
    smtp, _ = catcher
    env.signup("late@example.com")
    deliver(env)
    link = _link(smtp.wait_for(1)[0], "/confirm")
    for path in DASHBOARD_PAGES:
        r = env.get(path)
        assert r.status_code == 200, (path, r.status_code)
        assert BANNER in r.text, path
        banner = r.text.split(BANNER, 1)[1].split("</p>", 1)[0]
        assert "late@example.com" in banner and 'href="/confirm/resend"' in banner, path
    # the link, followed in the same browser: the banner is gone at once, on every page
    assert "Your e-mail address is confirmed" in env.get(link).text
    for path in DASHBOARD_PAGES:
        assert BANNER not in env.get(path).text, path


def test_a_confirmed_or_mail_less_account_sees_no_banner(
    tmp_path: Path, test_redis_url: str
) -> None:
    with web_env(tmp_path, test_redis_url) as env:  # no SMTP: nothing to confirm
        env.signup("free@example.com")
        assert BANNER not in env.get("/").text
        assert BANNER not in env.get("/settings").text


def test_a_forged_confirmation_link_is_refused(env: Env) -> None:
    env.signup("new@example.com")
    r = env.get("/confirm?t=eyJ1IjoxfQ.forged.sig")
    assert r.status_code == 400 and "not valid any more" in r.text


def test_without_smtp_accounts_need_no_confirmation(tmp_path: Path, test_redis_url: str) -> None:
    with web_env(tmp_path, test_redis_url) as env:
        env.signup("free@example.com")
        assert env.post("/scans/new", _scan_form()).status_code == 303


# ---- password reset ---------------------------------------------------------------------


def test_password_reset_link_works_once_and_the_answer_hides_who_exists(
    env: Env, catcher: tuple[Catcher, int]
) -> None:
    smtp, _ = catcher
    env.signup("me@example.com")
    deliver(env)  # the confirmation
    env.client.cookies.clear()
    env.get("/password/forgot")
    known = env.post("/password/forgot", {"email": "me@example.com"})
    unknown = env.post("/password/forgot", {"email": "nobody@example.com"})
    assert known.status_code == unknown.status_code == 200
    assert known.text.replace("me@example.com", "X") == unknown.text.replace(
        "nobody@example.com", "X"
    )
    # asking twice for the same password is one mail
    env.post("/password/forgot", {"email": "me@example.com"})
    assert deliver(env) == ["sent"]
    msg = smtp.wait_for(2)[1]
    assert msg["To"] == "me@example.com" and "Reset your" in msg["Subject"]
    link = _link(msg, "/password/reset")
    token = link.split("t=", 1)[1]
    assert env.get(link).status_code == 200
    r = env.post("/password/reset", {"t": token, "password": "short"})
    assert r.status_code == 400 and "field-error" in r.text
    r = env.post("/password/reset", {"t": token, "password": "a brand new password"})
    assert r.status_code == 303 and r.headers["location"] == "/login?reset=1"
    env.get("/login")
    ok = env.post("/login", {"email": "me@example.com", "password": "a brand new password"})
    assert ok.status_code == 303
    # used: the link is dead
    again = env.post("/password/reset", {"t": token, "password": "yet another password"})
    assert again.status_code == 400 and "not valid any more" in again.text


def test_a_reset_link_older_than_one_hour_is_refused(
    env: Env, catcher: tuple[Catcher, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    import itsdangerous.timed

    env.signup("me@example.com")
    env.client.cookies.clear()
    env.get("/password/forgot")
    env.post("/password/forgot", {"email": "me@example.com"})
    deliver(env)
    smtp, _ = catcher
    link = _link(smtp.wait_for(2)[1], "/password/reset")
    real = itsdangerous.timed.time.time
    monkeypatch.setattr(itsdangerous.timed.time, "time",
                        lambda: real() + password_reset.VALID_FOR + 5)  # fmt: skip
    r = env.get(link)
    assert r.status_code == 400 and "older than one hour" in r.text


# ---- the job: once, retried, given up -----------------------------------------------------


def test_a_mail_is_sent_once_and_retried_when_the_server_is_down(
    tmp_path: Path, test_redis_url: str
) -> None:
    with running_catcher() as (smtp, port):
        pass  # a port where nobody listens any more
    with web_env(tmp_path, test_redis_url, CCBB_SMTP_HOST="127.0.0.1", CCBB_SMTP_PORT=port,
                 CCBB_SMTP_TLS="off") as env:  # fmt: skip
        env.signup("me@example.com")
        with pytest.raises(Retry):
            deliver(env, job_try=1)
        mail = _only_mail(env)
        assert (mail.state, mail.attempts) == ("queued", 1) and mail.last_error
        assert deliver(env, job_try=MAIL_TRIES)[0].startswith("failed:")
        assert _only_mail(env).state == "failed"
    with (
        running_catcher() as (smtp, port),
        web_env(tmp_path / "2", test_redis_url, CCBB_SMTP_HOST="127.0.0.1",
                CCBB_SMTP_PORT=port, CCBB_SMTP_TLS="off") as env,
    ):  # fmt: skip
        env.signup("me@example.com")
        assert deliver(env) == ["sent"]
        # the job run again (arq retried after a lost answer): nothing sent twice
        mail = _only_mail(env)

        async def again() -> Any:
            engine = make_engine(env.settings.sqlalchemy_url)
            try:
                ctx = {"sessions": session_factory(engine), "settings": env.settings}
                return await send_mail_job(ctx, mail.id)
            finally:
                await engine.dispose()

        assert asyncio.run(again()) == "nothing to do (sent)"
        assert len(smtp.wait_for(1)) == 1


def _only_mail(env: Env) -> Any:
    async def go(session: Any) -> Any:
        (mail,) = await store_mail.recent_mails(session)
        return mail

    return env.run(env._with_session(go))


def test_the_banner_speaks_the_users_language(env: Env) -> None:
    env.signup("fr@example.com")
    page = env.get("/?lang=fr").text
    banner = page.split(BANNER, 1)[1].split("</p>", 1)[0]
    assert "Confirmez votre adresse e-mail" in banner and "fr@example.com" in banner
    assert "Renvoyer l'e-mail de confirmation" in banner.replace("&#39;", "'")
