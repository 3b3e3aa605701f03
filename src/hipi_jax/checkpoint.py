"""Orbax checkpoints of the whole training state (docs/architecture.md `checkpoint.py`), so a resumed run is exact.

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
    names each newer one that does not. None when there is no usable checkpoint. `like` is the
    state's abstract tree; where its leaves carry shardings, the state is restored onto them."""
    abstract = _items(jax.tree.map(ocp.utils.to_shape_dtype_struct, like))
    mgr.reload()  # see checkpoints written since the manager was made
    for step in sorted(mgr.all_steps(), reverse=True):
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
