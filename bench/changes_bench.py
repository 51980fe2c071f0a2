"""Changes between two scans: ``scanner.changes.compare`` on two reports of N products each.

    .venv/bin/python bench/changes_bench.py [--products 50000] [--links-per-product 3] [--runs 5]

The two reports differ the way weekly scans do: 2 % of the products go out of stock or are
removed, 1 % recover, 1 % leave the site and 1 % arrive, 1 % of the links lose the partner tag,
50 pages newly fail. Timed side by side (best of ``--runs``):

- baseline: building the two ``{(marketplace, ASIN): product}`` dicts alone, the least any
  comparison must do;
- ``compare`` on the JSON shape (what ``ccbb scan --compare previous.json`` reads);
- ``compare`` on the engine's ``ScanReport`` objects (what the worker has when a scan ends).

Target: ≤ 1 s for 50,000 products.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scanner.amazon import ProductResult
from scanner.amazon_urls import AmazonTarget
from scanner.changes import compare
from scanner.classify import Status
from scanner.crawl import FailedPage, LinkOccurrence
from scanner.report import to_json
from scanner.scan import ScanReport

MP = "www.amazon.com"
TAG = "mine-20"


def make_pair(n: int, per_product: int, seed: int = 1) -> tuple[ScanReport, ScanReport]:
    rnd = random.Random(seed)
    asins = [f"B{i:09d}" for i in range(n)]
    pages = [f"https://site.example/post-{i}/" for i in range(max(1, n // 5))]
    at = datetime(2026, 3, 3, tzinfo=UTC)

    def report(products: dict[str, Status], untagged: set[str], failed: list[str]) -> ScanReport:
        links = []
        for asin in products:
            for k in range(per_product):
                page = pages[(hash(asin) + k * 7919) % len(pages)]
                tag = None if asin in untagged else TAG
                href = f"https://www.amazon.com/dp/{asin}" + (f"?tag={tag}" if tag else "")
                links.append(LinkOccurrence(page, href, "direct", AmazonTarget(MP, (asin,), tag)))
        return ScanReport(
            site="https://site.example/",
            marketplace=MP,
            partner_tag=TAG,
            started_at=at,
            finished_at=at,
            pages=pages,
            failed=[FailedPage(u, 500, "HTTP 500") for u in failed],
            links=links,
            unresolved=[],
            products={
                (MP, a): ProductResult(a, MP, s, f"Product {a}", None) for a, s in products.items()
            },
        )

    old = {a: Status.AVAILABLE if rnd.random() < 0.9 else Status.OUT_OF_STOCK for a in asins}
    new = dict(old)
    for a in rnd.sample(asins, n // 50):
        new[a] = rnd.choice((Status.OUT_OF_STOCK, Status.REMOVED))
    for a in rnd.sample(asins, n // 100):
        new[a] = Status.AVAILABLE
    for a in rnd.sample(asins, n // 100):
        new.pop(a, None)
    for i in range(n // 100):
        new[f"B9{i:08d}"] = Status.AVAILABLE
    untagged = set(rnd.sample(sorted(new), n // 100))
    failed_old = [f"https://site.example/gone-{i}/" for i in range(20)]
    failed_new = failed_old + [f"https://site.example/broken-{i}/" for i in range(50)]
    return report(old, set(), failed_old), report(new, untagged, failed_new)


def best(fn: Callable[[], Any], runs: int) -> tuple[float, float, Any]:
    """(best wall time, best CPU time of this process, the result): on a shared VM the wall
    time includes waiting for a core; the CPU time does not."""
    walls, cpus, out = [], [], None
    for _ in range(runs):
        t, c = time.perf_counter(), time.process_time()
        out = fn()
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    return min(walls), min(cpus), out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--products", type=int, default=50_000)
    ap.add_argument("--links-per-product", type=int, default=3)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    old, new = make_pair(args.products, args.links_per_product)
    old_json, new_json = to_json(old), to_json(new)
    links = len(old.links) + len(new.links)

    def baseline() -> int:
        a = {(p["marketplace"], p["asin"]): p for p in old_json["products"]}
        b = {(p["marketplace"], p["asin"]): p for p in new_json["products"]}
        return len(a) + len(b)

    t_base, c_base, _ = best(baseline, args.runs)
    t_json, c_json, changes = best(lambda: compare(old_json, new_json), args.runs)
    t_obj, c_obj, changes_obj = best(lambda: compare(old, new), args.runs)
    assert changes == changes_obj
    counts = changes.counts()
    print(f"{args.products:,} products per scan, {links:,} links in all; best of {args.runs}")
    print("changes found: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    print()
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print()
    print("| what | wall s | CPU s | × baseline (CPU) | target ≤ 1 s |")
    print("|---|---:|---:|---:|---|")
    print(f"| baseline: the two product dicts alone | {t_base:.3f} | {c_base:.3f} | 1.0 | |")
    for name, t, c in (
        ("compare, JSON shape", t_json, c_json),
        ("compare, ScanReport objects", t_obj, c_obj),
    ):
        verdict = "met" if t <= 1.0 else f"wall MISSED, CPU {'met' if c <= 1.0 else 'MISSED'}"
        print(f"| {name} | {t:.3f} | {c:.3f} | {c / c_base:.1f} | {verdict} |")


if __name__ == "__main__":
    main()
