"""A local SMTP server that catches every mail (aiosmtpd): what ``ccbb run --demo`` sends
the product's mail to, shown at ``/demo/mail``, and the SMTP server the tests send through.

    python -m ccbb.sandbox.smtp_catcher --port 0 --dir data/demo-mail

Each mail is kept as ``<n>.eml`` in ``--dir`` (and in memory, for tests). Loopback only.
"""

from __future__ import annotations

import argparse
import email
import email.policy
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

from ccbb.child_processes import free_port

READY = "smtp catcher ready at"


class Catcher:
    """aiosmtpd handler: keeps each message (parsed) and, with ``folder``, writes it there."""

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = folder
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self._lock = threading.Lock()
        self.arrived = threading.Condition(self._lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw: bytes = envelope.original_content or envelope.content
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        with self._lock:
            self.messages.append(msg)
            self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
            n = len(self.messages)
            if self.folder is not None:
                self.folder.mkdir(parents=True, exist_ok=True)
                (self.folder / f"{n:06d}.eml").write_bytes(raw)
            self.arrived.notify_all()
        return "250 Message accepted for delivery"

    def wait_for(self, count: int, timeout: float = 10.0) -> list[EmailMessage]:
        """The messages, once at least ``count`` arrived (AssertionError after ``timeout``)."""
        with self.arrived:
            if not self.arrived.wait_for(lambda: len(self.messages) >= count, timeout):
                raise AssertionError(f"{len(self.messages)} mails arrived, not {count}")
            return list(self.messages)


@contextmanager
def running_catcher(folder: Path | None = None, port: int = 0) -> Iterator[tuple[Catcher, int]]:
    """The catcher on 127.0.0.1 in a thread of this process: (its handler, its port)."""
    catcher = Catcher(folder)
    controller = Controller(catcher, hostname="127.0.0.1", port=port or free_port())
    controller.start()
    try:
        yield catcher, int(controller.port)
    finally:
        controller.stop()


def read_folder(folder: Path, limit: int = 50) -> list[EmailMessage]:
    """The mails caught in ``folder``, newest first."""
    out: list[EmailMessage] = []
    if not folder.is_dir():
        return out
    for path in sorted(folder.glob("*.eml"), reverse=True)[:limit]:
        msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        out.append(msg)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="smtp_catcher", description=__doc__)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--dir", type=Path, required=True)
    args = ap.parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with running_catcher(args.dir, args.port) as (_, port):
        sys.stdout.write(f"{READY} 127.0.0.1:{port}\n")
        sys.stdout.flush()
        with suppress(KeyboardInterrupt):
            stop.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
