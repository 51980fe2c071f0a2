"""Shared rate-limit benchmark: N worker processes, one Creators API credential limited to T TPS.

    .venv/bin/python bench/limiter_bench.py [--processes 4] [--tps 5] [--count 25]
                                            [--redis-url URL]

Each worker (``tests/limiter_worker.py``) makes ``count`` real lookups through
``scanner.creators_api.ProductChecker`` against one ``ccbb sandbox-amazon`` subprocess whose credential
allows T TPS, retries off so that every attempt shows. Compared side by side:

- ``RedisRateLimiter``: every process paces on one Redis key (the embedded Redis in a temporary
  folder unless ``--redis-url`` is given);
- the baseline, ``LocalRateLimiter(T)`` in each process: N × T requests per second, and 429s.

Prints a markdown table: requests, 429s, measured rate (requests / s between the first and the
last request the sandbox saw), smallest gap between two requests, wall time. Targets for the Redis
limiter: rate ≤ T and ≥ 0.9 T, no 429.
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ccbb.embedded import EmbeddedRedis  # noqa: E402
from ccbb.sandbox.amazon_api import Catalogue  # noqa: E402
from tests.limiter_worker import shared_catalogue  # noqa: E402

WORKER = ROOT / "tests" / "limiter_worker.py"
PY = sys.executable


def catalogue(tps: float) -> dict[str, Any]:
    return Catalogue.from_dict(shared_catalogue(tps)).to_dict()  # checked as the sandbox does


def start_sandbox(path: Path) -> tuple[subprocess.Popen[str], str, str]:
    proc = subprocess.Popen(
        [PY, "-m", "ccbb.cli", "sandbox-amazon", "--port", "0", "--catalogue", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    found = re.search(r"at (http://\S+) \(auth endpoint (\S+)\)", line)
    if not found:
        proc.kill()
        raise SystemExit(f"the sandbox did not start: {line!r}")
    return proc, found.group(1), found.group(2)


def run(
    mode: str, url: str, auth: str, redis_url: str, processes: int, count: int, tps: float
) -> dict[str, Any]:
    httpx.post(url + "/_sandbox/reset").raise_for_status()
    prefix = f"ccbb-bench-{time.time_ns()}:"
    args = [
        PY, str(WORKER), "--api-host", url, "--auth-endpoint", auth, "--count", str(count),
        "--limiter", mode, "--redis-url", redis_url, "--prefix", prefix, "--tps", str(tps),
    ]  # fmt: skip
    procs = [
        subprocess.Popen(
            args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(processes)
    ]
    for proc in procs:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if line.strip() != "ready":
            raise SystemExit(f"worker failed: {line!r} {proc.stderr.read() if proc.stderr else ''}")
    started = time.monotonic()
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        if proc.returncode != 0:
            raise SystemExit(f"worker failed: {err}")
        json.loads(out.strip().splitlines()[-1])
    wall = time.monotonic() - started
    records = httpx.get(url + "/_sandbox/requests").json()
    times = sorted(r["t"] for r in records)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    statuses = [r["status"] for r in records]
    return {
        "requests": len(records),
        "ok": statuses.count(200),
        "throttled": statuses.count(429),
        "rate": (len(times) - 1) / (times[-1] - times[0]),
        "min_gap": min(gaps),
        "wall": wall,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--tps", type=float, default=5.0)
    parser.add_argument("--count", type=int, default=25, help="lookups per process")
    parser.add_argument("--redis-url", help="default: an embedded Redis in a temporary folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ccbb-limiter-bench-") as tmp:
        path = Path(tmp) / "catalogue.json"
        path.write_text(json.dumps(catalogue(args.tps)), encoding="utf-8")
        embedded = None if args.redis_url else EmbeddedRedis(Path(tmp) / "data").start()
        redis_url = args.redis_url or (embedded.url if embedded else "")
        sandbox, url, auth = start_sandbox(path)
        try:
            results = {
                mode: run(mode, url, auth, redis_url, args.processes, args.count, args.tps)
                for mode in ("redis", "local")
            }
        finally:
            sandbox.terminate()
            sandbox.wait(timeout=10)
            if embedded is not None:
                embedded.stop(force=True)
    where = "embedded Redis (unix socket)" if embedded else "Redis at --redis-url"
    print(
        f"\n{args.processes} processes × {args.count} lookups, one credential at "
        f"{args.tps:g} TPS (sandbox subprocess; {where}; retries off)\n"
    )
    print("| limiter | requests | 200 | 429 | measured rate (req/s) | min gap (ms) | wall (s) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    names = {
        "redis": "RedisRateLimiter (shared key)",
        "local": f"LocalRateLimiter({args.tps:g}) per process",
    }
    for mode, r in results.items():
        print(
            f"| {names[mode]} | {r['requests']} | {r['ok']} | {r['throttled']} | "
            f"{r['rate']:.3f} | {r['min_gap'] * 1000:.1f} | {r['wall']:.1f} |"
        )
    shared = results["redis"]
    ok = shared["throttled"] == 0 and 0.9 * args.tps <= shared["rate"] <= args.tps
    print(
        f"\nRedisRateLimiter: rate {shared['rate']:.3f}/s "
        f"(target ≤ {args.tps:g} and ≥ {0.9 * args.tps:g}), {shared['throttled']} × 429: "
        f"{'OK' if ok else 'FAILED'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
