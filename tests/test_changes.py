"""scanner.changes: what changed between two reports, table-tested on report pairs; each pair
is compared both as report objects and in their JSON shape (what ``--compare`` reads)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest

from scanner.amazon import ProductResult
from scanner.amazon_urls import AmazonTarget
from scanner.changes import Changes, compare, headline, lines, to_text
from scanner.classify import Status
from scanner.crawl import FailedPage, LinkOccurrence
from scanner.report import to_json
from scanner.scan import ScanReport

MP = "www.amazon.com"
TAG = "mine-20"
A, B, C, D = "B000000001", "B000000002", "B000000003", "B000000004"


@dataclass
class R:
    """A report in a few words: products' statuses, links (page, ASIN, tag), failed pages."""

    products: dict[str, Status]
    links: list[tuple[str, str, str | None]] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    tag: str | None = TAG

    def build(self) -> ScanReport:
        at = datetime(2026, 3, 3, 9, tzinfo=UTC)
        links = [
            LinkOccurrence(
                page=f"https://site.example/{page}",
                href=f"https://www.amazon.com/dp/{asin}" + (f"?tag={tag}" if tag else ""),
                kind="direct",
                target=AmazonTarget(MP, (asin,), tag),
            )
            for page, asin, tag in self.links
        ]
        pages = sorted({link.page for link in links})
        return ScanReport(
            site="https://site.example/",
            marketplace=MP,
            partner_tag=self.tag,
            started_at=at,
            finished_at=at,
            pages=pages,
            failed=[FailedPage(f"https://site.example/{u}", 500, "HTTP 500") for u in self.failed],
            links=links,
            unresolved=[],
            products={
                (MP, asin): ProductResult(asin, MP, status, f"Product {asin}", None)
                for asin, status in self.products.items()
            },
        )


OK, OOS, GONE, ERR = Status.AVAILABLE, Status.OUT_OF_STOCK, Status.REMOVED, Status.ERROR


def summary(changes: Changes) -> dict[str, object]:
    """The changes as short facts a table row can state."""
    return {
        "broken": [(c.asin, c.after) for c in changes.newly_broken],
        "recovered": [c.asin for c in changes.recovered],
        "new": [c.asin for c in changes.new_products],
        "gone": [c.asin for c in changes.gone_products],
        "lost_tag": [(c.page.rsplit("/", 1)[1], c.asin) for c in changes.lost_tag],
        "other_tag": [(c.page.rsplit("/", 1)[1], c.asin, c.tag) for c in changes.other_tag],
        "failed": [c.url.rsplit("/", 1)[1] for c in changes.newly_failed_pages],
    }


NONE: dict[str, object] = {"broken": [], "recovered": [], "new": [], "gone": [],
                           "lost_tag": [], "other_tag": [], "failed": []}  # fmt: skip

