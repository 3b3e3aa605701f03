"""The stall guard: a long program that stops making progress ends with one line instead of waiting forever.

XLA's CPU runtime can wait forever with every thread asleep (docs/reliability.md). Nothing inside the
process can wake it, so a watchdog thread watches the host loop, which calls `beat()` after each unit
of work (hipi-train: a chunk with its evaluation, and its checkpoint). When no beat comes within the
limit, the guard writes one line to stderr and ends the process with `EXIT_STALLED`, so the caller (a
user, a figure script, a scheduler) can resume it. The limit is `timeout` seconds, or by default
`FACTOR` times the longest gap between beats so far (at least `FLOOR`), and `INITIAL` until the first
beat. Time the process spent suspended (Ctrl-Z) does not count.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

EXIT_STALLED = 75  # sysexits' EX_TEMPFAIL: a temporary failure, try again (here: --resume)
FACTOR = 10.0  # the automatic limit: this many times the longest gap between beats so far ...
FLOOR = 120.0  # ... but at least this many seconds
INITIAL = 1800.0  # the automatic limit until the first beat


def limit(gaps: list[float], timeout: float | None, factor: float = FACTOR, floor: float = FLOOR) -> float:
    """Seconds without a beat after which the program counts as stalled: `timeout` when given, else
    max(floor, factor x the longest of `gaps`), or `INITIAL` (at least `floor`) before any gap."""
    if timeout is not None:
        return timeout
    return max(floor, factor * max(gaps)) if gaps else max(floor, INITIAL)


class StallGuard:
    """A context manager whose watchdog ends the process (`EXIT_STALLED`) when `beat()` is not called
    within `limit(...)` seconds; `message(waited_s)` is the one line it writes first. `timeout` None is
    the automatic limit, 0 turns the guard off."""

    def __init__(self, message: Callable[[float], str], timeout: float | None = None, floor: float = FLOOR):
        if timeout is not None and timeout < 0:
            raise ValueError(f"--stall-timeout {timeout:g} must be >= 0 (0 = off)")
        self.message, self.timeout, self.floor = message, timeout, floor
        self.gaps: list[float] = []
        self._last = time.monotonic()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    def beat(self) -> None:
        """Progress: a unit of work finished now."""
        now = time.monotonic()
        self.gaps.append(now - self._last)
        self._last = now

    def __enter__(self) -> StallGuard:
        self._last = time.monotonic()
        if self.timeout != 0:
            self._thread = threading.Thread(target=self._watch, name="hipi-stall-guard", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join()

    def _watch(self) -> None:
        while not self._done.is_set():
            waited = time.monotonic() - self._last
            allowed = limit(self.gaps, self.timeout, floor=self.floor)
            if waited >= allowed:
                break
            nap = min(allowed - waited, 5.0)
            woke = time.monotonic()
            if self._done.wait(nap):
                return
            if (late := time.monotonic() - woke - nap) > 5.0:  # the process was suspended (Ctrl-Z): not a hang
                self._last += late
        if self._done.is_set():
            return
        # os.write and os._exit: the main thread is stuck, and may hold locks (logging's, stdio's)
        os.write(2, (self.message(waited).rstrip("\n") + "\n").encode())
        os._exit(EXIT_STALLED)
