"""Orbax checkpoints of the whole training state (docs/architecture.md `checkpoint.py`), so a resumed run is exact.

A checkpoint holds the `TrainState` pytree of every seed (parameters, target parameters, optimizer
states, α, RNG keys, env states, the replay buffer, counters) and a JSON item with the config, the
number of chunks done and a SHA-256 fingerprint of the state's bytes. Orbax writes each step to a
temporary directory and renames it when complete, so a process killed mid-save leaves no partial
checkpoint; a checkpoint whose files were damaged afterwards fails to restore or fails the
fingerprint, and the previous one is used. The unusable ones are then moved to `checkpoints-unusable/`
(`move_aside`), since Orbax never saves a step at or below the newest step directory it finds.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import math
import os
import re
import shutil
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from hipi_jax.errors import first_line

log = logging.getLogger("hipi_jax")


def _shards(leaf: Any) -> list[np.ndarray]:
    """The blocks of `leaf` this process holds (one copy of each), in index order."""
    if not isinstance(leaf, jax.Array):
        return [np.asarray(leaf)]
    shards = [s for s in leaf.addressable_shards if s.replica_id == 0]
    shards.sort(key=lambda s: tuple(i.start or 0 for i in s.index))
    return [np.asarray(s.data) for s in shards]


def fingerprint(state: Any) -> str:
    """SHA-256 over the shapes, dtypes and bytes of every leaf, read shard by shard where each shard
    lives (a multi-process state is hashed by every process and the digests combined), so nothing is
    gathered. It depends on the placement: compare fingerprints of runs laid out alike."""
    h = hashlib.sha256()
    for leaf in jax.tree.leaves(state):
        h.update(f"{leaf.dtype}{leaf.shape}".encode())
        for block in _shards(leaf):
            h.update(np.ascontiguousarray(block).tobytes())
    if jax.process_count() == 1:
        return h.hexdigest()
    from jax.experimental import multihost_utils

    digests = multihost_utils.process_allgather(np.frombuffer(h.digest(), np.uint8))  # [processes, 32]
    return hashlib.sha256(np.ascontiguousarray(digests).tobytes()).hexdigest()


def _items(state: Any) -> dict[str, Any]:
    """The state's non-empty leaves by position (Orbax refuses zero-size arrays, e.g. MJX's `act` of a
    model without activations)."""
    leaves = jax.tree.leaves(state)
    return {f"leaf{i:05d}": x for i, x in enumerate(leaves) if math.prod(x.shape) > 0}


def _from_items(items: dict[str, Any], like: Any) -> Any:
    leaves, treedef = jax.tree.flatten(like)
    full = [items.get(f"leaf{i:05d}", np.zeros(x.shape, x.dtype)) for i, x in enumerate(leaves)]
    return jax.tree.unflatten(treedef, full)


@contextlib.contextmanager
def _quiet_orbax(level: int = logging.ERROR):
    """Orbax's own messages below `level` hidden (ours are one line each)."""
    absl = logging.getLogger("absl")
    old = absl.level
    absl.setLevel(level)
    try:
        yield
    finally:
        absl.setLevel(old)


def manager(directory: Path, keep: int) -> ocp.CheckpointManager:
    """A synchronous manager keeping the newest `keep` checkpoints under `directory`."""
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True, enable_async_checkpointing=False)
    with _quiet_orbax():
        return ocp.CheckpointManager(Path(directory).absolute(), options=options, item_names=("state", "meta"))


class CheckpointError(OSError):
    """A checkpoint could not be written (the disk, or a step directory in the way); the message names it."""


def save(mgr: ocp.CheckpointManager, chunks_done: int, state: Any, config: dict) -> None:
    """Write checkpoint `chunks_done`. Raises CheckpointError when it is not written whole: Orbax reports a
    failed write as any exception, and skips a step at or below an existing one silently."""
    meta = {"chunks_done": chunks_done, "config": config, "fingerprint": fingerprint(state)}
    args = ocp.args.Composite(state=ocp.args.StandardSave(_items(state)), meta=ocp.args.JsonSave(meta))
    directory = Path(mgr.directory)
    # a failed write surfaces here as one exception; Orbax's writer threads would also print it (absl
    # logging, the thread's excepthook) and the cancelled writes' late callbacks their own tracebacks
    hooks = threading.excepthook, sys.unraisablehook
    threading.excepthook = sys.unraisablehook = lambda args: None
    failed = False
    try:
        with _quiet_orbax(logging.CRITICAL):
            saved = mgr.save(chunks_done, args=args)
            mgr.wait_until_finished()
    except Exception as e:  # noqa: BLE001 - tensorstore reports a full disk as ValueError
        failed = True  # late callbacks may still come: keep them muted, and asyncio's "Task exception was
        logging.getLogger("asyncio").setLevel(logging.CRITICAL)  # never retrieved" for the other failed writes
        for partial in directory.glob(f"{chunks_done}.orbax-checkpoint-tmp*"):  # the half-written step
            shutil.rmtree(partial, ignore_errors=True)
        raise CheckpointError(f"checkpoint {directory / str(chunks_done)} was not written ({_reason(e)})") from e
    finally:
        threading.excepthook = hooks[0]
        if not failed:
            sys.unraisablehook = hooks[1]
    if not saved:
        raise CheckpointError(
            f"checkpoint {directory / str(chunks_done)} was not written: {directory} holds step {mgr.latest_step()}"
        )


