"""The Monitoring page and API: schedules per site, alert channels (private webhook addresses
refused by the guard, the signing secret shown once, Slack URLs masked), test sends and the
delivery log — on a real SQLite database and Redis."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.test_changes import OK, R
from tests.test_web_scans import Env, web_env

API = "/api/v1"
PUBLIC_HOOK = "https://93.184.215.14/hooks/ccbb?token=tok-123456"  # an IP literal: no DNS
SLACK = "https://93.184.215.14/services/T000/B000/XXXXsecretXXXX"


@pytest.fixture
def env(tmp_path: Path, test_redis_url: str) -> Iterator[Env]:
    with web_env(tmp_path, test_redis_url) as e:
        yield e


def _token(env: Env) -> dict[str, str]:
    r = env.post("/settings/tokens", {"name": "t"})  # redirects; the next page shows it once
    m = re.search(r'<code id="new-token">([^<]+)</code>', env.get(r.headers["location"]).text)
    assert m
    return {"Authorization": f"Bearer {m.group(1)}"}


def test_schedules_from_the_page(env: Env) -> None:
    me = env.signup("me@example.com")
    assert "No finished scan yet" in env.get("/monitoring").text
    scan_id = env.make_scan(me, R({"B000000001": OK}).build())
    page = env.get("/monitoring").text
    assert "https://site.example/" in page and f'name="scan_id" value="{scan_id}"' in page
    r = env.post("/monitoring/schedule", {"scan_id": str(scan_id), "frequency": "weekly",
                                          "weekday": "0", "hour": "6",
                                          "time_zone": "Europe/Paris"})  # fmt: skip
    assert r.status_code == 303
    page = env.get("/monitoring?done=saved").text
    assert "Schedule saved." in page and "every Monday at 06:00 (Europe/Paris)" in page
    assert "next: " in page
    bad = env.post("/monitoring/schedule", {"scan_id": str(scan_id), "frequency": "daily",
                                            "hour": "25", "time_zone": "Mars/Base"})  # fmt: skip
    assert bad.status_code == 400
    assert "Choose an hour from 0 to 23." in bad.text and "Europe/Paris" in bad.text
    # someone else's scan cannot be scheduled
    env.signup("other@example.com")
    r = env.post("/monitoring/schedule", {"scan_id": str(scan_id), "frequency": "daily"})
    assert r.status_code == 400 and "Scan this site once first" in r.text


def test_alert_channels_from_the_page(env: Env) -> None:
    env.signup("me@example.com")
    env.get("/monitoring")
    r = env.post("/monitoring/channels", {"kind": "webhook", "target": "http://10.0.0.7/hook"})
    assert r.status_code == 400
    assert "private, loopback or reserved address" in r.text
    assert 'value="http://10.0.0.7/hook"' in r.text  # the input is kept
    r = env.post("/monitoring/channels", {"kind": "email", "target": "not-an-address"})
    assert r.status_code == 400 and "Enter an e-mail address" in r.text
    r = env.post("/monitoring/channels", {"kind": "webhook", "target": PUBLIC_HOOK,
                                          "alert_on": "broken_and_recovered"})  # fmt: skip
    assert r.status_code == 201
    secret = re.search(r'<code id="new-secret">(whsec_[^<]+)</code>', r.text)
    assert secret
    page = env.get("/monitoring").text
    assert secret.group(1) not in page  # shown once
    assert "https://93.184.215.14/hooks/ccbb" in page and "tok-123456" not in page
    assert "Broken and recovered" in page
    (channel_id,) = re.findall(r"/monitoring/channels/(\d+)/test", page)
    assert env.post(f"/monitoring/channels/{channel_id}/test").status_code == 303
    page = env.get("/monitoring?done=test").text
    assert "Test message queued" in page and re.search(
        r"<td>test-[0-9a-f]{16}</td><td>pending", page
    )
    assert env.post(f"/monitoring/channels/{channel_id}/delete").status_code == 303
    assert (
        "/test"
        not in env.get("/monitoring")
        .text.split("Alerts", 1)[1]
        .split('<form method="post" action="/monitoring/channels"')[0]
    )


def test_the_monitoring_api(env: Env) -> None:
    me = env.signup("me@example.com")
    auth = _token(env)
    env.make_scan(me, R({"B000000001": OK}).build())
    r = env.client.put(f"{API}/schedules", headers=auth, json={
        "site": "https://site.example/", "frequency": "monthly", "day_of_month": 3,
        "hour": 23, "time_zone": "America/New_York"})  # fmt: skip
    assert r.status_code == 200, r.text
    assert r.json()["description"] == "on day 3 of every month at 23:00 (America/New_York)"
    assert env.client.get(f"{API}/schedules", headers=auth).json()["schedules"][0]["hour"] == 23
    r = env.client.put(f"{API}/schedules", headers=auth, json={
        "site": "https://unknown.example/", "frequency": "daily"})  # fmt: skip
    assert r.status_code == 422 and "scan it once first" in r.json()["message"]
    r = env.client.put(f"{API}/schedules", headers=auth, json={
        "site": "https://site.example/", "frequency": "monthly", "day_of_month": 31})  # fmt: skip
    assert r.status_code == 422 and "1 to 28" in r.json()["fields"]["day_of_month"]

    r = env.client.post(f"{API}/alert-channels", headers=auth, json={
        "kind": "slack", "target": "http://[::1]/services/x"})  # fmt: skip
    assert r.status_code == 422 and "target" in r.json()["fields"]
    r = env.client.post(f"{API}/alert-channels", headers=auth, json={
        "kind": "slack", "target": SLACK, "weekly_summary": True})  # fmt: skip
    assert r.status_code == 201, r.text
    made = r.json()
    assert made["signing_secret"] is None and "XXXXsecretXXXX" not in r.text
    listed = env.client.get(f"{API}/alert-channels", headers=auth)
    assert "XXXXsecretXXXX" not in listed.text and listed.json()["channels"][0]["weekly_summary"]
    r = env.client.post(f"{API}/alert-channels/{made['id']}/test", headers=auth)
    assert r.status_code == 202 and r.json()["state"] == "pending"
    log = env.client.get(f"{API}/alert-channels/{made['id']}/deliveries", headers=auth).json()
    assert [d["event"] for d in log["deliveries"]] == ["test"]
    # another user sees nothing of it
    env.signup("other@example.com")
    other = _token(env)
    r = env.client.get(f"{API}/alert-channels/{made['id']}/deliveries", headers=other)
    assert r.status_code == 404 and r.json()["error"] == "not_found"
    assert env.client.delete(f"{API}/alert-channels/{made['id']}", headers=other).status_code == 404
    assert env.client.delete(f"{API}/alert-channels/{made['id']}", headers=auth).status_code == 204
