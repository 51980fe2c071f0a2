"""What the crawler's process and its page workers say to each other: length-prefixed pickle
frames through the worker's stdin and stdout (``scanner.page_workers`` is one end,
``scanner.page_worker`` the other)."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable
from typing import cast

from scanner.amazon_urls import AmazonTarget

HEADER = struct.Struct(">I")
# the exit status of a worker whose watchdog gave up on a page, and the id of the frame by which
# it says so before it ends (scanner.page_worker)
GAVE_UP = 75
GAVE_UP_FRAME = -1


class Frames:
    """Length-prefixed frames out of a byte stream, however the pipe splits it."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        buf = self._buf
        buf += data
        frames: list[bytes] = []
        at, size = 0, len(buf)
        while size - at >= HEADER.size:
            end = at + HEADER.size + HEADER.unpack_from(buf, at)[0]
            if end > size:
                break
            frames.append(bytes(buf[at + HEADER.size : end]))
            at = end
        if at:
            del buf[:at]
        return frames


class Outbox:
    """Frames written in one turn of the event loop leave in one write (one system call and one
    wake-up of the reader, not one each)."""

    def __init__(self, write: Callable[[bytes], object]) -> None:
        self._write = write
        self._data = bytearray()

    def send(self, payload: bytes) -> None:
        if not self._data:
            asyncio.get_running_loop().call_soon(self.flush)
        self.add(payload)

    def add(self, payload: bytes) -> None:
        """One frame more for the next write, without asking the loop for one."""
        self._data += HEADER.pack(len(payload))
        self._data += payload

    def flush(self) -> None:
        if self._data:
            self._write(self.take())

    def take(self) -> bytes:
        """The frames not written yet, now the caller's to write."""
        data = bytes(self._data)
        self._data.clear()
        return data


class KnownProducts:
    """The products of each Amazon link go through a worker's pipe once: a site repeats its
    links on every page, and unpickling the same products on each page was half the cost of
    reading a result. The worker sends None for a link it sent before (:meth:`leave_out`); the
    crawler's side puts back what it kept (:meth:`fill_in`)."""

    def __init__(self) -> None:
        self._targets: dict[str, AmazonTarget] = {}

    def leave_out(self, amazon: list[tuple[str, AmazonTarget]]) -> list[tuple[str, AmazonTarget]]:
        out: list[tuple[str, AmazonTarget | None]] = []
        for href, target in amazon:
            if href in self._targets:
                out.append((href, None))
            else:
                self._targets[href] = target
                out.append((href, target))
        return cast(list[tuple[str, AmazonTarget]], out)  # None travels, fill_in() fills it

    def fill_in(self, amazon: list[tuple[str, AmazonTarget]]) -> list[tuple[str, AmazonTarget]]:
        targets = self._targets
        out = []
        for href, target in amazon:
            if target is None:  # see leave_out()
                target = targets[href]
            else:
                targets[href] = target
            out.append((href, target))
        return out
