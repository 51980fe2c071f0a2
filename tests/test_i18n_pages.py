"""The dashboard's own pages in French, through the real app, database and Redis: Billing with
Babel's money and dates and the ledger's comments, Monitoring, the Affiliate page, the delete
question, the error page, the password pages; the CSRF and body-limit refusals in the
browser's language while the JSON API stays English; the engine-side messages the pages
translate; the mails in the language they are written in."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html import unescape
from pathlib import Path
from typing import Any

import pytest

from notify import messages
from store import credits as store_credits
from tests.test_changes import OK, R
from tests.test_web_scans import Env, web_env
from web import engine_messages, i18n

FRENCH = {"Accept-Language": "fr-FR,fr;q=0.9"}


@pytest.fixture
def env(tmp_path: Path, test_redis_url: str) -> Iterator[Env]:
    with web_env(tmp_path, test_redis_url, CCBB_SIGNUP_CREDITS=3) as e:
        e.client.headers.update(FRENCH)
        yield e


def _text(html: str) -> str:
    """The page's words (tags and scripts dropped), for looking for words in it."""
    html = re.sub(r"(?s)<(script|style)\b.*?</\1>", " ", html)
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def test_billing_in_french(env: Env) -> None:
    user_id = env.signup("acheteur@example.com")
    page = env.get("/billing").text
    assert '<html lang="fr">' in page
    words = _text(page)
    for french in ("Facturation", "Crédits de scan restants", "Votre forfait", "Aucun forfait",
                   "Forfaits", "Packs de crédits", "Historique", "Crédits de bienvenue",
                   "19,00 $ / mois", "10 crédits de scan chaque mois, scans jusqu'à 1 000 pages",
                   "Acheter"):  # fmt: skip
        assert french in words.replace("\u202f", " ").replace("\xa0", " "), french
    for english in ("Billing", "Your plan", "Welcome credits", "What you get", "/ month"):
        assert english not in words, english
    assert re.search(r"\d{1,2} déc\.|\d{1,2} [a-zéû]+\.? 20\d\d", words)  # Babel's dates

    async def spend(session: Any) -> None:  # a comment the ledger keeps in English
        await store_credits.grant(
            session, user_id=user_id, amount=2, kind="grant", source="admin",
            comment="Added by support", idempotency_key="t:support",
        )  # fmt: skip

    env.run(env._with_session(spend))
    words = _text(env.get("/billing").text)
    assert "Ajoutés par le support" in words and "Added by support" not in words


def test_monitoring_affiliate_and_delete_in_french(env: Env) -> None:
    me = env.signup("moi@example.com")
    words = _text(env.get("/monitoring").text)
    assert "Scans programmés" in words and "Aucun scan terminé pour l'instant" in words
    assert "Scheduled scans" not in words and "Send to" not in words
    scan_id = env.make_scan(me, R({"B000000001": OK}).build())
    r = env.post("/monitoring/schedule", {"scan_id": str(scan_id), "frequency": "monthly",
                                          "day_of_month": "3", "hour": "23",
                                          "time_zone": "Europe/Paris"})  # fmt: skip
    assert r.status_code == 303
    words = _text(env.get("/monitoring?done=saved").text)
    assert "Programmation enregistrée." in words
    assert "le 3 de chaque mois à 23:00 (Europe/Paris)" in words
    bad = env.post("/monitoring/schedule", {"scan_id": str(scan_id), "frequency": "daily",
                                            "hour": "25", "time_zone": "Mars/Base"})  # fmt: skip
    words = _text(bad.text)
    assert bad.status_code == 400 and "Choisissez une heure entre 0 et 23." in words
    assert "Fuseau horaire « Mars/Base » inconnu" in words
    assert "Choose an hour" not in words

    words = _text(env.get("/affiliate").text)
    assert "Rejoindre le programme d'affiliation" in words and "J'ai 18 ans ou plus" in words
    refused = env.post("/affiliate", {"paypal_email": "nope", "website": ""})
    words = _text(refused.text)
    assert refused.status_code == 400 and "Vous devez avoir 18 ans ou plus" in words
    assert "You must be" not in words

    words = _text(env.get(f"/scans/{scan_id}/delete").text)
    assert "Supprimer ce scan ?" in words and f"Supprimer le scan n°{scan_id}" in words
    assert "(terminé)" in words  # the scan's state in the page's words
    words = _text(env.get("/no/such/page").text)
    assert "Page introuvable" in words and "Retour au tableau de bord" in words


