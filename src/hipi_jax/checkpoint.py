"""Orbax checkpoints of the whole training state (DESIGN.md `checkpoint.py`), so a resumed run is exact.

A checkpoint holds the `TrainState` pytree of every seed (parameters, target parameters, optimizer
states, α, RNG keys, env states, the replay buffer, counters) and a JSON item with the config, the
number of chunks done and a SHA-256 fingerprint of the state's bytes. Orbax writes each step to a
temporary directory and renames it when complete, so a process killed mid-save leaves no partial
checkpoint; a checkpoint whose files were damaged afterwards fails to restore or fails the
fingerprint, and the previous one is used.
"""

from __future__ import annotations

import hashlib
import math
import warnings
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp


def fingerprint(state: Any) -> str:
    """SHA-256 over the bytes, shapes and dtypes of every leaf."""
    h = hashlib.sha256()
    for leaf in jax.tree.leaves(jax.device_get(state)):
        leaf = np.asarray(leaf)
        h.update(f"{leaf.dtype}{leaf.shape}".encode())
        h.update(np.ascontiguousarray(leaf).tobytes())
    return h.hexdigest()


def _items(state: Any) -> dict[str, Any]:
    """The state's non-empty leaves by position (Orbax refuses zero-size arrays, e.g. MJX's `act` of a
    model without activations)."""
    leaves = jax.tree.leaves(state)
    return {f"leaf{i:05d}": x for i, x in enumerate(leaves) if math.prod(x.shape) > 0}


def _from_items(items: dict[str, Any], like: Any) -> Any:
    leaves, treedef = jax.tree.flatten(like)
    full = [items.get(f"leaf{i:05d}", np.zeros(x.shape, x.dtype)) for i, x in enumerate(leaves)]
    return jax.tree.unflatten(treedef, full)


def manager(directory: Path, keep: int) -> ocp.CheckpointManager:
    """A synchronous manager keeping the newest `keep` checkpoints under `directory`."""
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True, enable_async_checkpointing=False)
    return ocp.CheckpointManager(Path(directory).absolute(), options=options, item_names=("state", "meta"))


def save(mgr: ocp.CheckpointManager, chunks_done: int, state: Any, config: dict) -> None:
    meta = {"chunks_done": chunks_done, "config": config, "fingerprint": fingerprint(state)}
    args = ocp.args.Composite(state=ocp.args.StandardSave(_items(state)), meta=ocp.args.JsonSave(meta))
    mgr.save(chunks_done, args=args)
    mgr.wait_until_finished()


def restore_latest(mgr: ocp.CheckpointManager, like: Any) -> tuple[Any, dict] | None:
    """(state, meta) of the newest checkpoint that restores and matches its fingerprint; a warning
    names each newer one that does not. None when there is no usable checkpoint."""
    abstract = _items(jax.tree.map(ocp.utils.to_shape_dtype_struct, like))
    for step in sorted(mgr.all_steps(read=True), reverse=True):
        try:
            restored = mgr.restore(
                step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore())
            )
            state = _from_items(restored.state, like)
            if fingerprint(state) != restored.meta["fingerprint"]:
                raise ValueError("its contents do not match the fingerprint saved with it")
            return state, restored.meta
        except Exception as e:  # noqa: BLE001 - any failure to read means: fall back to an older checkpoint
            reason = str(e).splitlines()[0][:160] if str(e) else ""
            warnings.warn(
                f"checkpoint {Path(mgr.directory) / str(step)} is unusable ({type(e).__name__}: {reason}); "
                "trying the previous one",
                stacklevel=2,
            )
    return None
