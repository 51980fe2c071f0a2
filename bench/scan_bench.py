"""Scan-engine benchmark: ``ccbb scan`` against a loopback site served by another process, with
Scrapy measured side by side on the same site, and the Amazon sandbox as the API.

    .venv/bin/python bench/scan_bench.py [--pages 5000] [--page-bytes 40000] [--tps 50]
                                         [--rss-pages 20000] [--concurrency 16] [--no-scrapy]

Each ccbb scan is preceded by the physical baseline on the same pages: a bare loop of aiohttp GET +
selectolax parse at the same concurrency (no robots.txt, no extraction, no storage); ccbb's crawl +
extract must reach ≥ 0.6× of it (issue 9, item 18), a ratio that holds on a noisy machine where an
absolute rate does not.

Prints a table of figures, targets and ratios (issue "scan engine": ≥ 1,500 pages/s, ≥ 4× Scrapy,
API requests = ⌈unique ASINs / 10⌉ + retries, wall ≤ 1.15 × max(crawl, API bound) + 2 s,
peak RSS ≤ 250 MB at 20,000 pages). Scrapy goes into a throwaway venv under bench/.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PY = sys.executable
SCRAPY_VENV = HERE / ".venv-scrapy"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(args: list[str], ready: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if ready in line:
            return proc
        if proc.poll() is not None:
            raise SystemExit(f"could not start {args}: {proc.stderr.read() if proc.stderr else ''}")
    raise SystemExit(f"{args} not ready in 120 s")


class Servers:
    """The site (its own process, like a real web server) and the sandbox Amazon API."""

    def __init__(self, pages: int, page_bytes: int, products: int, tps: float, tmp: Path) -> None:
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.expected = tmp / f"expected-{pages}.json"
        catalogue = tmp / f"catalogue-{pages}.json"
        self.site = start(
            [PY, "-m", "ccbb.sandbox.demo_site", "--pages", str(pages), "--page-bytes",
             str(page_bytes), "--products", str(products),
             "--host-name", self.host, "--port", str(self.port),
             "--expected-json", str(self.expected), "--catalogue-json", str(catalogue)],
            "http://",
        )  # fmt: skip
        data = json.loads(catalogue.read_text())
        data["credentials"][0]["tps"] = tps
        catalogue.write_text(json.dumps(data))
        self.credential = data["credentials"][0]
        self.api_port = free_port()
        self.api = start(
            [PY, "-m", "ccbb.cli", "sandbox-amazon", "--port", str(self.api_port),
             "--catalogue", str(catalogue)],
            "http://",
        )  # fmt: skip

    def close(self) -> None:
        for proc in (self.site, self.api):
            proc.terminate()
            proc.wait(10)


def run_ccbb(
    servers: Servers, tps: float, concurrency: int, page_workers: int | None = None
) -> tuple[dict, float, float]:
    """The report, the wall time, and the CPU seconds of the scan (its page workers included)."""
    connect = [f"{h}:{p}:127.0.0.1:{servers.port}" for h in ("amzn.to", "amzn.eu", "a.co")
               for p in (80, 443)]  # fmt: skip
    args = [
        PY, "-m", "ccbb.cli", "scan", f"http://{servers.host}/", "--tag", "demo-20",
        "--api-host", f"http://127.0.0.1:{servers.api_port}",
        "--auth-endpoint", f"http://127.0.0.1:{servers.api_port}/auth/o2/token",
        "--allow-private-network", "--tps", str(tps), "--concurrency", str(concurrency),
        "--max-pages", "100000", "--format", "json", "--quiet",
        "--cloak", f"http://{servers.host}/go/",
    ]  # fmt: skip
    for mapping in connect:
        args += ["--connect-to", mapping]
    if page_workers is not None:
        args += ["--page-workers", str(page_workers)]
    env = {
        **os.environ,
        "CCBB_CREDENTIAL_ID": servers.credential["credential_id"],
        "CCBB_CREDENTIAL_SECRET": servers.credential["credential_secret"],
        "CCBB_CREDENTIAL_VERSION": servers.credential["version"],
    }
    t0, cpu0 = time.perf_counter(), children_cpu()
    done = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
    wall, cpu = time.perf_counter() - t0, children_cpu() - cpu0
    if done.returncode != 0:
        raise SystemExit(f"ccbb scan failed ({done.returncode}): {done.stderr}")
    return json.loads(done.stdout), wall, cpu


BARE_LOOP = r"""
import asyncio, json, sys, time
import aiohttp
from selectolax.lexbor import LexborHTMLParser

