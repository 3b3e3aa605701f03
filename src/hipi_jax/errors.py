"""One-line messages for the faults a run meets (docs/reliability.md): every CLI error is one line."""

from __future__ import annotations

import errno


class NonFiniteError(RuntimeError):
    """Training produced a NaN or inf; the message names the quantity, run and env step (or method)."""


def first_line(e: BaseException, limit: int = 200) -> str:
    """`Type: first line of the message`, cut at a word boundary to about `limit` characters."""
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    if len(text) > limit:
        text = text[:limit].rsplit(" ", 1)[0] + " ..."
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def os_error(e: OSError) -> str:
    """One line for an OSError: the path, the errno's name and its text (ENOSPC: No space left on device)."""
    name = errno.errorcode.get(e.errno or 0)
    if e.filename is None or name is None:  # e.g. checkpoint.CheckpointError, whose message names both
        return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return f"cannot write {e.filename} ({name}: {e.strerror})"


def out_of_range(args, counts: tuple[str, ...]) -> str | None:
    """The message for the first integer option of `args` (an argparse namespace) out of range, or None:
    `seed` must be in [0, 2**63) (what a PRNG key takes), each of `counts` below 2**31 (the loop's int32
    counters). TrainConfig and BCConfig check their own fields the same way."""
    if not 0 <= args.seed < 2**63:
        return f"--seed {args.seed} must be in [0, 2**63)"
    for name in counts:
        if (value := getattr(args, name)) is not None and not value < 2**31:
            return f"--{name.replace('_', '-')} {value} must be < 2**31"
    return None


def no_backend() -> str | None:
    """The one-line problem when JAX cannot start the platform it is asked for (JAX_PLATFORMS=cuda on a
    machine without a GPU, say), else None. Starts JAX's backend, so call it once the input is checked."""
    import os

    import jax

    try:
        jax.devices()
    except Exception as e:  # noqa: BLE001 - RuntimeError for an unknown platform, AssertionError for some
        asked = os.environ.get("JAX_PLATFORMS", "")
        why = first_line(e) if str(e).strip() else "no backend started"
        return (
            f"JAX_PLATFORMS={asked!r}: JAX found no such device here ({why}); unset JAX_PLATFORMS to use what "
            "this machine has, or install the accelerator's JAX (pip install 'hipi-jax[cuda]')"
        )
    return None
