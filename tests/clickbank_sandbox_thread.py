"""The ClickBank sandbox served from a background thread (its own event loop), for tests whose
client is synchronous."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ccbb.sandbox.clickbank import RunningClickbank, config_from_catalogue, running_clickbank
from tests.clickbank_fixtures import SECRET, VENDOR
from tests.sandbox_thread import serve_in_thread


@contextmanager
def clickbank_in_thread(
    *, ins_url: str, app_url: str = "http://127.0.0.1:9", **config: Any
) -> Iterator[RunningClickbank]:
    cfg = config_from_catalogue(
        app_url=app_url, vendor=VENDOR, secret=SECRET, api_key="API-KEY-TEST", **config
    )
    cfg.ins_url = ins_url
    with serve_in_thread(lambda: running_clickbank(cfg), "the ClickBank sandbox") as sandbox:
        yield sandbox
