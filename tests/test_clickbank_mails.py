"""The mails of a ClickBank purchase, received by a real local SMTP server (aiosmtpd): a receipt
for each payment (one, however often ClickBank delivers the notification or the job runs), the
invitation of a buyer whose account the purchase made — sent by the worker's jobs (never inside
the INS request), text and HTML parts, links from CCBB_PUBLIC_URL, in the buyer's language.
Real app, real Redis (an arq worker), migrated SQLite; bodies encrypted by the test's own
ClickBank implementation."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from arq.connections import RedisSettings, create_pool
from arq.worker import Worker

from billing.clickbank_links import REFERENCE_PARAM
from ccbb.clickbank_jobs import clickbank_event_job
from ccbb.sandbox.smtp_catcher import Catcher, running_catcher
from notify.jobs import send_mail_job
from store import mail as store_mail
from store import users as store_users
from store.db import make_engine, session_factory
from tests.clickbank_fixtures import encrypt_ins, notification
from tests.test_clickbank_ins import CB, CLICKBANK_ENV, PACK, STARTER, sale
from tests.test_web_scans import PASSWORD, web_env
from web.signing import session_secret


@pytest.fixture
def catcher() -> Iterator[tuple[Catcher, int]]:
    with running_catcher() as running:
        yield running


class MailCB(CB):
    def work(self) -> None:
        """An arq worker with the ClickBank and mail jobs, until the queue is empty."""
        settings = self.env.settings

        async def go() -> None:
            engine = make_engine(settings.sqlalchemy_url)
            pool = await create_pool(  # jobs queued by jobs go to this queue, as in ccbb worker
                RedisSettings.from_dsn(settings.redis_url or ""),
                default_queue_name=settings.queue_name,
            )

            async def startup(ctx: dict[str, Any]) -> None:
                ctx.update(settings=settings, sessions=session_factory(engine),
                           signing_secret=session_secret(settings))  # fmt: skip

            worker = Worker(
                functions=[clickbank_event_job, send_mail_job], redis_pool=pool,
                queue_name=settings.queue_name, burst=True, on_startup=startup,
                poll_delay=0.05, max_tries=8,
            )  # fmt: skip
            try:
                await worker.main()
            finally:
                await worker.close()
                await engine.dispose()

        asyncio.run(go())

    def outbox(self) -> list[store_mail.OutboxMail]:
        return list(self.db(lambda s: store_mail.recent_mails(s)))


@pytest.fixture
def cb(tmp_path: Path, test_redis_url: str, catcher: tuple[Catcher, int]) -> Iterator[MailCB]:
    _, port = catcher
    with web_env(tmp_path, test_redis_url, **CLICKBANK_ENV, CCBB_SMTP_HOST="127.0.0.1",
                 CCBB_SMTP_PORT=port, CCBB_SMTP_TLS="off", CCBB_PUBLIC_URL="http://testserver",
                 CCBB_SMTP_FROM="CCBB <robot@ccbb.example>") as env:  # fmt: skip
        yield MailCB(env)


def text_of(msg: EmailMessage) -> str:
    part = msg.get_body(("plain",))
    assert part is not None
    return str(part.get_content())  # type: ignore[attr-defined]


def html_of(msg: EmailMessage) -> str:
    part = msg.get_body(("html",))
    assert part is not None
    return str(part.get_content())  # type: ignore[attr-defined]


def confirmations(smtp: Catcher) -> list[EmailMessage]:
    return [m for m in smtp.messages if "Confirm your e-mail" in str(m["Subject"])]


def others(smtp: Catcher) -> list[EmailMessage]:
    return [m for m in smtp.messages if m not in confirmations(smtp)]


def test_a_payment_gets_one_receipt_even_when_clickbank_sends_it_twice(
    cb: MailCB, catcher: tuple[Catcher, int]
) -> None:
    smtp, _ = catcher
    user = cb.env.signup("payer@example.com")
    ref = cb.checkout(user)
    cb.work()  # the sign-up's confirmation mail
    smtp.wait_for(1)
    payload = sale(ref, receipt="RCPT0001")
    assert cb.ins(payload).status_code == 200
    assert cb.ins({**payload, "attemptCount": 2}).status_code == 200  # redelivered (new IV)
    assert others(smtp) == []  # nothing is sent inside the request
    cb.work()
    cb.ins({**payload, "attemptCount": 3})  # once more, after it was processed
    cb.work()
    smtp.wait_for(2)
    (msg,) = others(smtp)
    assert msg["To"] == "payer@example.com" and msg["From"] == "CCBB <robot@ccbb.example>"
    assert msg["Subject"] == "Your ClickClickBankBank receipt: Starter"
    text, html = text_of(msg), html_of(msg)
    for part in (text, html):
        assert "RCPT0001" in part and "Starter" in part and "$19.00" in part
        assert "10 scan credits" in part and "Your balance now: 10 credits." in part
        assert "CLKBANK*COM" in part
        assert "http://testserver/billing/payments" in part
    assert "Your plan runs until Dec 31, 2026." in text
    assert [m.key for m in cb.outbox() if m.key.startswith("receipt:")] == [
        "receipt:VENDOR|RCPT0001|SALE|2026-12-01T17:00:00Z"
    ]


def test_a_rebill_gets_its_own_renewal_receipt(cb: MailCB, catcher: tuple[Catcher, int]) -> None:
    smtp, _ = catcher
    user = cb.env.signup("renew@example.com")
    ref = cb.checkout(user)
    cb.ins(sale(ref, receipt="RCPT0002"))
    cb.work()  # the sale first (a rebill before it would wait for it: another test's matter)
    cb.ins(notification("BILL", receipt="RCPT0002-B002", item=STARTER, recurring=True,
                        time="2026-12-31T10:00:00-07:00", next_payment="2027-01-31T10:00:00-07:00",
                        variables={REFERENCE_PARAM: ref}))  # fmt: skip
    cb.work()
    smtp.wait_for(3)
    subjects = sorted(str(m["Subject"]) for m in others(smtp))
    assert subjects == [
        "Your ClickClickBankBank receipt: Starter",
        "Your ClickClickBankBank renewal receipt: Starter",
    ]
    renewal = next(m for m in others(smtp) if "renewal" in str(m["Subject"]))
    assert "RCPT0002-B002" in text_of(renewal) and "Your plan was renewed." in text_of(renewal)
    assert "Your balance now: 20 credits." in text_of(renewal)


def test_refunds_and_test_notifications_send_no_receipt(
    cb: MailCB, catcher: tuple[Catcher, int]
) -> None:
    smtp, _ = catcher
    user = cb.env.signup("refunded@example.com")
    ref = cb.checkout(user, sku="credits_10")
    cb.ins(sale(ref, receipt="RCPT0003", item=PACK))
    cb.ins(notification("RFND", receipt="RCPT0003", item=PACK, variables={REFERENCE_PARAM: ref},
                        time="2026-12-02T10:00:00-07:00"))  # fmt: skip
    cb.ins(notification("TEST", receipt="********", item=PACK))
    cb.work()
    smtp.wait_for(2)
    assert [str(m["Subject"]) for m in others(smtp)] == [
        "Your ClickClickBankBank receipt: 10 scan credits"
    ]


def test_a_new_buyer_is_mailed_the_invitation_and_the_receipt_in_their_language(
    cb: MailCB, catcher: tuple[Catcher, int]
) -> None:
    smtp, _ = catcher
    payload = notification("SALE", receipt="RCPT0004", item=PACK, email="Nouveau@example.com")
    payload["orderLanguage"] = "FR"  # the buyer used ClickBank's order form in French
    cb.ins(payload)
    cb.ins(encrypt_ins({**payload, "attemptCount": 2}))
    cb.work()
    cb.work()
    mails = smtp.wait_for(2)
    assert len(mails) == 2 and all(m["To"] == "nouveau@example.com" for m in mails)
    invite = next(m for m in mails if "mot de passe" in str(m["Subject"]))
    receipt = next(m for m in mails if "reçu" in str(m["Subject"]))
    assert invite["Subject"] == "Choisissez votre mot de passe ClickClickBankBank"
    assert "Votre achat sur ClickBank vous a créé un compte" in text_of(invite)
    assert receipt["Subject"] == "Votre reçu ClickClickBankBank : 10 scan credits"
    assert "25,00 $" in text_of(receipt) and "Votre solde : 10 crédits." in text_of(receipt)
    # the link of the mail (the same in both parts) sets the password, once
    found = re.search(r"http://testserver(/clickbank/welcome/[\w.\-]+)", text_of(invite))
    assert found and found.group(0) in html_of(invite)
    path = found.group(1)
    assert cb.env.client.get(path).status_code == 200
    assert cb.env.post(path, {"password": PASSWORD}).status_code == 303
    assert "no longer valid" in cb.env.client.get(path).text
    assert [m.key for m in cb.outbox() if m.key.startswith("invite:")] == [
        f"invite:{cb.db(lambda s: store_users.get_user_by_email(s, email='nouveau@example.com')).id}"
    ]


def test_an_account_in_french_gets_its_receipt_in_french(
    cb: MailCB, catcher: tuple[Catcher, int]
) -> None:
    smtp, _ = catcher
    user = cb.env.signup("fr@example.com")
    cb.env.get("/?lang=fr")  # the account remembers the language
    ref = cb.checkout(user, sku="credits_10")
    cb.ins(sale(ref, receipt="RCPT0005", item=PACK))  # orderLanguage EN: the account wins
    cb.work()
    smtp.wait_for(2)
    (msg,) = others(smtp)
    assert msg["Subject"] == "Votre reçu ClickClickBankBank : 10 scan credits"
    assert "Merci pour votre paiement." in text_of(msg)
    assert "Votre forfait et vos paiements" in html_of(msg)
