"""How long the store takes to keep a large scan: 1,000,000 link rows of one scan through
``store.scans.finish_scan`` (binary COPY on PostgreSQL), next to the obvious ways measured on a
100,000-row slice and extrapolated: SQLAlchemy ORM ``session.add_all`` and Core
``executemany``. Target: the whole finish (pages, links, products, summary) in ≤ 60 s.

    python bench/store_bench.py [--url postgresql://postgres@127.0.0.1:5432/test]
    python bench/store_bench.py --url sqlite:// --rows 200000 --slice 20000   # embedded mode

It works in a schema of its own, dropped at the end: the database may be shared.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import func, insert, select

from scanner.amazon import ProductResult
from scanner.amazon_urls import AmazonTarget
from scanner.classify import Status
from scanner.crawl import FailedPage, LinkOccurrence
from scanner.scan import ScanReport
from store import scans
from store.db import make_engine, masked_url, run_ddl, session_factory, url_in_schema
from store.migrate import upgrade
from store.models import LINK_TABLE, ScanLink

TARGET_SECONDS = 60.0
LINKS_PER_PAGE = 100
STATUSES = (
    Status.AVAILABLE,
    Status.AVAILABLE,
    Status.AVAILABLE,
    Status.OUT_OF_STOCK,
    Status.REMOVED,
    Status.ERROR,
)


def make_report(rows: int, products: int) -> ScanReport:
    """A scan of ``rows / 100`` pages with 100 Amazon links each; every 10th link a 3-product
    widget, so ``rows`` link rows in all. Strings are shared as the crawler shares them."""
    asins = [f"B0{n:08d}" for n in range(products)]
    market = "www.amazon.com"
    tags = ("mytag-20", "mytag-20", "mytag-20", None, "other-21")
    direct = [
        (
            f"https://www.amazon.com/dp/{a}?tag={tags[i % 5]}"
            if tags[i % 5]
            else f"https://www.amazon.com/dp/{a}",
            AmazonTarget(market, (a,), tags[i % 5]),
        )
        for i, a in enumerate(asins)
    ]
    widgets = [
        (
            f"https://ws-na.amazon-adsystem.com/widgets/q?ServiceVersion=20070822&asins="
            f"{asins[i]},{asins[i + 1]},{asins[i + 2]}&tracking_id=mytag-20",
            AmazonTarget(market, (asins[i], asins[i + 1], asins[i + 2]), "mytag-20", True),
        )
        for i in range(0, products - 2, 3)
    ]
    pages: list[str] = []
    links: list[LinkOccurrence] = []
    n = 0
    while n < rows:
        page = f"https://www.example-affiliate-site.com/reviews/best-product-{len(pages):06d}/"
        pages.append(page)
        for k in range(LINKS_PER_PAGE):
            if n >= rows:
                break
            if k % 10 == 9 and rows - n >= 3:
                href, target = widgets[(len(pages) * 7 + k) % len(widgets)]
                links.append(LinkOccurrence(page, href, "widget", target))
                n += 3
            else:
                href, target = direct[(len(pages) * 131 + k * 17) % products]
                links.append(LinkOccurrence(page, href, "direct", target))
                n += 1
    found = {
        (market, a): ProductResult(
            a,
            market,
            STATUSES[i % len(STATUSES)],
            f"Product {a}",
            "In Stock",
            f"https://www.amazon.com/dp/{a}",
        )
        for i, a in enumerate(asins)
    }
    start = datetime.now(UTC)
    return ScanReport(
        site="https://www.example-affiliate-site.com/",
        marketplace=market,
        partner_tag="mytag-20",
        started_at=start,
        finished_at=start + timedelta(minutes=30),
        pages=pages,
        failed=[
            FailedPage(f"https://www.example-affiliate-site.com/gone-{i}/", 404, "HTTP 404")
            for i in range(200)
        ],
        links=links,
        unresolved=[],
        products=found,
        api_requests=products // 10,
        timings={"crawl_seconds": 1800.0, "total_seconds": 1800.0, "http_requests": len(pages)},
    )


def link_dicts(scan_id: int, report: ScanReport, limit: int) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for n, link in enumerate(report.links):
        for asin in link.target.asins:
            out.append(
                {
                    "scan_id": scan_id,
                    "occurrence": n,
                    "page": link.page,
                    "href": link.href,
                    "kind": link.kind,
                    "tag": link.target.tag,
                    "marketplace": link.target.marketplace,
                    "asin": asin,
                }
            )
            if len(out) == limit:
                return out
    return out


async def run(url: str, rows: int, slice_rows: int, products: int) -> None:
    engine = make_engine(url)
    sessions = session_factory(engine)
    print(f"building a report of {rows:,} link rows…", flush=True)
    t = time.perf_counter()
    report = make_report(rows, products)
    print(
        f"  {len(report.pages):,} pages, {len(report.links):,} link occurrences, "
        f"{len(report.products):,} products ({time.perf_counter() - t:.1f} s)"
    )

    async with sessions() as session:
        scan = await scans.create_scan(
            session,
            user_id=None,
            site=report.site,
            marketplace=report.marketplace,
            partner_tag=report.partner_tag,
        )
        assert scan.id is not None
        await scans.mark_running(session, scan_id=scan.id)
        t = time.perf_counter()
        await scans.finish_scan(session, scan_id=scan.id, report=report)
        copy_seconds = time.perf_counter() - t
        count = select(func.count()).select_from(LINK_TABLE).where(LINK_TABLE.c.scan_id == scan.id)
        conn = await session.connection()
        stored = (await conn.execute(count)).scalar_one()
        await session.commit()
        assert stored == rows, (stored, rows)
        print(f"finish_scan: {copy_seconds:.1f} s", flush=True)

        t = time.perf_counter()
        await scans.finish_scan(session, scan_id=scan.id, report=report)
        again_seconds = time.perf_counter() - t
        print(f"finish_scan again (replaces the rows): {again_seconds:.1f} s", flush=True)

        t = time.perf_counter()
        doc = await scans.report_json(session, scan_id=scan.id)
        json_seconds = time.perf_counter() - t
        assert doc["summary"]["total_links"] == len(report.links)
        print(f"report_json: {json_seconds:.1f} s", flush=True)

    # baselines on a slice, each for a scan of its own
    slice_ = link_dicts(0, report, slice_rows)
    baselines: list[tuple[str, float]] = []
    async with sessions() as session:
        other = await scans.create_scan(
            session,
            user_id=None,
            site=report.site,
            marketplace=report.marketplace,
            partner_tag=None,
        )
        assert other.id is not None
        for row in slice_:
            row["scan_id"] = other.id
        t = time.perf_counter()
        session.add_all([ScanLink(**row) for row in slice_])  # type: ignore[arg-type]
        await session.commit()
        baselines.append(("SQLAlchemy ORM `session.add_all`", time.perf_counter() - t))
        print(f"ORM add_all, {slice_rows:,} rows: {baselines[-1][1]:.1f} s", flush=True)
        session.expunge_all()
    async with sessions() as session:
        conn = await session.connection()
        t = time.perf_counter()
        await conn.execute(insert(LINK_TABLE), slice_)
        await session.commit()
        baselines.append(("SQLAlchemy Core `executemany`", time.perf_counter() - t))
        print(f"Core executemany, {slice_rows:,} rows: {baselines[-1][1]:.1f} s", flush=True)
    await engine.dispose()

    factor = rows / slice_rows
    ok = "✓" if copy_seconds <= TARGET_SECONDS else "✗ over target"
    print()
    print(
        f"Store benchmark, {masked_url(url)}, {rows:,} link rows of one scan "
        f"({len(report.pages):,} pages, {len(report.products):,} products)"
    )
    print()
    what = "binary COPY" if url.startswith("postgresql") else "executemany"
    print("| method | rows measured | seconds | rows/s | 1M rows (s) | vs finish_scan |")
    print("|---|---:|---:|---:|---:|---:|")
    per_million = copy_seconds * 1_000_000 / rows
    print(
        f"| `finish_scan` ({what}, whole report) | {rows:,} | {copy_seconds:.1f} | "
        f"{rows / copy_seconds:,.0f} | {per_million:.1f} | 1.0× |"
    )
    for name, seconds in baselines:
        total = seconds * factor * 1_000_000 / rows
        print(
            f"| {name} (links only, extrapolated) | {slice_rows:,} | {seconds:.1f} | "
            f"{slice_rows / seconds:,.0f} | {total:.0f} | {total / per_million:.1f}× |"
        )
    print()
    print(
        f"finish_scan of {rows:,} link rows: {copy_seconds:.1f} s (target ≤ {TARGET_SECONDS:.0f} s) {ok}"
    )
    print(
        f"finish_scan again, replacing them: {again_seconds:.1f} s; "
        f"report_json of the scan: {json_seconds:.1f} s"
    )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory of this process: {peak:,.0f} MB (the report itself included)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--rows", type=int, default=1_000_000, help="link rows to store")
    parser.add_argument("--slice", type=int, default=100_000, help="rows for the baselines")
    parser.add_argument("--products", type=int, default=20_000)
    args = parser.parse_args()
    if args.url.startswith("sqlite"):  # embedded mode, for comparison: a fresh file
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite+aiosqlite:///{tmp}/bench.sqlite3"
            upgrade(url)
            asyncio.run(run(url, args.rows, args.slice, args.products))
        return
    schema = f"ccbb_bench_{uuid.uuid4().hex[:8]}"
    asyncio.run(run_ddl(args.url, f'CREATE SCHEMA "{schema}"'))
    url = url_in_schema(args.url, schema)
    try:
        upgrade(url)
        asyncio.run(run(url, args.rows, args.slice, args.products))
    finally:
        asyncio.run(run_ddl(args.url, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))


if __name__ == "__main__":
    main()
