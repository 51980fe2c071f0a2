"""`ccbb scan` end to end: the real command in a subprocess, a generated site and the sandbox
Amazon API on loopback, every summary number and every product status checked against the
generator's ground truth (computed from what it wrote, not by parsing HTML)."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from ccbb.sandbox.amazon_api import Catalogue, RunningSandbox, running_sandbox
from ccbb.sandbox.demo_site import DemoSite, RunningSite, generate_site, running_site

SECRET = "demo-secret"


@dataclass
class Served:
    site: DemoSite
    web: RunningSite
    sandbox: RunningSandbox

    def args(self, *extra: str) -> list[str]:
        out = [
            "scan", self.site.base_url, "--tag", self.site.partner_tag,
            "--api-host", self.sandbox.url, "--auth-endpoint", self.sandbox.auth_endpoint,
            "--tps", "20", "--quiet",
        ]  # fmt: skip
        for prefix in self.site.cloak_prefixes:
            out += ["--cloak", prefix]
        for mapping in self.web.connect_to:
            out += ["--connect-to", mapping]
        return out + list(extra)


async def ccbb(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    full_env = {**os.environ, "CCBB_CREDENTIAL_ID": "demo-credential",
                "CCBB_CREDENTIAL_SECRET": SECRET, **(env or {})}  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ccbb.cli", *args, env=full_env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def serve(pages: int, **catalogue_changes: object) -> AsyncIterator[Served]:
    site = generate_site(pages=pages, seed=7)
    data = dict(site.catalogue)
    data["credentials"] = [{**data["credentials"][0], "tps": 50.0, **catalogue_changes}]
    async with running_site(site) as web, running_sandbox(Catalogue.from_dict(data)) as sandbox:
        yield Served(site, web, sandbox)


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    async for s in serve(120):
        yield s


async def test_scan_matches_the_ground_truth(served: Served) -> None:
    code, out, err = await ccbb(*served.args("--format", "json"))
    assert code == 0, err
    report = json.loads(out)
    expected = served.site.expected
    assert report["summary"] == expected.summary()
    got = {(p["marketplace"], p["asin"]): p["status"] for p in report["products"]}
    assert got == {key: str(status) for key, status in expected.products.items()}
    assert {f["url"] for f in report["pages_failed"]} == set(expected.failed_pages)
    # every link reported on the right page with the right kind
    by_page: dict[str, int] = {}
    for product in report["products"]:
        for link in product["links"]:
            assert link["kind"] in ("direct", "short", "cloaked", "widget")
            by_page[link["page"]] = by_page.get(link["page"], 0) + 1
    assert set(by_page) <= set(expected.scanned_pages)
    # ⌈US products / 10⌉ requests, nothing more
    us = sum(1 for key in expected.products if key[0] == "www.amazon.com")
    assert len(served.sandbox.requests()) == -(-us // 10) == report["stats"]["api_requests"]
    assert SECRET not in out and SECRET not in err


async def test_csv_and_text_formats(served: Served, tmp_path) -> None:
    target = tmp_path / "report.csv"
    code, out, err = await ccbb(*served.args("--format", "csv", "--output", str(target)))
    assert code == 0, err
    assert out == ""
    rows = list(csv.DictReader(io.StringIO(target.read_text())))
    assert list(rows[0]) == ["page", "href", "kind", "tag", "asin", "marketplace", "title",
                             "status", "availability", "error"]  # fmt: skip
    expected = served.site.expected
    widget_extra = sum(len(s.products) - 1 for links in expected.links.values() for s in links)
    assert len(rows) == expected.total_links + widget_extra
    code, out, _ = await ccbb(*served.args("--format", "text"))
    assert code == 0
    lines = {line.split("  ")[1].strip(): line.split()[-1] for line in out.splitlines()[1:5]}
    assert lines == {
        "URLs scanned": str(expected.urls_scanned),
        "Total products": str(expected.total_products),
        "Total links": str(expected.total_links),
        "Unique links": str(expected.unique_links),
    }
    assert "Products to fix" in out


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"credential_secret": "another"}, "refused the credentials"),
        ({"partner_tags": ["someone-20"]}, "not tied to these credentials"),
        ({"eligible": False}, "not eligible"),
    ],
)
async def test_account_problems_exit_1_with_the_fix(changes: dict, message: str) -> None:
    async for served in serve(20, **changes):
        code, out, err = await ccbb(*served.args())
        assert code == 1
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("ccbb: scan failed:")
        assert message in lines[0]
        assert out == ""
        assert SECRET not in err


async def test_old_pa_api_keys_are_refused(served: Served) -> None:
    code, _, err = await ccbb(*served.args(), env={"CCBB_CREDENTIAL_ID": "AKIAIOSFODNN7EXAMPLE"})
    assert code == 1 and "Product Advertising API" in err and "Creators API" in err
    assert served.sandbox.requests() == []


async def test_unreachable_site_exits_1(served: Served) -> None:
    args = served.args()
    args[1] = "http://unreachable.example/"
    args += ["--connect-to", "unreachable.example:80:127.0.0.1:9"]  # nothing listens on port 9
    code, _, err = await ccbb(*args)
    assert code == 1
    assert "site unreachable" in err


async def test_private_addresses_are_refused_without_the_switch(served: Served) -> None:
    """The mappings reach the demo site's address; another loopback server (the sandbox API,
    here) is refused, by name or by address."""
    args = served.args()
    args[1] = served.sandbox.url.replace("127.0.0.1", "localhost") + "/"
    code, _, err = await ccbb(*args)
    assert code == 1
    assert "private, loopback or reserved" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["scan"], "SITE_URL"),
        (["scan", "example.com", "--format", "xml"], "invalid choice"),
        (["scan", "ftp://example.com", "--tag", "me-20"], "http:// or https://"),
        (["scan", "example.com", "--tag", "me"], "tracking ID"),
        (["scan", "example.com", "--tag", "me-20", "--country", "XX"], "--country"),
        (["scan", "example.com", "--tag", "me-20", "--connect-to", "a:b"], "HOST:PORT:HOST2:PORT2"),
        (["scan", "example.com", "--tag", "me-20", "--tps", "0"], "--tps"),
    ],
)
async def test_bad_usage_exits_2(args: list[str], message: str) -> None:
    code, out, err = await ccbb(*args)
    assert code == 2
    assert message in err
    assert out == ""


async def test_missing_credentials_exit_2() -> None:
    code, _, err = await ccbb(
        "scan", "example.com", "--tag", "me-20",
        env={"CCBB_CREDENTIAL_ID": "", "CCBB_CREDENTIAL_SECRET": ""},
    )  # fmt: skip
    assert code == 2 and "CCBB_CREDENTIAL_ID" in err


async def test_demo_command() -> None:
    code, out, err = await ccbb("demo", "--quiet", "--format", "json")
    assert code == 0, err
    report = json.loads(out)
    assert report["summary"] == generate_site(pages=60).expected.summary()


async def test_streamed_json_is_the_same_document_as_to_json() -> None:
    from ccbb.demo import run_demo
    from scanner.report import iter_json, to_json

    report = await run_demo(pages=30, show_progress=False)
    streamed = json.loads("".join(iter_json(report, lambda: {"extra": 1})))
    assert streamed["stats"].pop("extra") == 1
    assert streamed == to_json(report)


async def test_a_report_never_prints_whole() -> None:
    """asyncio.run() formats the repr of its main task's result when it ends (CPython 3.11's
    signal.getsignal does): a dataclass repr of a 20,000-page scan cost 80 MB and a second."""
    from ccbb.demo import run_demo

    report = await run_demo(pages=30, show_progress=False)
    assert len(report.links) > 100
    assert len(repr(report)) < 200


async def test_compare_with_a_previous_report_prints_the_changes_and_fails_on_broken(
    served: Served, tmp_path
) -> None:
    previous = tmp_path / "previous.json"
    code, _, err = await ccbb(*served.args("--format", "json", "--output", str(previous)))
    assert code == 0, err
    # the same site again: nothing changed, exit 0 even with --fail-on
    code, out, err = await ccbb(*served.args("--compare", str(previous), "--fail-on", "broken"))
    assert code == 0, err
    assert "Since the previous scan" in out and "nothing changed." in out
    # pretend two products were in stock last time: now they are newly broken
    data = json.loads(previous.read_text())
    broken = [p for p in data["products"] if p["status"] in ("out_of_stock", "removed")][:2]
    assert len(broken) == 2
    for p in broken:
        p["status"] = "available"
    previous.write_text(json.dumps(data))
    code, out, err = await ccbb(*served.args("--compare", str(previous)))
    assert code == 0, err
    assert "Newly broken (2)" in out
    for p in broken:
        assert f"  {p['asin']}  {p['marketplace']}  available → " in out
    code, out, err = await ccbb(*served.args("--compare", str(previous), "--fail-on", "broken"))
    assert code == 3, err
    # a JSON report on stdout stays parseable: the changes go to stderr
    code, out, err = await ccbb(*served.args("--format", "json", "--compare", str(previous)))
    assert code == 0 and json.loads(out)["products"] and "Newly broken (2)" in err


async def test_compare_with_a_bad_file_says_what_to_do_before_scanning(
    served: Served, tmp_path
) -> None:
    bad = tmp_path / "notes.json"
    bad.write_text("not json")
    code, _, err = await ccbb(*served.args("--compare", str(bad)))
    assert code == 2 and "not a report of ccbb scan --format json" in err
    assert served.sandbox.requests() == []  # refused before anything was scanned
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"site": "https://else.example/", "marketplace": "www.amazon.com",
                                 "products": []}))  # fmt: skip
    code, _, err = await ccbb(*served.args("--compare", str(other)))
    assert code == 2 and "compare two scans of the same site" in err
    code, _out, err = await ccbb(*served.args("--fail-on", "broken"))
    assert code == 2 and "--fail-on needs --compare" in err


async def test_a_scan_piped_into_head_ends_quietly(served: Served) -> None:
    # `ccbb scan` ends without tearing down its heap (ccbb.cli._end_now): what it still held
    # must be flushed, and a reader that stops early must still meet no traceback
    full_env = {**os.environ, "CCBB_CREDENTIAL_ID": "demo-credential",
                "CCBB_CREDENTIAL_SECRET": SECRET}  # fmt: skip
    read_end, write_end = os.pipe()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ccbb.cli", *served.args("--format", "csv"), env=full_env,
        stdout=write_end, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    os.close(write_end)
    with os.fdopen(read_end, "rb") as reader:  # what `head -1` does: one line, then close
        first = await asyncio.get_running_loop().run_in_executor(None, reader.readline)
    assert proc.stderr is not None
    err = await asyncio.wait_for(proc.stderr.read(), 120)
    code = await proc.wait()
    assert first.startswith(b"page,")
    assert err == b""
    assert code in (0, 1)  # 1 when the pipe was closed before the report was all in it
