"""``ccbb run --demo`` shows a payout: the PayPal sandbox runs as a process of its own, the demo
account is an affiliate whose Affiliate page lists the payout of the latest payout date, which
the sandbox's page shows as received; a second start pays nothing again."""

from __future__ import annotations

import re
import signal
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.test_run_demo import start_demo_run

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    finally:
        proc.kill()


def _affiliate_page(base: str, log: str) -> str:
    password = re.findall(r"with the password (\S+?),", log)[-1]
    with httpx.Client(base_url=base) as client:
        client.get("/login")
        r = client.post("/login", data={
            "email": "demo@example.com", "password": password,
            "csrftoken": client.cookies["csrftoken"],
        })  # fmt: skip
        assert r.status_code == 303
        return client.get("/affiliate").text


def test_the_demo_makes_a_payout_a_newcomer_can_see(tmp_path: Path) -> None:
    proc, base, log_file = start_demo_run(tmp_path)
    try:
        log = log_file.read_text()
        found = re.search(r"demo PayPal at (\S+)/_sandbox/ .* lists the payout of (\S+) \(53\.10 USD",
                          log)  # fmt: skip
        assert found, log
        sandbox, day = found.groups()
        page = _affiliate_page(base, log)
        table = page.split('id="payout-table"', 1)[1].split("</table>", 1)[0]
        assert table.count("<tr>") == 2 and "$53.10" in table and ">Paid<" in table, table
        received = httpx.get(f"{sandbox}/_sandbox/batches").json()
        assert [(b["sender_batch_id"], [i["value"] for i in b["items"]]) for b in received] == [
            (f"ccbb-payout-{day}", ["53.10"])
        ]
    finally:
        _stop(proc)
    # started again on the same data: the payout of that date is found made, not made again
    proc, base, log_file = start_demo_run(tmp_path)
    try:
        log = log_file.read_text()
        found = re.search(r"demo PayPal at (\S+)/_sandbox/ .* lists the payout of (\S+) \(53\.10",
                          log)  # fmt: skip
        assert found, log
        assert httpx.get(f"{found.group(1)}/_sandbox/batches").json() == []  # a new sandbox
        table = _affiliate_page(base, log).split('id="payout-table"', 1)[1]
        assert table.split("</table>", 1)[0].count("<tr>") == 2
    finally:
        _stop(proc)