def test_logged_out_pages_in_french(env: Env) -> None:
    words = _text(env.get("/password/forgot").text)
    assert "Mot de passe oublié ?" in words and "Retour à la connexion" in words
    words = _text(env.get("/password/reset?t=forged").text)
    assert "Choisir un nouveau mot de passe" in words and "Ce lien n'est plus valable" in words


def test_refusals_in_the_browser_language_and_the_api_in_english(env: Env) -> None:
    env.signup("refus@example.com")
    # a form without its CSRF token
    r = env.client.post("/settings", data={"name": "x"}, follow_redirects=False)
    assert r.status_code == 403 and r.text.startswith("Ce formulaire n'a pas pu être accepté")
    r = env.client.post("/settings", data={"name": "x"}, headers={"Accept-Language": "en"})
    assert r.status_code == 403 and r.text.startswith("This form could not be accepted")
    # a body over the limit: the page's refusal in French, the API's in English
    big = "x" * (65 * 1024)
    r = env.client.post("/settings", content=big, headers={"Content-Type": "text/plain"})
    assert r.status_code == 413 and "La requête est trop volumineuse" in r.text
    r = env.client.post("/api/v1/scans", content=big, headers={"Content-Type": "text/plain"})
    assert r.status_code == 413 and r.json()["message"].startswith("The request is too large")


def test_stored_english_messages_are_translated_in_pages() -> None:
    i18n.use("fr")
    try:
        assert engine_messages.translate(
            "Refund: scan #3 of shop.example cancelled before it started"
        ) == ("Remboursement : scan n°3 de shop.example annulé avant d'avoir commencé")
        assert engine_messages.translate("Scan #41 queued") == "Scan n°41 mis en file d'attente"
        assert engine_messages.translate("Paused: no scan credits left") == (
            "En pause : plus de crédits de scan"
        )
        assert engine_messages.translate(
            "You already have 3 scans queued or running (at most 3 at once): wait for one to "
            "finish (or cancel one), then start this one."
        ).startswith("Vous avez déjà 3 scans en attente ou en cours (au plus 3 à la fois)")
        assert engine_messages.translate("Goodwill gesture") == "Goodwill gesture"  # unknown
    finally:
        i18n.use("en")
    assert engine_messages.translate("Scan #41 queued") == "Scan #41 queued"


def test_mails_in_the_language_they_are_written_in() -> None:
    with i18n.speaking("fr"):
        mail = messages.confirmation("http://x.example/confirm?t=1")
        reset = messages.password_reset("http://x.example/password/reset?t=1")
        paused = messages.schedule_paused("https://site.example/", "http://x.example/monitoring")
        week = messages.weekly_summary([], "http://x.example/")
    assert mail.subject == "Confirmez votre adresse e-mail pour ClickClickBankBank"
    assert (
        "Bienvenue sur ClickClickBankBank !" in mail.text and "Confirmer mon adresse" in mail.html
    )
    assert reset.subject == "Réinitialisez votre mot de passe ClickClickBankBank"
    assert "scans programmés de https://site.example/ sont en pause" in paused.text
    assert week.subject == "ClickClickBankBank : votre semaine"
    assert i18n.current() == "en"  # speaking() ends with its block
    assert (
        messages.confirmation("l").subject == "Confirm your e-mail address for ClickClickBankBank"
    )
    with i18n.speaking(None):  # an account without a choice: English
        assert messages.nothing_changed() == "nothing changed"


