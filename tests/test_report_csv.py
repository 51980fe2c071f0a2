"""The one CSV writer (CLI, dashboard, API): cells that a spreadsheet would run as formulas are
neutralised as OWASP recommends, the error reason is a column, the file is named after the site
and the day; and the detailed table's pure order (problems first, unnamed names last)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

from scanner.amazon import ProductResult
from scanner.amazon_urls import AmazonTarget
from scanner.classify import Status
from scanner.crawl import LinkOccurrence
from scanner.report import CSV_COLUMNS, csv_filename, csv_safe, to_csv
from scanner.scan import ScanReport
from store import report_table

WHEN = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)


def test_formula_cells_get_a_leading_quote_and_nothing_else_changes() -> None:
    for start in ("=", "+", "-", "@", "\t", "\r"):
        assert csv_safe(f"{start}1+1") == f"'{start}1+1"
    for plain in ("In Stock", "B000000001", "https://x.example/?a=-1", "", "'quoted", "1-2"):
        assert csv_safe(plain) == plain
    assert csv_safe(None) == ""


def _report(
    products: dict[tuple[str, str], ProductResult], links: list[LinkOccurrence]
) -> ScanReport:
    return ScanReport(
        site="https://www.example.com/", marketplace="www.amazon.com", partner_tag="me-20",
        started_at=WHEN, finished_at=WHEN, pages=sorted({x.page for x in links}), failed=[],
        links=links, unresolved=[], products=products,
    )  # fmt: skip


def test_the_csv_of_a_hostile_report_runs_nothing_and_says_why() -> None:
    m = "www.amazon.com"
    evil = ProductResult("B000000001", m, Status.AVAILABLE, '=HYPERLINK("http://evil")', "-1 left")
    err = ProductResult(
        "B000000002", m, Status.ERROR, None, None, None, "@SUM(A1) ItemNotAccessible"
    )
    alone = ProductResult(
        "B000000003", m, Status.NOT_CHECKED, "+x", None, None, "not checked: the scan was cancelled"
    )
    target = AmazonTarget(m, ("B000000001", "B000000002"), "+tag", False)
    links = [LinkOccurrence("https://www.example.com/=p/", "@https://amzn.to/x", "short", target)]
    report = _report({(m, p.asin): p for p in (evil, err, alone)}, links)
    text = to_csv(report)
    rows = list(csv.reader(io.StringIO(text)))
    assert tuple(rows[0]) == CSV_COLUMNS and CSV_COLUMNS[-1] == "error"
    for row in rows[1:]:
        for cell in row:
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), cell
    by_asin = {r[4]: dict(zip(CSV_COLUMNS, r, strict=True)) for r in rows[1:]}
    assert by_asin["B000000001"]["title"] == "'" + evil.title  # type: ignore[operator]
    assert by_asin["B000000001"]["availability"] == "'-1 left"
    assert by_asin["B000000001"]["tag"] == "'+tag"
    assert by_asin["B000000001"]["href"] == "'@https://amzn.to/x"
    assert by_asin["B000000002"]["error"] == "'@SUM(A1) ItemNotAccessible"
    # a product no link led to still has its row, with its reason
    assert by_asin["B000000003"]["page"] == "" and by_asin["B000000003"]["status"] == "not_checked"
    assert by_asin["B000000003"]["error"] == "not checked: the scan was cancelled"


def test_the_file_is_named_after_the_site_and_the_day() -> None:
    assert csv_filename("https://www.example.com/blog/", WHEN) == "www.example.com-2026-12-01.csv"
    assert (
        csv_filename("https://xn--bcher-kva.example/", WHEN)
        == "xn--bcher-kva.example-2026-12-01.csv"
    )
    assert csv_filename("not a url", WHEN) == "scan-2026-12-01.csv"


def test_problems_come_first_most_linked_first_and_unnamed_names_last() -> None:
    m = "www.amazon.com"
    statuses = {"B1": Status.AVAILABLE, "B2": Status.REMOVED, "B3": Status.ERROR,
                "B4": Status.OUT_OF_STOCK, "B5": Status.REMOVED, "B6": Status.NOT_CHECKED}  # fmt: skip
    titles = {"B1": "beta", "B2": None, "B3": "Alpha", "B4": "alpha", "B5": "", "B6": "zeta"}
    products = {(m, a): ProductResult(a, m, st, titles[a]) for a, st in statuses.items()}
    links = [
        LinkOccurrence(
            f"https://s.example/{n}/",
            f"https://amazon.com/dp/{a}",
            "direct",
            AmazonTarget(m, (a,), None, False),
        )
        for a, n in [("B2", 1), ("B5", 1), ("B5", 2), ("B1", 1), ("B3", 1)]
    ]
    rows = report_table.grain_rows(products, links)["product"]
    order = [rows[n].asin for n in report_table.ordered(rows, "problems", False)]
    assert order == ["B5", "B2", "B4", "B3", "B6", "B1"]  # B5 has 2 links, B2 one
    for descending in (False, True):
        names = [rows[n].title for n in report_table.ordered(rows, "name", descending)]
        named = ["Alpha", "alpha", "beta", "zeta"]
        assert names[:4] == (named[::-1] if descending else named)
        assert set(names[4:]) == {None, ""}  # unnamed last, both ways
    # the precomputed orders are the same as the on-the-fly ones, for each status
    for sort, descending, status, seqs in report_table.orders(rows):
        expected = [n for n in report_table.ordered(rows, sort, descending)
                    if not status or rows[n].status == status]  # fmt: skip
        assert seqs == expected, (sort, descending, status)
