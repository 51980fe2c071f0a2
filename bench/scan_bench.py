"""Scan-engine benchmark: ``ccbb scan`` against a loopback site served by another process, with
Scrapy measured side by side on the same site, and the Amazon sandbox as the API.

    .venv/bin/python bench/scan_bench.py [--pages 5000] [--page-bytes 40000] [--tps 50]
                                         [--rss-pages 20000] [--concurrency 16] [--no-scrapy]
                                         [--before DIR]

Each ccbb scan is preceded by the physical baseline on the same pages: a bare loop of aiohttp GET +
selectolax parse at the same concurrency (no robots.txt, no extraction, no storage); ccbb's crawl +
extract must reach ≥ 0.6× of it (issue 9, item 18), a ratio that holds on a noisy machine where an
absolute rate does not.

Prints a table of figures, targets and ratios (issue "scan engine": ≥ 1,500 pages/s, ≥ 4× Scrapy,
API requests = ⌈unique ASINs / 10⌉ + retries, wall ≤ 1.15 × max(crawl, API bound) + 2 s,
peak RSS ≤ 250 MB at 20,000 pages). Scrapy goes into a throwaway venv under bench/.

The API bound is ⌈unique ASINs / 10⌉ slots of the rate limiter, whose slots are wider than
1 / TPS by a deliberate margin (``scanner.ratelimit.pacing``: 10 %, at least 10 ms; it keeps the
promise of never exceeding the TPS when a process runs late): at 10 TPS, 50 requests take 5.5 s,
not 5.0 s. Both are printed.

``--before DIR`` runs ``ccbb scan`` from another checkout too (a ``git worktree`` of main, say),
with this interpreter and its installed dependencies, in every round next to this checkout's
(their order alternating), so the two builds meet the same machine: the before/after figures
are side by side at the end, with the load average seen during the runs.
"""

from __future__ import annotations

import argparse
import importlib.util
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

from scanner import allocator

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
    servers: Servers,
    tps: float,
    concurrency: int,
    page_workers: int | None = None,
    tree: Path | None = None,
) -> tuple[dict, float, float]:
    """The report, the wall time, and the CPU seconds of the scan (its page workers included).
    ``tree``: the checkout whose code runs (``python -m`` puts the working directory first on
    the module path, the page workers inherit it); this one by default."""
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
    done = subprocess.run(
        args, env=env, capture_output=True, text=True, check=False, cwd=tree or HERE.parent
    )
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
if sys.argv[2:3] == ["tuned"]:  # what ccbb's scan processes do to themselves, here too
    import ctypes
    import uvloop
    mallopt = ctypes.CDLL(None).mallopt
    mallopt(-1, int(sys.argv[3]))  # M_TRIM_THRESHOLD
    mallopt(-3, int(sys.argv[4]))  # M_MMAP_THRESHOLD
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
pages, seconds = asyncio.run(main(urls, int(sys.argv[1])))
print(json.dumps({"pages": pages, "seconds": seconds}))
"""


def children_cpu() -> float:
    """CPU seconds (user + system) of the child processes waited for so far, theirs included."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# the bare loop's arguments for scanner.allocator's settings (it imports nothing of ours)
_TUNED = ["tuned", str(allocator.KEPT), str(allocator.OWN_MAPPING_ABOVE)]


