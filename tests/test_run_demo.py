"""``ccbb run --demo`` (the README's first command) as a user runs it: one process that starts a
private Redis, SQLite, a worker, the demo site and the sandbox Amazon API; its demo account's
saved credentials work in the dashboard (Test connection) and a stop ends every process."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from ccbb.child_processes import free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


def _children(pid: int) -> set[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    return {int(p) for p in out.stdout.split()}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = (
        Path(f"/proc/{pid}/stat").read_text().split()[2] if Path(f"/proc/{pid}").exists() else ""
    )
    return state != "Z"


def start_demo_run(
    tmp_path: Path, timeout: float = 60
) -> tuple[subprocess.Popen[bytes], str, Path]:
    """``ccbb run --demo`` on a free port with a fresh data directory (none of this machine's
    CCBB_ settings), once its dashboard answers: the process, its URL and its log file."""
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CCBB_", "REDIS_URL", "DATABASE_URL"))
    }
    env["CCBB_DATA_DIR"] = str(tmp_path / "data")
    log = tmp_path / "run.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ccbb.cli", "run", "--demo", "--port", str(port)],
            env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    return proc, base, log
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.3)
    except BaseException:
        proc.kill()
        raise


def test_the_demo_runs_and_stops_whole(tmp_path: Path) -> None:
    proc, base, log = start_demo_run(tmp_path)
    try:
        password = re.search(r"with the password (\S+?),", log.read_text())
        assert password, log.read_text()
        with httpx.Client(base_url=base) as client:
            client.get("/login")
            r = client.post("/login", data={
                "email": "demo@example.com", "password": password.group(1),
                "csrftoken": client.cookies["csrftoken"],
            })  # fmt: skip
            assert r.status_code == 303
            billing = client.get("/billing").text  # the demo account has scan credits
            assert re.search(r'id="balance">20<', billing) and "Demo credits" in billing
            settings = client.get("/settings").text
            [credential] = re.findall(r"/settings/credentials/(\d+)/test", settings)
            r = client.post(
                f"/settings/credentials/{credential}/test",
                data={"csrftoken": client.cookies["csrftoken"]},
            )
            # the dashboard reaches the sandbox, as the worker does (not Amazon)
            assert re.search(r'id="connection-result">Connected', r.text), r.text[-3000:]
        # a newcomer signs up: the worker sends the confirmation mail to the demo's catcher,
        # shown at /demo/mail, with a link to this dashboard that confirms the address
        with httpx.Client(base_url=base) as client:
            client.get("/signup")
            r = client.post("/signup", data={
                "email": "newcomer@example.com", "password": "a long enough password",
                "csrftoken": client.cookies["csrftoken"],
            })  # fmt: skip
            assert r.status_code == 303
            deadline = time.monotonic() + 30
            # the mail's link (every page of an unconfirmed account also says "Confirm your
            # e-mail address", in its banner: the words alone do not mean the mail came)
            while not (link := re.search(rf"{base}(/confirm\?t=[\w.\-]+)",
                                         page := client.get("/demo/mail").text)):  # fmt: skip
                assert time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(0.3)
            assert "Confirm your e-mail address" in page
            assert "Your e-mail address is confirmed" in client.get(link.group(1)).text
        children = _children(proc.pid)
        assert len(children) >= 5  # worker, demo site, sandbox, SMTP catcher, Redis
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        finally:
            proc.kill()
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [pid for pid in children if _alive(pid)], "processes left behind"
