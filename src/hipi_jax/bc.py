"""HIPI-BC (Alg. 3, Sec. 5.2, App. C.2): relabel unlabeled trajectories with inverse RL, then
task-conditioned behaviour cloning.

1. R_ψj(τ_i) = Σ_t r_ψj(s_t, a_t) for every trajectory and candidate task, in one vectorised call.
2. ψ̃_i ~ q(ψ | τ_i) ∝ exp(R_ψ(τ_i) − log Z(ψ)) (Eq. 7) via `inverse_rl_log_probs`; or, beside it,
   Generalized Hindsight's relabelers on the same returns matrix (`advantage`, `air`: one of each
   trajectory's `top_k` best tasks by the advantage R − V̂ or by AIR's percentile rank).
3. Behaviour cloning of a on (s, ψ̃): MLP 2×256, MSE, Adam 3e-4, states and actions normalised, the
   task concatenated to the state, early stopping when the validation loss rises 3 epochs in a row.

A whole run of one method for one seed (relabel, train, evaluate) is a pure function of a key, so
seeds are a `jax.vmap` axis and each method is one compiled program.
"""

from __future__ import annotations

import dataclasses
import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from hipi_jax import envs
from hipi_jax.agents.bc import BC, check_settings
from hipi_jax.dataset import Dataset
from hipi_jax.episodes import chunked_rollout, rollout
from hipi_jax.relabel import RULES, RelabelSpec, episode_returns, relabel_trajectories
from hipi_jax.tasks import TaskFamily
from hipi_jax.types import Episode

Array = jax.Array

# method -> its relabel strategy (relabel.py's vocabulary), or None for a dataset choice (no relabeling)
METHODS = {
    "hipi": "inverse_rl",
    "hipi_no_partition": "inverse_rl_no_partition",
    "advantage": "advantage",
    "air": "air",
    "agnostic": None,
    "true_task": None,
}
METHOD_HELP = {
    "hipi": "tasks sampled from the inverse-RL posterior with log Z (Eq. 7)",
    "hipi_no_partition": "the same without log Z (the Fig. 8 ablation)",
    "advantage": "Generalized Hindsight's advantage relabeling (Li et al. 2020): one of the top-k tasks by "
    "R_psi(tau) - V(psi), V the dataset's mean return under psi (BC has no critic)",
    "air": "Generalized Hindsight's approximate IRL (AIR): one of the top-k tasks by the trajectory's "
    "percentile rank among the dataset's returns under each task",
    "agnostic": "no task input: the paper's task-agnostic BC baseline",
    "true_task": "the commanded tasks the data was collected for (an oracle reference; needs `tasks`)",
}


@dataclasses.dataclass(frozen=True)
class BCConfig:
    """One HIPI-BC method (Alg. 3): how trajectories are relabeled and evaluated, and the `learner` (the
    cloner, agents/bc.py's `BC`, checked there). `of`/`replace` take the learner's settings by name too."""

    method: str = "hipi"
    candidates: int = 1000  # prior samples as candidate tasks of a continuous family (App. C.2)
    reward_bias: float = 0.0  # added to the per-step reward of the first candidate task (Fig. 8)
    top_k: int = 1  # advantage / air: each trajectory takes one of its top_k tasks, uniformly
    eval_episodes: int = 200
    learner: BC = BC()

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"BC method {self.method!r} is not one of {', '.join(METHODS)}")
        check_settings(self, {
            "candidates": self.candidates >= 1,
            "top_k": self.top_k >= 1,
            "eval_episodes": self.eval_episodes >= 1,
            "reward_bias": math.isfinite(self.reward_bias),
        })  # fmt: skip

    @classmethod
    def of(cls, **settings) -> BCConfig:
        """A config from flat settings: this class's fields and the learner's (`hidden`, `batch_size`, ...)."""
        return cls().replace(**settings)

    def replace(self, **settings) -> BCConfig:
        """This config with some settings changed, the learner's included."""
        learner_fields = {f.name for f in dataclasses.fields(BC)}
        learner = {k: settings.pop(k) for k in list(settings) if k in learner_fields}
        return dataclasses.replace(self, **settings, learner=dataclasses.replace(self.learner, **learner))

    @property
    def relabel_spec(self) -> RelabelSpec | None:
        """The method's relabeling as relabel.py's spec (`top_k` where the strategy keeps several), or None."""
        strategy = METHODS[self.method]
        if strategy is None:
            return None
        return RelabelSpec(strategy, top_k=self.top_k if RULES[strategy].trajectory_level else 1)

    def task_input(self, tasks: Array) -> Array:
        """What the network sees of the task: nothing (zeros) for task-agnostic BC."""
        return jnp.zeros_like(tasks) if self.method == "agnostic" else tasks


