"""The stall guard's limit and its watchdog (src/hipi_jax/stall.py); hipi-train's use of it is in
test_faults.py."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from hipi_jax import stall


def test_the_automatic_limit_is_factor_times_the_longest_gap_at_least_the_floor():
    assert stall.limit([], None) == stall.INITIAL
    assert stall.limit([1.0, 30.0, 2.0], None) == 300.0
    assert stall.limit([1.0, 2.0], None) == stall.FLOOR  # 20 s is below the floor
    assert stall.limit([1.0, 30.0], 7.0) == 7.0  # an explicit timeout wins
    assert stall.limit([], None, floor=4000.0) == 4000.0


def test_a_negative_timeout_is_refused():
    with pytest.raises(ValueError, match="must be >= 0"):
        stall.StallGuard(lambda waited: "", timeout=-1)


def test_beats_keep_the_guard_quiet_and_leaving_stops_it():
    with stall.StallGuard(lambda waited: "never", timeout=5.0) as guard:
        for _ in range(6):
            time.sleep(0.2)
            guard.beat()
    assert not guard._thread.is_alive()  # leaving stops the watchdog
    assert len(guard.gaps) == 6 and all(0.15 < g < 5.0 for g in guard.gaps)


PROGRAM = """
import threading, sys
from hipi_jax import stall
guard = stall.StallGuard(lambda waited: f"prog: error: stalled for {waited:.1f} s", timeout=float(sys.argv[1]))
with guard:
    guard.beat()
    threading.Event().wait()  # blocks forever
"""


@pytest.mark.parametrize("timeout", [0.5, 1.5])
def test_a_blocked_program_ends_with_one_line_and_exit_75_after_the_timeout(timeout):
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", PROGRAM, str(timeout)], capture_output=True, text=True, timeout=60)
    took = time.monotonic() - started
    assert proc.returncode == stall.EXIT_STALLED == 75
    (line,) = proc.stderr.splitlines()
    assert line.startswith("prog: error: stalled for ") and float(line.split()[-2]) >= timeout - 0.05
    assert timeout <= took < timeout + 20


def test_timeout_zero_never_fires():
    program = PROGRAM.replace("threading.Event().wait()", "threading.Event().wait(1.5)")
    proc = subprocess.run([sys.executable, "-c", program, "0"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stderr == ""