def run_bare_loop(servers: Servers, concurrency: int, tuned: bool = False) -> tuple[float, float]:
    """The physical baseline: GET + selectolax parse of the same pages at the same concurrency,
    one process, nothing else (no robots.txt, no link extraction, no frontier, no storage).
    Pages per second, and CPU milliseconds per page. ``tuned``: on uvloop and with the
    allocator keeping what it frees, as ccbb's scan processes run (``--tuned-bare``)."""
    urls = sorted(json.loads(servers.expected.read_text())["scanned_pages"])
    cpu0 = children_cpu()
    done = subprocess.run(
        [PY, "-c", BARE_LOOP, str(concurrency), *(_TUNED if tuned else [])],
        input=json.dumps(urls), capture_output=True, text=True, check=True,
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
    parser.add_argument("--tuned-bare", action="store_true",
                        help="also run the bare loop as ccbb's processes run (uvloop, malloc "
                        "keeping freed memory): how much of the ratio those two give")  # fmt: skip
    parser.add_argument("--before", type=Path, default=None, metavar="DIR",
                        help="also run ccbb scan from this checkout, interleaved")  # fmt: skip
    args = parser.parse_args()
    warn_uncompiled()
    for tree in (HERE.parent, args.before):
        if tree is not None:
            compile_tree(tree)
    loads = [os.getloadavg()[0]]

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        servers = Servers(args.pages, args.page_bytes, args.products, args.tps, tmp)
        try:
            runs: list[tuple[dict, float, float]] = []
            before: list[tuple[dict, float, float]] = []
            bare, bare_cpu, tuned_bare = [], [], []
            for n in range(args.runs):  # interleaved: a drift of the machine hits all alike
                bare_rate, cpu_per_page = run_bare_loop(servers, args.concurrency)
                bare.append(bare_rate)
                bare_cpu.append(cpu_per_page)
                if args.tuned_bare:
                    tuned_bare.append(run_bare_loop(servers, args.concurrency, tuned=True)[0])
                trees = [None] if args.before is None else [None, args.before.resolve()]
                for tree in trees if n % 2 == 0 else trees[::-1]:
                    got = run_ccbb(servers, args.tps, args.concurrency, args.page_workers, tree)
                    (runs if tree is None else before).append(got)
                loads.append(os.getloadavg()[0])
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

    mine = figures(runs, bare, bare_cpu, args.tps)
    # the run whose wall is the median against its own limit
    middle = sorted(range(len(runs)), key=lambda i: mine["walls"][i])[len(runs) // 2]
    report, wall, _ = runs[middle]
    s, stats = report["summary"], report["stats"]
    truth = {k: expected[k] for k in s}
    rate = mine["rate"]
    rows = [
        ("pages scanned (= ground truth)", f"{s['urls_scanned']} ({s == truth})", "", ""),
        ("crawl + extract, median of runs", f"{rate:,.0f} pages/s",
         "≥ 1,500 pages/s", f"{rate / 1500:.2f}× target"),
        ("  each run", ", ".join(f"{r:,.0f}" for r in mine["rates"]), "", ""),
        ("bare loop (aiohttp GET + selectolax parse), median",
         f"{statistics.median(bare):,.0f} pages/s", "", ""),
        ("  each run", ", ".join(f"{r:,.0f}" for r in sorted(bare)), "", ""),
        ("ccbb / bare loop, median of the run-by-run ratios",
         f"{mine['ratio']:.2f}×", "≥ 0.6×", f"{mine['ratio'] / 0.6:.2f}× target"),
        ("  each pair", ", ".join(f"{r:.2f}" for r in mine["ratios"]), "", ""),
        *(
            [("bare loop on uvloop, malloc keeping freed memory (as ccbb runs), median",
              f"{statistics.median(tuned_bare):,.0f} pages/s", "", ""),
             ("ccbb / that tuned bare loop, median of the pairs",
              f"{statistics.median(o / b for o, b in zip(mine['rates_in_order'], tuned_bare, strict=True)):.2f}×",
              "", "")]
            if tuned_bare else []
        ),
        ("CPU per page, all processes: ccbb scan (whole command) / bare loop, medians",
         f"{mine['cpu']:.2f} / {mine['bare_cpu']:.2f} ms", "",
         f"{mine['cpu'] / mine['bare_cpu']:.2f}×"),
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
    slot = api_slot(args.tps)
    rows.append(("scan wall time (the run of median wall / limit)",
                 f"{wall:.2f} s (crawl {stats['crawl_seconds']:.2f} s from "
                 f"{stats.get('crawl_started_seconds', 0):.2f} s, API bound {ideal / args.tps:.2f} s"
                 f" at 1/TPS, {ideal * slot:.2f} s in the limiter's {slot * 1000:.0f} ms slots)",
                 f"≤ {mine['limits'][middle]:.2f} s",
                 f"{wall / mine['limits'][middle]:.2f}× limit"))  # fmt: skip
    rows.append(("  each run: wall / limit", ", ".join(f"{w:.2f}" for w in mine["walls"]), "", ""))
    rows.append(("  in the engine / start-up, report and exit (median run)",
                 f"{stats['total_seconds']:.2f} / {wall - stats['total_seconds']:.2f} s",
                 "", ""))  # fmt: skip
    if big:
        b_report, b_wall, _ = big
        b_s, b_stats = b_report["summary"], b_report["stats"]
        b_rate = b_s["urls_scanned"] / b_stats["crawl_seconds"]
        workers = min(4, os.cpu_count() or 1)  # the CLI's default page workers
        total_rss = b_stats["peak_rss_mb"] + workers * b_stats.get("page_worker_peak_rss_mb", 0)
        b_asins = sum(
            1 for p in b_report["products"] if p["marketplace"] == b_report["marketplace"]
        )
        b_slot = api_slot(args.tps * 4)
        b_bound = 1.15 * max(b_stats["crawl_seconds"], math.ceil(b_asins / 10) * b_slot)
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
        f"served by another process; concurrency {args.concurrency}; API at {args.tps:g} TPS; "
        f"load average (1 min) {min(loads):.1f}–{max(loads):.1f} during the runs\n"
    )
    print("| measure | result | target | ratio |\n|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    if before:
        print_before_after(figures(before, bare, bare_cpu, args.tps), mine, args.before)
    return 0


def api_slot(tps: float) -> float:
    """Seconds between two Amazon requests of one credential, as the product paces them."""
    from scanner.ratelimit import pacing

    return pacing(tps)[0]


def figures(
    runs: list[tuple[dict, float, float]], bare: list[float], bare_cpu: list[float], tps: float
) -> dict:
    """The medians of one build's runs, each against the bare loop of its round."""
    rates = [r["summary"]["urls_scanned"] / r["stats"]["crawl_seconds"] for r, _, _ in runs]
    limits = []
    for report, _, _ in runs:
        asins = sum(1 for p in report["products"] if p["marketplace"] == report["marketplace"])
        api_bound = math.ceil(asins / 10) * api_slot(tps)
        limits.append(1.15 * max(report["stats"]["crawl_seconds"], api_bound) + 2)
    return {
        "rate": statistics.median(rates),
        "rates": sorted(rates),
        "rates_in_order": rates,
        "ratios": [ours / base for ours, base in zip(rates, bare, strict=True)],
        "ratio": statistics.median(ours / base for ours, base in zip(rates, bare, strict=True)),
        # CPU per page of the whole scan command (start-up, API lookups and report included)
        "cpu": statistics.median(1000 * c / r["summary"]["urls_scanned"] for r, _, c in runs),
        "bare_cpu": statistics.median(bare_cpu),
        "wall": statistics.median(w for _, w, _ in runs),
        "walls": [w / limit for (_, w, _), limit in zip(runs, limits, strict=True)],
        "limits": limits,
        "in_engine": statistics.median(r["stats"]["total_seconds"] for r, _, _ in runs),
    }


def print_before_after(old: dict, new: dict, tree: Path) -> None:
    print(f"\nbefore ({tree}) and after (this checkout), interleaved, same bare loop:\n")
    print("| measure | before | after | after / before |\n|---|---|---|---|")
    for name, key, unit in (
        ("crawl + extract, median", "rate", "pages/s"),
        ("ccbb / bare loop, median of the pairs", "ratio", "×"),
        ("CPU per page, whole command", "cpu", "ms"),
        ("scan wall time, median", "wall", "s"),
        ("  of which in the engine", "in_engine", "s"),
    ):
        a, b = old[key], new[key]
        fmt = ",.0f" if key == "rate" else ".2f"
        print(f"| {name} | {a:{fmt}} {unit} | {b:{fmt}} {unit} | {b / a:.2f} |")
    print("| ccbb / bare loop, each pair | " + ", ".join(f"{r:.2f}" for r in old["ratios"])
          + " | " + ", ".join(f"{r:.2f}" for r in new["ratios"]) + " | |")  # fmt: skip
    print("| wall / its limit, each run | " + ", ".join(f"{r:.2f}" for r in old["walls"])
          + " | " + ", ".join(f"{r:.2f}" for r in new["walls"]) + " | |")  # fmt: skip


def compile_tree(tree: Path) -> None:
    """The bytecode of a checkout's own packages, as an installed build has it (where
    PYTHONDONTWRITEBYTECODE is set, Python would compile them again in every process)."""
    packages = [str(p.parent) for p in tree.resolve().glob("*/__init__.py")]
    subprocess.run([PY, "-m", "compileall", "-q", *packages], check=True, capture_output=True)


def warn_uncompiled() -> None:
    """Say so when the dependencies have no bytecode: with PYTHONDONTWRITEBYTECODE set, every
    process (the scan, each page worker) then compiles each module it imports, about a second
    of CPU that an installed build (``./run``) does not pay."""
    spec = importlib.util.find_spec("aiohttp")
    origin = spec.origin if spec else None
    if origin and not Path(importlib.util.cache_from_source(origin)).exists():
        print("warning: the dependencies' bytecode is not compiled (run ./run --version once); "
              "start-up figures include compiling them", file=sys.stderr)  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