def _reason(e: Exception) -> str:
    """The errno behind a storage error (`ENOSPC: No space left on device`), else its first line."""
    if isinstance(e, OSError) and e.errno:
        return f"{errno.errorcode.get(e.errno, e.errno)}: {e.strerror}"
    if m := re.search(r"os_error_code='(\d+)'", str(e)):  # tensorstore's form
        code = int(m.group(1))
        return f"{errno.errorcode.get(code, code)}: {os.strerror(code)}"
    return first_line(e)


def restore_latest(
    mgr: ocp.CheckpointManager, like: Any, check: Callable[[dict], None] | None = None
) -> tuple[Any, dict, list[int]] | None:
    """(state, meta, unusable steps) of the newest checkpoint that restores and matches its fingerprint;
    the unusable steps are the newer ones, each named in one warning line. None when no checkpoint is
    usable. `check(config)` sees the config saved with the newest readable checkpoint before any state is
    read and may raise ValueError to refuse it (the options differ). `like` is the state's abstract tree;
    where its leaves carry shardings, the state is restored onto them."""
    _drop_abandoned_read_errors()
    with _quiet_orbax():
        return _restore_latest(mgr, like, check)


def _restore_latest(mgr, like, check):
    abstract = _items(jax.tree.map(ocp.utils.to_shape_dtype_struct, like))
    mgr.reload()  # see checkpoints written since the manager was made
    unusable, checked = [], check is None

    def fall_back(step: int, e: Exception) -> None:
        unusable.append(step)
        where = Path(mgr.directory) / str(step)
        log.warning("checkpoint %s is unusable (%s); trying the previous one", where, first_line(e))

    for step in sorted(mgr.all_steps(), reverse=True):
        try:  # any failure to read means: fall back to an older checkpoint
            meta = mgr.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore())).meta
            config, digest = meta["config"], meta["fingerprint"]
        except Exception as e:  # noqa: BLE001
            fall_back(step, e)
            continue
        if not checked:  # a refusal propagates: nothing is moved
            check(config)
            checked = True
        try:
            restored = mgr.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract)))
            state = _from_items(restored.state, like)
            if fingerprint(state) != digest:
                raise ValueError("its contents do not match the fingerprint saved with it")
            return state, meta, unusable
        except Exception as e:  # noqa: BLE001
            fall_back(step, e)
    return None


def _drop_abandoned_read_errors() -> None:
    """After a failed read, the reads Orbax abandoned still report, during the rest of the run: TensorStore's
    late callbacks reach the event loop Orbax has closed, and Python prints each one's `RuntimeError: Event
    loop is closed` through `sys.unraisablehook` (hundreds of lines); or asyncio logs each abandoned read
    (an Orbax task or a TensorStore future) as `... exception was never retrieved`. Drop exactly those: the
    fall-back's one warning line says what happened."""
    previous = sys.unraisablehook
    if getattr(previous, "drops_closed_loop_errors", False):
        return

    def hook(unraisable) -> None:
        if not (unraisable.exc_type is RuntimeError and str(unraisable.exc_value) == "Event loop is closed"):
            previous(unraisable)

    hook.drops_closed_loop_errors = True
    sys.unraisablehook = hook
    logging.getLogger("asyncio").addFilter(_keep_unless_abandoned_read)


def _keep_unless_abandoned_read(record: logging.LogRecord) -> bool:
    """False for asyncio's report of a TensorStore read nobody awaited (a Task or a bare Future)."""
    message = record.getMessage()
    unretrieved = message.startswith(("Task exception was never retrieved", "Future exception was never retrieved"))
    return not (unretrieved and "tensorstore_spec" in message)


def move_aside(mgr: ocp.CheckpointManager, steps: list[int]) -> Path | None:
    """Move the step directories `steps` (unusable, or newer than the restored one) out of the manager's
    directory into `<directory>-unusable/`, so that every later save happens (Orbax never saves a step at
    or below its newest). Returns where they went."""
    if not steps:
        return None
    directory = Path(mgr.directory)
    aside = directory.with_name(directory.name + "-unusable")
    aside.mkdir(exist_ok=True)
    for step in steps:
        target = aside / str(step)
        n = 1
        while target.exists():
            target, n = aside / f"{step}.{n}", n + 1
        os.replace(directory / str(step), target)
    mgr.reload()
    return aside
