"""For ``ccbb run --demo``: the ClickBank sandbox as a process of its own, wired to the app with
fresh demo keys, so that a newcomer can buy a plan and an upsell and watch the credits arrive."""

from __future__ import annotations

import os
import secrets
import string
import sys
from typing import Any

from ccbb.child_processes import free_port, start_and_wait

DEMO_VENDOR = "ccbbdemo"


def clickbank_sandbox(
    app_url: str, extra_env: dict[str, str] | None = None
) -> tuple[dict[str, str], Any]:
    """Start ``ccbb sandbox-clickbank`` for the app at ``app_url``; returns the environment the
    app and the worker need (vendor, keys, pay-link and API bases) and the process."""
    port = free_port()
    alphabet = string.ascii_uppercase + string.digits
    env = {
        "CCBB_CLICKBANK_VENDOR": DEMO_VENDOR,
        "CCBB_CLICKBANK_SECRET_KEY": "".join(secrets.choice(alphabet) for _ in range(16)),
        "CCBB_CLICKBANK_API_KEY": "API-" + secrets.token_hex(12).upper(),
        "CCBB_CLICKBANK_PAY_BASE": f"http://127.0.0.1:{port}/{{vendor}}/",
        "CCBB_CLICKBANK_API_BASE": f"http://127.0.0.1:{port}",
        "CCBB_PUBLIC_URL": app_url,
    }
    proc = start_and_wait(
        [sys.executable, "-m", "ccbb.cli", "sandbox-clickbank", "--port", str(port),
         "--app-url", app_url, "--retry", "2,5,10"],
        "http://", env={**os.environ, **(extra_env or {}), **env},
    )  # fmt: skip
    sys.stderr.write(
        f"ccbb: demo ClickBank at http://127.0.0.1:{port}/_sandbox/ — in the dashboard, Billing "
        "› Buy a plan, pay on the sandbox's order form (any e-mail), take or skip the upsell "
        "offers, then follow a thank-you link: the credits arrive with the notification\n"
    )
    return env, proc