CASES = [
    ("identical", R({A: OK, B: OOS}, [("p", A, TAG)]), R({A: OK, B: OOS}, [("p", A, TAG)]), {}),
    ("out of stock", R({A: OK}), R({A: OOS}), {"broken": [(A, "out_of_stock")]}),
    ("removed", R({A: OK}), R({A: GONE}), {"broken": [(A, "removed")]}),
    ("error", R({A: OK}), R({A: ERR}), {"broken": [(A, "error")]}),
    ("still broken is not news", R({A: OOS}), R({A: GONE}), {}),
    ("recovered", R({A: OOS, B: ERR}), R({A: OK, B: OK}), {"recovered": [A, B]}),
    ("new and gone", R({A: OK, B: OK}), R({B: OK, C: OOS}), {"new": [C], "gone": [A]}),
    ("new broken product is new, not newly broken", R({}), R({A: OOS}), {"new": [A]}),
    (
        "lost tag",
        R({A: OK}, [("p", A, TAG), ("q", A, TAG)]),
        R({A: OK}, [("p", A, None), ("q", A, TAG)]),
        {"lost_tag": [("p", A)]},
    ),
    (
        "someone else's tag",
        R({A: OK}, [("p", A, TAG)]),
        R({A: OK}, [("p", A, "thief-20")]),
        {"other_tag": [("p", A, "thief-20")]},
    ),
    (
        "one of two links still tagged",
        R({A: OK}, [("p", A, TAG)]),
        R({A: OK}, [("p", A, TAG), ("p", A, None)]),
        {},
    ),
    ("never had the tag", R({A: OK}, [("p", A, None)]), R({A: OK}, [("p", A, "x-20")]), {}),
    (
        "a new page without tag is not a lost tag",
        R({A: OK}, [("p", A, TAG)]),
        R({A: OK}, [("p", A, TAG), ("n", A, None)]),
        {},
    ),
    (
        "no partner tag: no tag audit",
        R({A: OK}, [("p", A, "x-20")], tag=None),
        R({A: OK}, [("p", A, None)], tag=None),
        {},
    ),
    (
        "pages newly fail",
        R({}, failed=["x"]),
        R({}, failed=["x", "y", "z"]),
        {"failed": ["y", "z"]},
    ),
    ("a page that recovers is not a failure", R({}, failed=["x"]), R({}), {}),
    (
        "everything at once",
        R({A: OK, B: OOS, C: OK}, [("p", A, TAG)], failed=[]),
        R({A: GONE, B: OK, D: OK}, [("p", A, None)], failed=["f"]),
        {
            "broken": [(A, "removed")],
            "recovered": [B],
            "new": [D],
            "gone": [C],
            "lost_tag": [("p", A)],
            "failed": ["f"],
        },
    ),
]


@pytest.mark.parametrize(("name", "old", "new", "expected"), CASES, ids=[c[0] for c in CASES])
def test_changes_table(name: str, old: R, new: R, expected: dict[str, object]) -> None:
    a, b = old.build(), new.build()
    want = {**NONE, **expected}
    from_objects = compare(a, b)
    assert summary(from_objects) == want
    # the JSON shape (as written to a file and read back) gives the same answer
    from_json = compare(json.loads(json.dumps(to_json(a))), json.loads(json.dumps(to_json(b))))
    assert from_json == from_objects
    assert from_objects.is_empty == (not expected)
    assert from_objects.any_broken == bool(want["broken"])
    # stored and read back unchanged
    assert Changes.from_json(json.loads(json.dumps(from_objects.to_json()))) == from_objects


def test_lines_and_headline_say_counts_in_plain_english() -> None:
    old = R({A: OK, B: OK, C: OK, D: OOS}, [("p", A, TAG)])
    new = R({A: OOS, B: OOS, C: GONE, D: OK}, [("p", A, None)])
    changes = compare(old.build(), new.build())
    assert [(x.kind, x.count) for x in lines(changes)] == [
        ("newly_out_of_stock", 2), ("newly_removed", 1), ("recovered", 1), ("lost_tag", 1),
    ]  # fmt: skip
    assert headline(changes, "Since scan #41 on 3 March") == (
        "Since scan #41 on 3 March: 2 newly out of stock, 1 newly removed from Amazon, "
        "1 recovered, 1 link lost your partner tag."
    )
    assert headline(Changes(), "Since scan #41 on 3 March") == (
        "Since scan #41 on 3 March: nothing changed."
    )
    text = to_text(changes, "Since the previous scan")
    assert f"  {A}  www.amazon.com  available → out_of_stock" in text
    assert "Recovered (1)" in text and "Lost the partner tag (1)" in text


def test_product_changes_tell_title_reason_and_pages() -> None:
    old = R({A: OK}, [("p", A, TAG), ("q", A, TAG)]).build()
    new_r = R({A: OOS}, [("p", A, TAG), ("q", A, TAG)]).build()
    new_r.products[(MP, A)] = ProductResult(A, MP, OOS, "Kettle", "Currently unavailable.")
    (change,) = compare(old, new_r).newly_broken
    assert (change.title, change.reason, change.pages) == ("Kettle", "Currently unavailable.", 2)
