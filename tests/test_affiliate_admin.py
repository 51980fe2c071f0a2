"""The operator's affiliate page: only operators (is_admin) see it — anyone else gets a 404, as
for an address that does not exist; decisions are CSRF-checked forms; refuse, revoke, block
and reinstate change what the link and the commissions do; the flagged self-referrals are
listed with who is who. Real app, SQLite and Redis."""

# ruff: noqa: F811  (the fixtures are imported from test_affiliates)
from __future__ import annotations

import re
import time

from starlette.testclient import TestClient

from ccbb.settings import Settings
from store import affiliates as store_aff
from store import users as store_users
from tests.test_affiliates import (  # noqa: F401
    PASSWORD,
    app_settings,
    client,
    db,
    join,
    new_affiliate,
    signup,
    token,
    visits,
)
from web import affiliate
from web.auth import hash_password

OPERATOR = "operator@example.com"


def _operator(client: TestClient, settings: Settings) -> None:
    """An operator (``ccbb user create --admin``), logged in through the form."""
    db(settings, lambda s: store_users.create_user(
        s, email=OPERATOR, password_hash=hash_password(PASSWORD), is_admin=True))  # fmt: skip
    login(client, OPERATOR)


def login(client: TestClient, email: str) -> None:
    client.cookies.clear()
    t = token(client, "/login")
    r = client.post("/login", data={"email": email, "password": PASSWORD, "csrftoken": t},
                    follow_redirects=False)  # fmt: skip
    assert r.status_code == 303, r.text


def _decide(client: TestClient, ref_id: str, action: str, reason: str = "") -> object:
    t = token(client, "/admin/affiliates")
    return client.post(f"/admin/affiliates/{ref_id}/status",
                       data={"csrftoken": t, "action": action, "reason": reason},
                       follow_redirects=False)  # fmt: skip


def _status(settings: Settings, ref_id: str) -> str:
    found = db(settings, lambda s: store_aff.get_by_ref(s, ref_id=ref_id))
    assert found is not None
    return found.status


def test_only_operators_see_the_page_and_act(client: TestClient, app_settings: Settings) -> None:
    aff = new_affiliate(client, app_settings, "member@example.com")
    # logged out: the login page; a member, even the one concerned: not found
    r = client.get("/admin/affiliates", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    login(client, "member@example.com")
    assert client.get("/admin/affiliates").status_code == 404
    assert "Affiliates (operator)" not in client.get("/affiliate").text
    assert "/admin/affiliates" not in client.get("/affiliate").text
    t = token(client, "/affiliate")
    r = client.post(f"/admin/affiliates/{aff.ref_id}/status",
                    data={"csrftoken": t, "action": "reinstate"}, follow_redirects=False)  # fmt: skip
    assert r.status_code == 404
    db(app_settings, lambda s: store_aff.set_status(s, ref_id=aff.ref_id, status="revoked"))
    r = client.post(f"/admin/affiliates/{aff.ref_id}/status",
                    data={"csrftoken": t, "action": "reinstate"}, follow_redirects=False)  # fmt: skip
    assert r.status_code == 404 and _status(app_settings, aff.ref_id) == "revoked"
    # an operator, without the form's token: refused by the CSRF check, nothing changes
    _operator(client, app_settings)
    r = client.post(f"/admin/affiliates/{aff.ref_id}/status", data={"action": "reinstate"},
                    follow_redirects=False)  # fmt: skip
    assert r.status_code == 403 and _status(app_settings, aff.ref_id) == "revoked"
    # with it: done, and said
    r = _decide(client, aff.ref_id, "reinstate", "appeal accepted")
    assert r.status_code == 303  # type: ignore[attr-defined]
    page = client.get(r.headers["location"]).text  # type: ignore[attr-defined]
    assert f"{aff.ref_id} is active again." in page
    assert _status(app_settings, aff.ref_id) == "active"
    # nonsense is refused
    assert _decide(client, aff.ref_id, "delete").status_code == 400  # type: ignore[attr-defined]
    assert _decide(client, "ZZZZZZZZZZ", "revoke").status_code == 404  # type: ignore[attr-defined]
    assert _decide(client, "not-a-ref", "revoke").status_code == 404  # type: ignore[attr-defined]


def test_the_operator_sees_self_referrals_and_blocks_the_account(
    client: TestClient, app_settings: Settings
) -> None:
    signup(client, "cheat@example.com")
    join(client, paypal_email="cheat-pay@example.com", adult="yes", accept_terms="yes")
    user = db(app_settings, lambda s: store_users.get_user_by_email(s, email="cheat@example.com"))
    assert user is not None
    aff = db(app_settings, lambda s: store_aff.get_by_user(s, user_id=user.id))
    assert aff is not None
    # a second account of their own, with their PayPal address, through their link
    client.cookies.clear()
    client.get(f"/r/{aff.ref_id}", follow_redirects=False)
    signup(client, "cheat-pay@example.com")
    honest = new_affiliate(client, app_settings, "honest@example.com")

    _operator(client, app_settings)
    page = client.get("/admin/affiliates").text
    member = re.search(rf'<tr id="member-{aff.ref_id}">(.*?)</tr>', page, re.S)
    assert member is not None and "cheat@example.com" in member.group(1)
    assert '<b class="badge">1</b>' in member.group(1)  # one self-referral flagged
    flagged = re.search(r'<table id="flagged">(.*?)</table>', page, re.S)
    assert flagged is not None
    assert "cheat-pay@example.com" in flagged.group(1) and aff.ref_id in flagged.group(1)
    assert "PayPal" in flagged.group(1)  # why: the affiliate's e-mail or PayPal address
    assert honest.ref_id in page and honest.ref_id not in flagged.group(1)
    # the filter by status
    assert f'id="member-{aff.ref_id}"' in client.get("/admin/affiliates?status=active").text
    assert f'id="member-{aff.ref_id}"' not in client.get("/admin/affiliates?status=blocked").text

    r = _decide(client, aff.ref_id, "block", "self-referral")
    assert r.status_code == 303  # type: ignore[attr-defined]
    assert _status(app_settings, aff.ref_id) == store_aff.BLOCKED
    assert f'id="member-{aff.ref_id}"' in client.get("/admin/affiliates?status=blocked").text
    # blocked: the link counts nothing, the member is told
    time.sleep(affiliate.REF_CACHE_SECONDS)
    client.cookies.clear()
    client.get(f"/r/{aff.ref_id}", follow_redirects=False)
    assert visits(app_settings, aff) == (1, 1)  # the one visit from before the block
    login(client, "cheat@example.com")
    assert "blocked for self-referral" in client.get("/affiliate").text
    # the other decisions, through the same form
    login(client, OPERATOR)
    for action, status in (("revoke", "revoked"), ("refuse", "refused")):
        assert _decide(client, honest.ref_id, action).status_code == 303  # type: ignore[attr-defined]
        assert _status(app_settings, honest.ref_id) == status


def test_the_cli_blocks_too(client: TestClient, app_settings: Settings) -> None:
    import argparse
    import asyncio

    from ccbb import affiliates_cli

    aff = new_affiliate(client, app_settings, "cli-block@example.com")
    args = argparse.Namespace(affiliates_command="block", ref_id=aff.ref_id.lower(),
                              reason="self-referral", status=None)  # fmt: skip
    assert asyncio.run(affiliates_cli._run(args, app_settings.sqlalchemy_url)) == 0
    found = db(app_settings, lambda s: store_aff.get_by_ref(s, ref_id=aff.ref_id))
    assert found is not None and (found.status, found.status_reason) == ("blocked", "self-referral")
