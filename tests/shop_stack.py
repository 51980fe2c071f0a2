"""The shop as the browser walks meet it: ``ccbb web`` and ``ccbb worker`` as processes on SQLite
and a real Redis, and ``ccbb sandbox-clickbank`` wired as ``ccbb run --demo`` wires it."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis as sync_redis

from billing.catalogue import BUNDLED
from ccbb.child_processes import free_port
from ccbb.clickbank_demo import clickbank_sandbox
from ccbb.settings import Settings
from store.db import make_engine, session_factory
from store.migrate import upgrade
from tests.conftest import _off_loop


@dataclass
class Stack:
    url: str
    settings: Settings
    sandbox: str
    logs: list[Path]

    def db(self, fn: Any) -> Any:
        async def go() -> Any:
            engine = make_engine(self.settings.sqlalchemy_url)
            try:
                async with session_factory(engine)() as session:
                    return await fn(session)
            finally:
                await engine.dispose()

        return _off_loop(asyncio.run, go())

    def log_tails(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in self.logs)


def bundled_plans(extra: str = "") -> str:
    """The bundled catalogue without its PitchPlus flow, and ``extra`` after it."""
    text = BUNDLED.read_text()
    return text[: text.index("# ---- the PitchPlus")] + extra


@contextmanager
def running_shop(data: Path, redis_url: str, plans: str) -> Iterator[Stack]:
    """The web app, a worker and the ClickBank sandbox on the catalogue ``plans``, with their
    files under ``data``; the Redis database of ``redis_url`` is emptied before and after."""
    plans_file = data / "plans.toml"
    plans_file.write_text(plans)
    base_env = {"CCBB_PLANS_FILE": str(plans_file), "CCBB_DATA_DIR": str(data),
                "DATABASE_URL": f"sqlite:///{data / 'ccbb.sqlite3'}", "REDIS_URL": redis_url,
                "CCBB_QUEUE": f"ccbb:e2e:{uuid.uuid4().hex}"}  # fmt: skip
    port = free_port()
    app_url = f"http://127.0.0.1:{port}"
    cb_env, sandbox = clickbank_sandbox(app_url, base_env)
    settings = Settings(**{**base_env, **cb_env})  # type: ignore[arg-type]
    with sync_redis.Redis.from_url(redis_url) as r:
        r.flushdb()
    upgrade(settings.sqlalchemy_url)
    env = {**os.environ, **base_env, **cb_env}
    logs = [data / "worker.log", data / "web.log"]
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for log, args in zip(logs, (["worker"], ["web", "--port", str(port)]), strict=True):
            with log.open("wb") as out:
                cmd = [sys.executable, "-m", "ccbb.cli", *args]
                procs.append(subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT))
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(app_url + "/healthz", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "ccbb web did not start"
            time.sleep(0.2)
        yield Stack(app_url, settings, cb_env["CCBB_CLICKBANK_API_BASE"], logs)
    finally:
        for proc in (*procs, sandbox):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in (*procs, sandbox):
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        with sync_redis.Redis.from_url(redis_url) as r:
            r.flushdb()
