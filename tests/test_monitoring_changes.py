"""Changes stored when a scan finishes (the previous finished scan of the same user, site and
marketplace), shown at the top of the report with links to the filtered table, and returned
by ``GET /api/v1/scans/{id}/changes`` — on a real SQLite database and Redis."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from ccbb import monitor
from scanner.classify import Status
from scanner.scan import ScanReport
from store.db import make_engine, session_factory
from tests.test_changes import GONE, OK, OOS, R
from tests.test_web_scans import Env, web_env

API = "/api/v1"


@pytest.fixture
def env(tmp_path: Path, test_redis_url: str) -> Iterator[Env]:
    with web_env(tmp_path, test_redis_url) as e:
        yield e


def _record(env: Env, scan_id: int, report: ScanReport) -> Any:
    async def go() -> Any:
        engine = make_engine(env.settings.sqlalchemy_url)
        try:
            return await monitor.record_changes(
                session_factory(engine), scan_id=scan_id, report=report
            )
        finally:
            await engine.dispose()

    return env.run(go())


def _token(env: Env) -> dict[str, str]:
    r = env.post("/settings/tokens", {"name": "t"})  # redirects; the next page shows it once
    m = re.search(r'<code id="new-token">([^<]+)</code>', env.get(r.headers["location"]).text)
    assert m
    return {"Authorization": f"Bearer {m.group(1)}"}


def _report(r: R, day: int) -> ScanReport:
    report = r.build()
    report.partner_tag = "demo-20"  # what Env.make_scan gives the scan
    report.finished_at = report.started_at = datetime(2026, 3, day, 9, tzinfo=UTC)
    return report


def test_changes_are_stored_shown_and_served(env: Env) -> None:
    me = env.signup("me@example.com")
    auth = _token(env)
    links = [("p", "B000000001", "demo-20")]
    first = _report(R({"B000000001": OK, "B000000002": OK, "B000000003": OOS}, links), 3)
    first_id = env.make_scan(me, first)
    assert _record(env, first_id, first) is None  # the site's first scan: nothing to compare
    second = _report(R({"B000000001": OOS, "B000000002": GONE, "B000000003": OK},
                       [("p", "B000000001", None)]), 10)  # fmt: skip
    second_id = env.make_scan(me, second)
    row = _record(env, second_id, second)
    assert row.previous_scan_id == first_id
    assert row.counts["newly_out_of_stock"] == 1 and row.counts["recovered"] == 1
    assert row.counts["newly_removed"] == 1 and row.counts["lost_tag"] == 1

    html = env.get(f"/scans/{second_id}").text
    assert f"Since scan #{first_id} on 3 March" in html
    assert f'<a href="/scans/{second_id}?status=out_of_stock">1 newly out of stock</a>' in html
    assert f'<a href="/scans/{second_id}?status=removed">1 newly removed from Amazon</a>' in html
    assert f'<a href="/scans/{second_id}?status=available">1 recovered</a>' in html
    assert f'<a href="/scans/{second_id}#tag-audit">1 link lost your partner tag</a>' in html
    # the line's link leads to the filtered table, which shows that product
    filtered = env.get(f"/scans/{second_id}?status=out_of_stock").text
    assert "B000000001" in filtered and "B000000003" not in filtered.split("<table")[-1]
    # the first scan has no block
    assert "Since scan" not in env.get(f"/scans/{first_id}").text

    r = env.client.get(f"{API}/scans/{second_id}/changes", headers=auth)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["previous_scan"]["id"] == first_id
    assert body["summary"] == (
        f"Since scan #{first_id} on 3 March: 1 newly out of stock, 1 newly removed from Amazon, "
        "1 recovered, 1 link lost your partner tag."
    )
    broken = {c["asin"]: (c["before"], c["after"]) for c in body["changes"]["newly_broken"]}
    assert broken == {"B000000001": ("available", "out_of_stock"),
                      "B000000002": ("available", "removed")}  # fmt: skip
    first_body = env.client.get(f"{API}/scans/{first_id}/changes", headers=auth).json()
    assert first_body == {"scan_id": first_id, "previous_scan": None, "summary": None,
                          "changes": None}  # fmt: skip


def test_only_the_same_users_same_site_and_marketplace_is_compared(env: Env) -> None:
    other = env.signup("other@example.com")
    me = env.signup("me@example.com")
    base = _report(R({"B000000001": OK}), 3)
    env.make_scan(other, base)  # someone else's scan of the same site
    elsewhere = _report(R({"B000000001": OK}), 4)
    elsewhere.site = "https://elsewhere.example/"
    env.make_scan(me, elsewhere, site=elsewhere.site)  # my scan of another site
    now = _report(R({"B000000001": Status.OUT_OF_STOCK}), 5)
    now_id = env.make_scan(me, now)
    assert _record(env, now_id, now) is None
    again = _report(R({"B000000001": OK}), 6)
    again_id = env.make_scan(me, again)
    row = _record(env, again_id, again)
    assert row.previous_scan_id == now_id and row.counts["recovered"] == 1


def test_changes_of_another_users_scan_are_404(env: Env) -> None:
    owner = env.signup("owner@example.com")
    scan_id = env.make_scan(owner, _report(R({"B000000001": OK}), 3))
    env.signup("snoop@example.com")
    auth = _token(env)
    r = env.client.get(f"{API}/scans/{scan_id}/changes", headers=auth)
    assert r.status_code == 404 and r.json()["error"] == "not_found"