def trajectory_returns(family: TaskFamily, data: Dataset, tasks: Array, task_batch: int = 64) -> Array:
    """R[i, j] = Σ_t mask[i, t] · r_ψj(φ_{i,t}, a_{i,t}): [N, M], `relabel.episode_returns` (undiscounted,
    every stored step) in task batches of `task_batch`."""
    episode = Episode(first_obs=data.obs[:, 0], features=data.features, action=data.actions, mask=data.mask)

    def some_tasks(tasks):  # [task_batch, d] -> [task_batch, N]
        return episode_returns(family, episode, tasks, until_terminal=False).T

    m = tasks.shape[0]
    padded = jnp.concatenate([tasks, jnp.repeat(tasks[-1:], -m % task_batch, axis=0)])
    chunks = padded.reshape(-1, task_batch, tasks.shape[-1])
    return jax.lax.map(some_tasks, chunks).reshape(-1, data.num_trajectories)[:m].T


def candidate_tasks(family: TaskFamily, key: Array, num: int) -> Array:
    """The whole task set of a finite family, else `num` draws from the prior."""
    tasks = family.candidate_tasks()
    return jnp.asarray(tasks) if tasks is not None else family.sample(key, num)


def num_candidates(config: BCConfig, family: TaskFamily) -> int:
    """How many candidate tasks `candidate_tasks` gives: the finite family's size, else `config.candidates`."""
    tasks = family.candidate_tasks()
    return config.candidates if tasks is None else len(tasks)


def check_top_k(config: BCConfig, family: TaskFamily) -> None:
    """A one-line ValueError when advantage / air would keep more tasks than there are candidates."""
    m = num_candidates(config, family)
    if (spec := config.relabel_spec) is not None and spec.top_k > m:
        raise ValueError(f"top_k={config.top_k} exceeds the {m} candidate tasks; use 1 <= top_k <= {m}")


def relabel(key: Array, returns: Array, candidates: Array, spec: RelabelSpec) -> Array:
    """One task per trajectory from the returns matrix [N, M] (trajectories × candidates): [N, task_dim],
    by `relabel.relabel_trajectories`. The advantage's baseline V̂(ψ) is the mean return under ψ over the
    dataset (the Monte Carlo value of the data's behaviour; Generalized Hindsight uses SAC's critic,
    which BC lacks)."""
    return candidates[relabel_trajectories(key, spec, returns, returns.mean(axis=0))]