def test_clickbank_pages_in_french(tmp_path: Path, test_redis_url: str) -> None:
    from tests.test_clickbank_ins import CLICKBANK_ENV

    with web_env(tmp_path, test_redis_url, **CLICKBANK_ENV) as env:
        env.client.headers.update(FRENCH)
        env.signup("client@example.com")
        words = _text(env.get("/billing/payments").text)
        assert "Forfait et paiements" in words and "Vous n'avez pas de forfait." in words
        assert "Packs de crédits" in words and "10 crédits de scan" in words
        assert "25,00 $" in words and "Pas encore de paiement." in words
        assert "Plan and payments" not in words and "10 scan credits" not in words
        page = env.get("/clickbank/upsell/after-plan/pack50?cbf=x").text
        words = _text(page)
        assert "Votre commande est passée. Une dernière offre avant de partir :" in words
        assert "Ajoutez 50 crédits de scan à votre commande" in words  # the catalogue's French
        assert "Ajouter à ma commande" in words and "Non merci, passer cette offre" in words
        assert "99,00 $" in words and "Add 50 scan credits" not in words
        words = _text(env.get("/clickbank/thank-you?cbreceipt=X&cbpop=BAD&item=1&time=1").text)
        assert "Nous n'avons pas pu confirmer cet achat" in words


async def test_clickbank_api_errors_are_known_to_the_pages() -> None:
    """ClickBank's REST API errors, raised for real (no key; nothing listening; a refusal from
    a local server), are messages the payments page shows in French."""
    from aiohttp import web

    from billing.clickbank_api import ClickbankApi, ClickbankApiError

    async def refuse(request: web.Request) -> web.Response:
        return web.Response(status=403, text="no such receipt")

    app = web.Application()
    app.router.add_post("/{tail:.*}", refuse)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    raised = []
    try:
        for api in (ClickbankApi(f"http://127.0.0.1:{port}", ""),
                    ClickbankApi("http://127.0.0.1:9", "key"),
                    ClickbankApi(f"http://127.0.0.1:{port}", "key")):  # fmt: skip
            with pytest.raises(ClickbankApiError) as caught:
                await api.refund("RECEIPT1", comment="test")
            raised.append(str(caught.value))
    finally:
        await runner.cleanup()
    with i18n.speaking("fr"):
        shown = [engine_messages.translate(m) for m in raised]
    assert shown == [
        "La clé d'API ClickBank n'est pas configurée (CCBB_CLICKBANK_API_KEY)",
        "Impossible de joindre ClickBank ; réessayez plus tard",
        "ClickBank a refusé la demande (403) : no such receipt",
    ], shown


def test_clickbank_ledger_comments_in_french() -> None:
    """The comments the ClickBank effects write on the ledger (made here by the real
    billing.clickbank_effects from notifications) read in French on the Billing page."""
    from billing import clickbank_effects as fx
    from billing import clickbank_ins as ins
    from billing.catalogue import bundled_catalogue
    from tests.clickbank_fixtures import SECRET, VENDOR, encrypt_ins, notification

    catalogue = bundled_catalogue()
    comments = []
    for kind in ("SALE", "BILL", "RFND"):
        body = encrypt_ins(notification(kind, item="2", recurring=True))
        n, _ = ins.read_notification(body, secret=SECRET, vendor=VENDOR)
        comments += [e.comment for e in fx.effects(n, catalogue.by_clickbank_item)
                     if hasattr(e, "comment")]  # fmt: skip
    assert comments == ["ClickBank original ABCD1234: plan_pro",
                        "ClickBank renewal ABCD1234: plan_pro",
                        "ClickBank RFND ABCD1234: plan_pro"], comments  # fmt: skip
    with i18n.speaking("fr"):
        shown = [engine_messages.translate(c) for c in comments]
    assert shown == ["Achat ClickBank ABCD1234 : plan_pro",
                     "Renouvellement ClickBank ABCD1234 : plan_pro",
                     "Remboursement ClickBank ABCD1234 : plan_pro"], shown  # fmt: skip
