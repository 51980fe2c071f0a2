"""Child processes of ``ccbb run --demo`` and of the tests: a free loopback port, and a process
started and waited for until it prints that it listens."""

from __future__ import annotations

import socket
import subprocess
from typing import Any


class ChildFailed(Exception):
    """The child process ended before it said it was ready."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on at this moment."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_and_wait(args: list[str], ready: str, env: dict[str, str] | None = None) -> Any:
    """Start ``args`` and read its output until a line holds ``ready``; the running process."""
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, env=env)  # noqa: S603
    assert proc.stdout is not None
    while True:
        line = proc.stdout.readline()
        if not line:
            raise ChildFailed(f"could not start {' '.join(args[:4])}")
        if ready in line:
            return proc
