"""HIPI-BC's demonstration datasets (Alg. 3): the schema, saving, and loading with clear errors.

A dataset is one `.npz` file (numpy's zip of arrays) holding N trajectories padded to T steps:

| key | dtype | shape | meaning |
|---|---|---|---|
| `env` | str | [] | registry name of the env the trajectories come from |
| `obs` | float | [N, T, obs_dim] | observation s_t |
| `actions` | float | [N, T, action_dim] | action a_t, in [−1, 1] |
| `features` | float | [N, T, feature_dim] | φ(s_{t+1}), what task rewards are computed from |
| `mask` | bool or 0/1 | [N, T] | step t belongs to trajectory i (a prefix of each row) |
| `tasks` | float | [N, task_dim] | optional: the commanded tasks, for the oracle baseline only |

Learning never reads `tasks` except in the `true_task` baseline; HIPI-BC relabels from the rest.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import jax
import numpy as np
from flax import struct

from hipi_jax import envs, rundir

Array = jax.Array

REQUIRED = ("env", "obs", "actions", "features", "mask")


class DatasetError(ValueError):
    """A dataset file that cannot be used; the message names the file and what is wrong."""


@struct.dataclass
class Dataset:
    obs: Array
    actions: Array
    features: Array
    mask: Array
    tasks: Array | None
    env: str = struct.field(pytree_node=False)

    @property
    def num_trajectories(self) -> int:
        return self.obs.shape[0]


def save(path: Path, data: Dataset) -> None:
    arrays = {k: np.asarray(getattr(data, k)) for k in ("obs", "actions", "features", "mask")}
    if data.tasks is not None:
        arrays["tasks"] = np.asarray(data.tasks)
    with rundir.atomic_open(path, "wb") as f:  # a full disk never leaves a partial dataset behind
        np.savez_compressed(f, env=np.asarray(data.env), **arrays)


def load(path: Path) -> Dataset:
    """Read and validate a dataset file; any problem raises DatasetError with a one-line reason."""
    path = Path(path)
    if path.is_dir():
        raise DatasetError(f"dataset {path}: a directory, not a dataset file (hipi-bc collect writes an .npz file)")
    if not path.is_file():
        raise DatasetError(f"dataset {path}: no such file")
    try:
        z = np.load(path, allow_pickle=False)
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as e:
        raise DatasetError(f"dataset {path}: not a readable .npz file ({e})") from None
    if not isinstance(z, np.lib.npyio.NpzFile):
        raise DatasetError(f"dataset {path}: a single array (.npy), not an .npz archive of named arrays")
    try:
        with z:
            arrays = {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as e:  # object members need pickle: refused
        raise DatasetError(f"dataset {path}: not a readable .npz file of numeric arrays ({e})") from None
    missing = [k for k in REQUIRED if k not in arrays]
    if missing:
        raise DatasetError(f"dataset {path}: missing {', '.join(missing)}; required keys: {', '.join(REQUIRED)}")
    env_name = str(arrays["env"])
    if env_name not in envs.names():
        raise DatasetError(f"dataset {path}: unknown env {env_name!r}; valid envs: {', '.join(envs.names())}")
    env = envs.make(env_name)
    if env.discrete_actions:
        raise DatasetError(f"dataset {path}: {env_name} has discrete actions; HIPI-BC needs a continuous-action env")
    family = env.task_family
    obs, actions, features, mask = (arrays[k] for k in ("obs", "actions", "features", "mask"))
    if obs.ndim != 3 or obs.shape[0] < 2 or obs.shape[1] < 1:
        raise DatasetError(f"dataset {path}: obs must be [N >= 2, T >= 1, obs_dim], got shape {obs.shape}")
    n, t = obs.shape[:2]
    expected = {
        "obs": (n, t, env.obs_dim),
        "actions": (n, t, env.action_dim),
        "features": (n, t, family.feature_dim),
        "mask": (n, t),
    }
    if "tasks" in arrays:
        expected["tasks"] = (n, family.task_dim)
    for key, shape in expected.items():
        x = arrays[key]
        if x.shape != shape:
            raise DatasetError(f"dataset {path}: {key} has shape {x.shape}, {env_name} needs {shape}")
        if key == "mask":
            continue
        if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
            raise DatasetError(f"dataset {path}: {key} has dtype {x.dtype}; it must hold real numbers")
        with np.errstate(over="ignore"):
            if not np.all(np.isfinite(x.astype(np.float32))):  # what training sees
                raise DatasetError(f"dataset {path}: {key} must hold numbers finite in float32")
    real = np.issubdtype(mask.dtype, np.integer) or np.issubdtype(mask.dtype, np.floating)
    if not (mask.dtype == bool or real and np.all((mask == 0) | (mask == 1))):
        raise DatasetError(f"dataset {path}: mask must be boolean or 0/1")
    mask = mask.astype(bool)
    if not np.all(mask[:, 0]) or np.any(mask[:, 1:] & ~mask[:, :-1]):
        raise DatasetError(f"dataset {path}: each mask row must be a non-empty prefix (ones, then zeros)")
    return Dataset(
        obs=obs.astype(np.float32),
        actions=actions.astype(np.float32),
        features=features.astype(np.float32),
        mask=mask,
        tasks=arrays["tasks"].astype(np.float32) if "tasks" in arrays else None,
        env=env_name,
    )
