"""What the four commands share on the console: a parser whose errors are one line, `fail` (one line
naming the value and what is allowed, exit 2, nothing written) and the `hipi_jax` logger on stdout."""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from typing import NoReturn


class OneLineParser(argparse.ArgumentParser):
    """argparse whose errors are one line and exit 2 (argparse would also print the usage)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog.split()[0]}: error: {message}\n")  # a subcommand: the command's name


def fail(prog: str, message: str) -> NoReturn:
    """Bad input: `PROG: error: MESSAGE` on stderr, exit code 2."""
    print(f"{prog}: error: {message}", file=sys.stderr)
    sys.exit(2)


def setup_logging(prog: str) -> None:
    """The `hipi_jax` logger's messages on stdout, prefixed with the command's name."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter(f"{prog}: %(message)s"))
    logger = logging.getLogger("hipi_jax")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    # A compilation-cache entry that cannot be written (a full disk) costs only the next run's compile; the
    # run's own writes report the disk in one line, so JAX's warning would only be a second, misleading one.
    warnings.filterwarnings("ignore", message="Error writing persistent compilation cache entry", category=UserWarning)
    # A save that fails mid-write (EFBIG, ENOSPC) leaves Orbax's pending fragment writes unawaited; Python
    # warns about them at exit, after the one-line error that already says the checkpoint was not written.
    warnings.filterwarnings("ignore", message=r"coroutine .* was never awaited", category=RuntimeWarning)