async def main(urls, concurrency):
    queue = asyncio.Queue()
    for url in urls:
        queue.put_nowait(url)
    parsed = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def worker():
            nonlocal parsed
            while not queue.empty():
                url = queue.get_nowait()
                async with session.get(url, allow_redirects=False) as resp:
                    body = await resp.read()
                LexborHTMLParser(body)
                parsed += 1
        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return parsed, time.perf_counter() - t0

urls = json.loads(sys.stdin.read())
pages, seconds = asyncio.run(main(urls, int(sys.argv[1])))
print(json.dumps({"pages": pages, "seconds": seconds}))
"""


def children_cpu() -> float:
    """CPU seconds (user + system) of the child processes waited for so far, theirs included."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_bare_loop(servers: Servers, concurrency: int) -> tuple[float, float]:
    """The physical baseline: GET + selectolax parse of the same pages at the same concurrency,
    one process, nothing else (no robots.txt, no link extraction, no frontier, no storage).
    Pages per second, and CPU milliseconds per page."""
    urls = sorted(json.loads(servers.expected.read_text())["scanned_pages"])
    cpu0 = children_cpu()
    done = subprocess.run(
        [PY, "-c", BARE_LOOP, str(concurrency)], input=json.dumps(urls),
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    cpu = children_cpu() - cpu0
    figures = json.loads(done.stdout)
    return float(figures["pages"] / figures["seconds"]), 1000 * cpu / figures["pages"]


def ensure_scrapy() -> Path:
    python = SCRAPY_VENV / "bin" / "python"
    if not python.exists():
        print("installing Scrapy into a throwaway venv (bench/.venv-scrapy)…", file=sys.stderr)
        subprocess.run([PY, "-m", "venv", str(SCRAPY_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "scrapy"], check=True)
    return python


def run_scrapy(servers: Servers, concurrency: int) -> dict:
    python = ensure_scrapy()
    out = subprocess.run(
        [str(python), str(HERE / "scrapy_spider.py"), f"http://{servers.host}/", str(concurrency)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--pages", type=int, default=5000)
    parser.add_argument("--page-bytes", type=int, default=40_000)
    parser.add_argument("--tps", type=float, default=10.0, help="the credential's TPS")
    parser.add_argument("--products", type=int, default=500, help="US products on the site")
    parser.add_argument("--runs", type=int, default=5, help="ccbb scans of the site (median)")
    parser.add_argument("--rss-pages", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--no-scrapy", action="store_true")
    parser.add_argument("--page-workers", type=int, default=None,
                        help="ccbb's page workers (default: the CLI's, one per core, ≤ 4)")  # fmt: skip
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        servers = Servers(args.pages, args.page_bytes, args.products, args.tps, tmp)
        try:
            runs, bare, bare_cpu = [], [], []
            for _ in range(args.runs):  # interleaved: a drift of the machine hits both alike
                bare_rate, cpu_per_page = run_bare_loop(servers, args.concurrency)
                bare.append(bare_rate)
                bare_cpu.append(cpu_per_page)
                runs.append(run_ccbb(servers, args.tps, args.concurrency, args.page_workers))
            expected = json.loads(servers.expected.read_text())
            scrapy = None if args.no_scrapy else run_scrapy(servers, args.concurrency)
        finally:
            servers.close()
        big = None
        if args.rss_pages:
            # 4× the pages and products at 4× the TPS: the API bound stays near the crawl time
            big_products = args.products * args.rss_pages // args.pages
            big_servers = Servers(args.rss_pages, args.page_bytes, big_products, args.tps * 4, tmp)
            try:
                big = run_ccbb(big_servers, args.tps * 4, args.concurrency, args.page_workers)
            finally:
                big_servers.close()

    in_order = [r["summary"]["urls_scanned"] / r["stats"]["crawl_seconds"] for r, _, _ in runs]
    # CPU per page of the whole scan command (start-up, API lookups and report included)
    ccbb_cpu = [1000 * cpu / r["summary"]["urls_scanned"] for r, _, cpu in runs]
    pair_ratios = sorted(ours / base for ours, base in zip(in_order, bare, strict=True))
    rates = sorted(in_order)
    rate = statistics.median(rates)
    bare_rate = statistics.median(bare)
    report, wall, _ = runs[len(runs) // 2]
    s, stats = report["summary"], report["stats"]
    truth = {k: expected[k] for k in s}
    rows = [
        ("pages scanned (= ground truth)", f"{s['urls_scanned']} ({s == truth})", "", ""),
        ("crawl + extract, median of runs", f"{rate:,.0f} pages/s",
         "≥ 1,500 pages/s", f"{rate / 1500:.2f}× target"),
        ("  each run", ", ".join(f"{r:,.0f}" for r in rates), "", ""),
        ("bare loop (aiohttp GET + selectolax parse), median",
         f"{bare_rate:,.0f} pages/s", "", ""),
        ("  each run", ", ".join(f"{r:,.0f}" for r in sorted(bare)), "", ""),
        ("ccbb / bare loop, median of the run-by-run ratios",
         f"{statistics.median(pair_ratios):.2f}×", "≥ 0.6×",
         f"{statistics.median(pair_ratios) / 0.6:.2f}× target"),
        ("  each pair", ", ".join(f"{r:.2f}" for r in pair_ratios), "", ""),
        ("CPU per page, all processes: ccbb scan (whole command) / bare loop, medians",
         f"{statistics.median(ccbb_cpu):.2f} / {statistics.median(bare_cpu):.2f} ms",
         "", f"{statistics.median(ccbb_cpu) / statistics.median(bare_cpu):.2f}×"),
    ]  # fmt: skip
    if scrapy:
        scrapy_rate = scrapy["pages"] / scrapy["crawl_seconds"]
        rows.append(("Scrapy on the same site", f"{scrapy_rate:,.0f} pages/s "
                     f"({scrapy['pages']} pages)", "", ""))  # fmt: skip
        rows.append(("ccbb / Scrapy", f"{rate / scrapy_rate:.1f}×", "≥ 4×", ""))
    asins = sum(1 for p in report["products"] if p["marketplace"] == report["marketplace"])
    ideal = math.ceil(asins / 10)
    rows.append(("Amazon requests", f"{stats['api_requests']} for {asins} ASINs",
                 f"{ideal} + retries", f"{stats['api_requests'] / ideal:.2f}× ideal"))  # fmt: skip
    api_bound = ideal / args.tps
    bound = 1.15 * max(stats["crawl_seconds"], api_bound) + 2
    rows.append(("scan wall time", f"{wall:.2f} s (crawl {stats['crawl_seconds']:.2f} s, "
                 f"API bound {api_bound:.2f} s)", f"≤ {bound:.2f} s",
                 f"{wall / bound:.2f}× limit"))  # fmt: skip
    if big:
        b_report, b_wall, _ = big
        b_s, b_stats = b_report["summary"], b_report["stats"]
        b_rate = b_s["urls_scanned"] / b_stats["crawl_seconds"]
        workers = min(4, os.cpu_count() or 1)  # the CLI's default page workers
        total_rss = b_stats["peak_rss_mb"] + workers * b_stats.get("page_worker_peak_rss_mb", 0)
        b_asins = sum(
            1 for p in b_report["products"] if p["marketplace"] == b_report["marketplace"]
        )
        b_bound = 1.15 * max(b_stats["crawl_seconds"], math.ceil(b_asins / 10) / (args.tps * 4))
        rows += [
            (f"crawl + extract, {b_s['urls_scanned']:,} pages", f"{b_rate:,.0f} pages/s",
             "≥ 1,500 pages/s", f"{b_rate / 1500:.2f}× target"),
            (f"peak RSS, {b_s['urls_scanned']:,} pages: crawler + {workers} page workers",
             f"{total_rss:.0f} MB ({b_stats['peak_rss_mb']:.0f} + {workers} × "
             f"{b_stats.get('page_worker_peak_rss_mb', 0):.0f})", "≤ 250 MB",
             f"{total_rss / 250:.2f}× limit"),
            (f"scan wall time, {b_s['urls_scanned']:,} pages", f"{b_wall:.2f} s",
             f"≤ {b_bound + 2:.2f} s", f"{b_wall / (b_bound + 2):.2f}× limit"),
        ]  # fmt: skip

    print(
        f"\nmachine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; {args.pages:,} pages of ~{args.page_bytes // 1000} kB "
        f"served by another process; concurrency {args.concurrency}; API at {args.tps:g} TPS\n"
    )
    print("| measure | result | target | ratio |\n|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