@struct.dataclass
class Steps:
    """The dataset's valid steps as rows (padding dropped on the host, so BC never computes on it)."""

    obs: Array  # [R, obs_dim]
    actions: Array  # [R, action_dim]
    traj: Array  # [R] int32, trajectory index

    @classmethod
    def of(cls, data: Dataset) -> Steps:
        mask = np.asarray(data.mask)
        rows = np.flatnonzero(mask.reshape(-1))
        flat = lambda x: np.asarray(x).reshape(mask.size, -1)[rows]  # noqa: E731
        return cls(flat(data.obs), flat(data.actions), (rows // mask.shape[1]).astype(np.int32))


EVAL_CHUNK = 20  # episodes per seed rolled out at once in the evaluation (episodes.chunked_rollout)


def run_seed(config: BCConfig, data: Dataset, steps: Steps, key: Array) -> dict[str, Array]:
    """Relabel (by the method), clone, evaluate on `eval_episodes` prior tasks: one seed of Alg. 3."""
    env = envs.make(data.env)
    family = env.task_family
    k_cand, k_relabel, k_train, k_eval = jax.random.split(key, 4)
    if (spec := config.relabel_spec) is not None:
        candidates = candidate_tasks(family, k_cand, config.candidates)
        returns = trajectory_returns(family, data, candidates)
        lengths = data.mask.sum(axis=1).astype(jnp.float32)
        returns = returns.at[:, 0].add(config.reward_bias * lengths)  # Fig. 8: r_ψ1 + bias on every step
        tasks = relabel(k_relabel, returns, candidates, spec)
        biased_share = jnp.mean(jnp.all(tasks == candidates[0], axis=-1))
    elif config.method == "true_task":
        tasks, biased_share = data.tasks, jnp.nan
    else:
        tasks, biased_share = jnp.zeros((data.num_trajectories, family.task_dim)), jnp.nan
    learner = config.learner
    policy, fit = learner.train(steps.obs, steps.actions, steps.traj, config.task_input(tasks), k_train)

    def act(key, obs, task):
        return learner.act(policy, obs, config.task_input(task))

    episodes = chunked_rollout(env, act, k_eval, config.eval_episodes, EVAL_CHUNK)
    return {
        "eval_return": episodes.returns.mean(),
        "eval_success": episodes.success.astype(jnp.float32).mean(),
        "epochs": fit.epoch,
        "best_val_loss": fit.best_val,
        "val_curve": fit.val_curve,
        "share_relabeled_to_first_candidate": biased_share,
    }


def run(config: BCConfig, data: Dataset, seed: int, seeds: int) -> dict[str, Array]:
    """`seeds` seeds of one method as one vmapped, jitted program; seed i uses fold_in(seed, i)."""
    if config.method == "true_task" and data.tasks is None:
        raise ValueError("method true_task needs the dataset's `tasks` array, which this dataset lacks")
    check_top_k(config, envs.make(data.env).task_family)
    keys = jax.vmap(partial(jax.random.fold_in, jax.random.key(seed)))(jnp.arange(seeds))
    env = envs.make(data.env)
    program = jax.jit(
        jax.vmap(partial(run_seed, config), in_axes=(None, None, 0)), compiler_options=env.compiler_options()
    )
    return jax.device_get(program(data, Steps.of(data), keys))


def demonstrations(train_config, episodes: int, key: Array, log=lambda record: None, progress: bool = True):
    """Alg. 3's data: train multi-task SAC with `train_config`, then roll its stochastic policy (seed 0)
    out for `episodes` episodes on prior tasks. Returns (Dataset, the expert's training summary)."""
    from hipi_jax import programs, runner

    built = programs.build(train_config)
    summary, state = runner.loop(built, log, progress=progress)
    tr = built.trainer
    actor = jax.tree.map(lambda x: x[0], state.agent.actor_params)

    def collect(params, key):
        return rollout(tr.env, lambda k, obs, task: tr.agent.act(params, k, obs, task), key, episodes)

    ep = jax.device_get(jax.jit(collect, compiler_options=tr.env.compiler_options())(actor, key))
    data = Dataset(
        obs=ep.obs, actions=ep.actions, features=ep.features, mask=ep.mask, tasks=ep.tasks, env=train_config.run.env
    )
    return data, summary


def scripted_demonstrations(
    env_name: str, episodes: int, key: Array, noise: float | None = None, chunk: int = 128, progress: bool = False
) -> Dataset:
    """Alg. 3's data from an env's scripted demonstrator (`Env.scripted_action`): episode i commands the
    finite family's task i mod K (equal shares per task, as the desk's 100 demonstrations per task), with
    action noise `noise` (default: the env's `scripted_noise`). Rolled out `chunk` episodes at a time by one
    compiled program (chunk c from fold_in(key, c)); a 900-wide batch stalled XLA's CPU runtime here
    (docs/reliability.md, "XLA's CPU runtime waiting forever")."""
    env = envs.make(env_name)
    noise = env.scripted_noise if noise is None else noise
    candidates = env.task_family.candidate_tasks()
    if env.scripted_noise is None or candidates is None:
        raise ValueError(f"env {env_name!r} has no scripted demonstrator; envs with one: {envs.scripted_names()}")
    chunk = min(chunk, episodes)
    chunks = -(-episodes // chunk)
    tasks = jnp.asarray(candidates)[jnp.arange(chunks * chunk) % candidates.shape[0]].reshape(chunks, chunk, -1)

    def act(key, obs, task):
        return jax.vmap(partial(env.scripted_action, noise=noise))(jax.random.split(key, obs.shape[0]), obs, task)

    run = jax.jit(lambda k, t: rollout(env, act, k, chunk, t), compiler_options=env.compiler_options())
    from tqdm.auto import tqdm

    bar = tqdm(range(chunks), desc="demonstrations", unit="chunk", disable=not progress)
    parts = [jax.device_get(run(jax.random.fold_in(key, c), tasks[c])) for c in bar]
    ep = jax.tree.map(lambda *x: np.concatenate(x)[:episodes], *parts)
    return Dataset(obs=ep.obs, actions=ep.actions, features=ep.features, mask=ep.mask, tasks=ep.tasks, env=env_name)


def check_finite(out: dict, method: str) -> None:
    """Raise errors.NonFiniteError naming the first of the validation loss and the evaluation return that is
    NaN or inf (the clone diverged)."""
    from hipi_jax.errors import NonFiniteError

    for name in ("best_val_loss", "eval_return"):
        bad = ~np.isfinite(np.asarray(out[name], np.float64))
        if bad.any():
            raise NonFiniteError(
                f"non-finite {name} for method {method} (seed index {int(np.argmax(bad))}); lower --learning-rate"
            )


def summarize(out: dict) -> dict:
    """Per-seed figures of `run` and their mean ± std over seeds (JSON-ready)."""
    summary = {k: np.asarray(out[k]).tolist() for k in ("eval_return", "eval_success", "epochs", "best_val_loss")}
    for k in ("eval_return", "eval_success"):
        summary[f"{k}_mean"] = float(np.mean(out[k]))
        summary[f"{k}_std"] = float(np.std(out[k]))
    share = np.asarray(out["share_relabeled_to_first_candidate"])
    if np.all(np.isfinite(share)):
        summary["share_relabeled_to_first_candidate"] = share.tolist()
    return summary
