"""A trained policy as a small file of its own, loaded without building any training program.

Every checkpoint of a run (and the end of training) writes `RUN_DIR/policies/step_<env steps>/`:
`policy.json` (env, sizes, the step, one entry per run with its seed index and swept value, and the
run's config) and `actor.npz` (the actor's parameters of every run, named by their module path,
e.g. `mlp/in_0/kernel`, each with a leading run axis). `load_policy` reads one run's actor back.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from flax.traverse_util import flatten_dict, unflatten_dict

from hipi_jax.networks import Actor, tanh_gaussian_sample

Array = jax.Array
FORMAT = 1  # version of the files' layout


@struct.dataclass
class Policy:
    """π(a|s, ψ) of one run: the tanh-Gaussian actor of App. C.1 with its parameters.

    A pytree (the parameters are its leaves), so `act` can be jitted and vmapped, and a policy can be
    passed into a jitted function as an argument."""

    params: dict
    env: str = struct.field(pytree_node=False)
    obs_dim: int = struct.field(pytree_node=False)
    task_dim: int = struct.field(pytree_node=False)
    action_dim: int = struct.field(pytree_node=False)
    hidden: tuple[int, ...] = struct.field(pytree_node=False)
    env_steps: int = struct.field(pytree_node=False, default=0)  # env steps of training behind it
    run_index: int = struct.field(pytree_node=False, default=0)
    run: dict | None = struct.field(pytree_node=False, default=None)  # its index, seed index and swept value
    config: dict | None = struct.field(pytree_node=False, default=None)  # the run's TrainConfig, as a dict

    @property
    def actor(self) -> Actor:
        return Actor(tuple(self.hidden), self.action_dim)

    def __repr__(self) -> str:  # the sizes, not every parameter array
        count = sum(int(np.prod(np.shape(x))) for x in jax.tree.leaves(self.params))
        return (
            f"Policy(env={self.env!r}, env_steps={self.env_steps}, run_index={self.run_index}, "
            f"obs_dim={self.obs_dim}, task_dim={self.task_dim}, action_dim={self.action_dim}, "
            f"hidden={tuple(self.hidden)}, parameters={count:,})"
        )

    def act(self, obs: Array, task: Array, key: Array | None = None) -> Array:
        """Action in [−1, 1]^action_dim for `obs` [..., obs_dim] and `task` [..., task_dim] (leading axes
        broadcast): tanh of the mean without a key, as the training program evaluates; a sample with one."""
        mean, log_std = self.actor.apply(self.params, obs, task)
        if key is None:
            return jnp.tanh(mean)
        return tanh_gaussian_sample(key, mean, log_std)[0]

    def act_fn(self, deterministic: bool = True) -> Callable[[Array, Array, Array], Array]:
        """`act(key, obs, task)` in the form `rollout` takes."""
        return lambda key, obs, task: self.act(obs, task, None if deterministic else key)


def step_dir(run_dir: Path, env_steps: int) -> Path:
    return Path(run_dir) / "policies" / f"step_{env_steps:09d}"


def save(
    run_dir: Path,
    actor_params: dict,
    env_steps: int,
    meta: dict,
) -> Path:
    """Write the actors of all runs (`actor_params` leaves [runs, ...], host arrays) at `env_steps`.
    `meta`: env, obs_dim, task_dim, action_dim, hidden, runs (a list of dicts), config. The directory
    appears whole or not at all (written aside, then renamed)."""
    target = step_dir(run_dir, env_steps)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        flat = {"/".join(k): np.asarray(v) for k, v in flatten_dict(actor_params).items()}
        with open(tmp / "actor.npz", "wb") as f:
            np.savez(f, **flat)
            f.flush()
            os.fsync(f.fileno())
        with open(tmp / "policy.json", "w") as f:
            f.write(json.dumps({"format": FORMAT, "env_steps": env_steps, **meta}, indent=1))
            f.flush()
            os.fsync(f.fileno())
        if target.exists():  # the same step written again (a resumed run): replace it
            old = target.with_name(target.name + ".old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old)
        else:
            os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def steps(run_dir: Path) -> list[int]:
    """Env steps at which `run_dir` holds a saved policy, ascending."""
    root = Path(run_dir) / "policies"
    found = [p for p in root.glob("step_*") if (p / "policy.json").is_file() and p.name[5:].isdigit()]
    return sorted(int(p.name[5:]) for p in found)


def load_policy(run_dir: str | Path, run_index: int = 0, step: int | None = None) -> Policy:
    """Run `run_index`'s policy from `run_dir` (a `hipi-train --out` directory) at `step` env steps
    (default: the newest saved). Raises FileNotFoundError or ValueError naming what is available."""
    run_dir = Path(run_dir)
    available = steps(run_dir)
    if not available:
        raise FileNotFoundError(f"{run_dir} holds no saved policy (no policies/step_*/policy.json)")
    if step is None:
        step = available[-1]
    elif step not in available:
        raise ValueError(f"step={step}: {run_dir} has policies at env steps {', '.join(map(str, available))}")
    where = step_dir(run_dir, step)
    try:
        meta = json.loads((where / "policy.json").read_text())
        if meta.get("format") != FORMAT:
            raise ValueError(f"format {meta.get('format')!r}, this version reads format {FORMAT}")
        runs = len(meta["runs"])
        if not 0 <= run_index < runs:
            raise IndexError
        with np.load(where / "actor.npz") as arrays:
            params = unflatten_dict({tuple(k.split("/")): jnp.asarray(arrays[k][run_index]) for k in arrays.files})
    except IndexError:
        raise ValueError(f"run_index={run_index} is outside [0, {runs}) for {run_dir}") from None
    except (OSError, KeyError, ValueError, TypeError, zipfile.BadZipFile) as e:
        raise ValueError(f"{where} is not a readable policy ({type(e).__name__}: {str(e)[:120]})") from None
    policy = Policy(
        params=params,
        env=meta["env"],
        obs_dim=meta["obs_dim"],
        task_dim=meta["task_dim"],
        action_dim=meta["action_dim"],
        hidden=tuple(meta["hidden"]),
        env_steps=meta["env_steps"],
        run_index=run_index,
        run=meta["runs"][run_index],
        config=meta.get("config"),
    )
    if problem := mismatch(policy):
        raise ValueError(f"{where / 'actor.npz'} does not match its policy.json ({problem})")
    return policy


def mismatch(policy: Policy) -> str | None:
    """What differs between `policy.params` and the parameters its sizes call for (names, shapes,
    dtypes), or None when they match."""
    obs, task = jnp.zeros((1, policy.obs_dim)), jnp.zeros((1, policy.task_dim))
    want = flatten_dict(jax.eval_shape(lambda: policy.actor.init(jax.random.key(0), obs, task)))
    have = flatten_dict(policy.params)
    if missing := sorted("/".join(k) for k in want.keys() - have.keys()):
        return f"missing {', '.join(missing)}"
    if extra := sorted("/".join(k) for k in have.keys() - want.keys()):
        return f"unexpected {', '.join(extra)}"
    for k, w in want.items():
        if have[k].shape != w.shape or have[k].dtype != w.dtype:
            return f"{'/'.join(k)} is {have[k].dtype}{list(have[k].shape)}, expected {w.dtype}{list(w.shape)}"
    return None
