"""SIGINT (Ctrl-C) and SIGTERM (docs/reliability.md): stop cleanly at any moment.

Python runs a signal handler only when the main thread returns to Python, which it does not do for
minutes while XLA compiles or runs a chunk, and a `KeyboardInterrupt` that unwinds past XLA's
running threads can end in a segmentation fault at exit. So a CLI calls `exit_at_once`: a watchdog
thread wakes on every signal (`signal.set_wakeup_fd`) and ends the process with one line and exit
code 128 + signum (`os._exit`), whatever the main thread is doing. Inside a `StopSignals` block (the
training loop) the first signal instead asks the loop to stop at its next chunk boundary, after a
checkpoint; a second one ends the process at once. Without `exit_at_once` (the Python API),
`StopSignals` handles the signals itself and a second one raises `KeyboardInterrupt`.
"""

from __future__ import annotations

import logging
import os
import signal
import threading

log = logging.getLogger("hipi_jax")
SIGNALS = (signal.SIGINT, signal.SIGTERM)
_active: StopSignals | None = None  # the innermost StopSignals block
_watching = False  # exit_at_once installed
_leaves = ["nothing was saved; rerun the same command"]  # what a stop at once leaves, as a run goes on


def leaving(text: str) -> None:
    """Say what a stop at this point leaves (the second half of `exit_at_once`'s line)."""
    _leaves[0] = text


def leaves() -> str:
    """What a stop at this point leaves (`leaving`)."""
    return _leaves[0]


class StopSignals:
    """While active, SIGINT and SIGTERM ask training to stop at the next chunk boundary (`signum` is set);
    a second one stops at once. Only in the main thread of a single-process run."""

    def __init__(self):
        self.signum: int | None = None
        self._lock = threading.RLock()  # a handler may run inside another in the main thread
        self._old: dict = {}

    def request(self, signum: int) -> bool:
        """Record a signal; True if it is the first (stop at the chunk boundary), False for a later one."""
        with self._lock:
            if self.signum is not None:
                return False
            self.signum = signum
        # logged from a thread of its own: a blocked stdout (a paused pager) must not hold up a second signal
        message = "signal %d: stopping after this chunk (a second one stops at once)"
        threading.Thread(target=log.info, args=(message, signum), daemon=True).start()
        return True

    def __enter__(self) -> StopSignals:
        global _active
        if threading.current_thread() is threading.main_thread():
            self._outer, _active = _active, self
            if not _watching:
                for signum in SIGNALS:
                    self._old[signum] = signal.signal(signum, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if not self.request(signum):
            raise KeyboardInterrupt

    def __exit__(self, *exc) -> None:
        global _active
        if threading.current_thread() is threading.main_thread():
            _active = self._outer
        for signum, handler in self._old.items():
            signal.signal(signum, handler)


def exit_at_once(prog: str) -> None:
    """For the rest of this (CLI) process, a SIGINT or SIGTERM ends the process at once with 128 + signum
    and one line on stderr, `PROG: stopped by SIGINT; <what it leaves>` (`leaving`), unless it is the
    first signal inside an active `StopSignals` block. Call from the main thread, before anything long."""
    global _watching
    read, write = os.pipe()
    os.set_blocking(write, False)
    signal.set_wakeup_fd(write, warn_on_full_buffer=False)
    caught = [s for s in SIGNALS if signal.getsignal(s) is not signal.SIG_IGN]  # e.g. `cmd &` in a script
    for signum in caught:
        signal.signal(signum, lambda signum, frame: None)  # the watchdog below does the work

    def watch() -> None:
        while data := os.read(read, 1):
            signum = data[0]  # the wakeup fd gets every signal with a Python handler, not only ours
            if signum not in caught:
                continue
            try:
                active = _active
                if active is not None and active.request(signum):
                    continue
            except Exception:  # noqa: BLE001, S110 - never let the watchdog die: stop at once instead
                pass
            os.write(2, f"{prog}: stopped by {signal.Signals(signum).name}; {_leaves[0]}\n".encode())
            os._exit(128 + signum)

    threading.Thread(target=watch, name="hipi-signals", daemon=True).start()
    _watching = True
