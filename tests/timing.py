"""Wall-clock bounds that hold on a busy machine.

A test that checks something "ends quickly" compares a duration with a bound. On a loaded CI
machine (two cores shared with other jobs) every duration grows by the time the machine took
away, so a fixed bound flakes. :class:`MachineLag` measures that time while the test runs, from
a separate process (so the code under test, which may block its own event loop, cannot hide
its own slowness in it): the process sleeps in short steps and adds up how late it wakes up.
A bound is then ``nominal + lag.stolen``: what the test measures, plus what the machine took.
"""

from __future__ import annotations

import subprocess
import sys
from types import TracebackType

_PROBE = r"""
import sys, time
step, stolen = 0.005, 0.0
while True:
    t = time.monotonic()
    time.sleep(step)
    stolen += max(0.0, time.monotonic() - t - step - 0.001)
    if sys.stdin in __import__("select").select([sys.stdin], [], [], 0)[0]:
        print(f"{stolen:.6f}", flush=True)
        break
"""


class MachineLag:
    """``with MachineLag() as lag: ...`` then ``lag.stolen``: seconds the machine was too busy
    to wake a sleeping process on time while the block ran (0 on an idle machine)."""

    def __init__(self) -> None:
        self.stolen = 0.0
        self._proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> MachineLag:
        self._proc = subprocess.Popen(
            [sys.executable, "-c", _PROBE], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._proc is not None and self._proc.stdin is not None
        try:
            out, _ = self._proc.communicate("x\n", timeout=30)
            self.stolen = float(out.strip() or 0.0)
        except (subprocess.TimeoutExpired, ValueError):
            self._proc.kill()
            self.stolen = float("inf")  # the machine could not even run the probe: no bound

    def bound(self, nominal: float) -> float:
        """``nominal`` seconds on an idle machine, plus twice what was taken away (the code
        under test and the probe both lose it)."""
        return nominal + 2 * self.stolen
