"""Scan processes (``ccbb scan``, the page workers) run on uvloop where it is installed."""

from __future__ import annotations

import asyncio
import sys

import pytest

from scanner import event_loop


async def _loop_module() -> str:
    await asyncio.sleep(0)
    return type(asyncio.get_running_loop()).__module__


@pytest.mark.skipif(sys.platform == "win32", reason="no uvloop on Windows")
def test_a_scan_process_runs_on_uvloop() -> None:
    assert event_loop.run(_loop_module()).startswith("uvloop")


def test_without_uvloop_it_is_asyncio_s_own_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # an import of it fails
    assert event_loop.run(_loop_module()).startswith("asyncio")
