"""The functional env interface (docs/architecture.md `envs/`): pure `reset(key, task)` / `step(state, action)`.

An env implements only its simulator: `init_sim(key) -> (sim, obs, features)` and
`sim_step(sim, action, key) -> (sim, obs, features)`. Reward, termination and truncation are derived
here from the env's task family and the features, never from a simulator's own reward.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from hipi_jax.tasks import Discrete, GoalMargin, GoalReach, TaskFamily

Array = jax.Array


@struct.dataclass
class EnvState:
    """One env's state; vmapped envs carry a leading [num_envs] axis on every field."""

    sim: Any  # simulator state (env-specific pytree)
    obs: Array  # [obs_dim] observation of the current state (without the task)
    features: Array  # [feature_dim] φ of the current state, what task rewards are computed from
    task: Array  # [task_dim] the commanded task ψ
    reward: Array  # [] r_ψ of the transition that led here
    done: Array  # [] bool, terminal under ψ (e.g. goal reached)
    truncated: Array  # [] bool, time limit reached without a terminal
    t: Array  # [] int32, steps taken in this episode
    key: Array  # PRNG key for stochastic dynamics
    initial: Any = None  # (sim, obs, features) this episode started from, kept by `reuse_initial_state` envs


@dataclasses.dataclass(frozen=True, eq=False)
class Env:
    """Base class: subclasses define the simulator, the task family and the sizes."""

    task_family: TaskFamily
    max_steps: int  # episode length cap (truncation, not termination)

    obs_dim: ClassVar[int]  # a class constant, or a property where it depends on the instance
    action_dim: ClassVar[int]

    discrete_actions: bool = dataclasses.field(default=False, init=False)
    # Where `init_sim` is expensive (e.g. a physics settle), `auto_reset` restarts an env slot from the
    # initial state it was first reset to, with a fresh task, instead of computing a new one on every
    # step (under vmap a conditional reset computes both branches). Brax's AutoResetWrapper does the same.
    reuse_initial_state: bool = False

    def compiler_options(self) -> dict[str, Any] | None:
        """XLA options for programs that step this env (`jax.jit(..., compiler_options=...)`); None = defaults."""
        return None

    # ---- rendering hooks (hipi_jax.render; host-side, never traced except `render_record`) ----
    # "mujoco": 3-D scenes drawn from `render_model`; "plane": 2-D trajectory plots (`plane_xy`, `plane_map`);
    # None: not renderable.
    render_kind: ClassVar[str | None] = None

    def render_model(self) -> Any:
        """The `mujoco.MjModel` to draw this env with, or None."""
        return None

    def render_record(self, state: EnvState) -> Any:
        """What `rollout(record=...)` keeps of each state to redraw it (field access only, so it also works on
        a batched state): for the MuJoCo envs a dict of `mjData` field names -> values; None = nothing."""
        return None

    def goal_position(self, task: np.ndarray) -> np.ndarray | None:
        """World-frame xyz where the goal of `task` ([task_dim]) is drawn; None where a task is not a location."""
        return None

    def render_camera(self) -> Any:
        """The camera to draw with: a camera name of `render_model`, or a dict of `mujoco.MjvCamera` fields
        (a free camera: lookat, distance, azimuth, elevation); None = the model's first camera, else a free
        camera that frames the model."""
        return None

    def control_timestep(self) -> float | None:
        """Seconds of simulated time per env step, if the env has a physical clock."""
        return None

    scripted_noise: ClassVar[float | None] = None  # the default action noise of `scripted_action`; None: none

    def scripted_action(self, key: Array, obs: Array, task: Array, noise: float) -> Array:
        """A scripted demonstrator (`hipi-bc collect --scripted`): the action for `task` ([task_dim]) from `obs`
        ([obs_dim]), with Gaussian action noise of std `noise`. Only envs that set `scripted_noise` have one."""
        raise ValueError(f"{type(self).__name__} has no scripted demonstrator")

    def init_sim(self, key: Array) -> tuple[Any, Array, Array]:
        """Initial simulator state, observation and features."""
        raise NotImplementedError

    def sim_step(self, sim: Any, action: Array, key: Array) -> tuple[Any, Array, Array]:
        """One simulator step; `action` in [−1, 1]^action_dim (or an int for discrete envs)."""
        raise NotImplementedError

    def reset(self, key: Array, task: Array) -> EnvState:
        """Start an episode for `task` ([task_dim])."""
        k_sim, k_next = jax.random.split(key)
        start = self.init_sim(k_sim)
        return self.begin(start, task, k_next, initial=start if self.reuse_initial_state else None)

    def begin(self, start: tuple[Any, Array, Array], task: Array, key: Array, initial: Any = None) -> EnvState:
        """The first state of an episode from `start` = (sim, obs, features)."""
        sim, obs, features = start
        return EnvState(
            sim=sim,
            obs=obs,
            features=features,
            task=task,
            reward=jnp.zeros((), jnp.float32),
            done=jnp.zeros((), bool),
            truncated=jnp.zeros((), bool),
            t=jnp.zeros((), jnp.int32),
            key=key,
            initial=initial,
        )

    def step(self, state: EnvState, action: Array) -> EnvState:
        """Advance one step; reward and done come from the task family on φ(s')."""
        k_step, k_next = jax.random.split(state.key)
        sim, obs, features = self.sim_step(state.sim, action, k_step)
        family = self.task_family
        action_vec = action if not self.discrete_actions else jnp.zeros((1,), jnp.float32)
        done = family.terminal(features, state.task)
        t = state.t + 1
        return state.replace(
            sim=sim,
            obs=obs,
            features=features,
            reward=family.reward(features, action_vec, state.task),
            done=done,
            truncated=jnp.logical_and(t >= self.max_steps, jnp.logical_not(done)),
            t=t,
            key=k_next,
        )


def goal_of(family: TaskFamily, task: np.ndarray) -> tuple[np.ndarray, float] | None:
    """(goal in feature space, success radius) of `task` for the goal families; None for the others."""
    task = np.asarray(task, np.float32)
    if isinstance(family, GoalReach):
        return task, float(family.margin)
    if isinstance(family, GoalMargin):
        return task[:-1], float(task[-1])
    if isinstance(family, Discrete):
        return family.targets[int(np.argmax(task))], float(family.margin)
    return None


def reset_with_prior(env: Env, key: Array) -> EnvState:
    """Reset one env with a task drawn from the prior p(ψ)."""
    k_task, k_reset = jax.random.split(key)
    return env.reset(k_reset, env.task_family.sample(k_task, 1)[0])


def auto_reset(env: Env, state: EnvState, key: Array) -> EnvState:
    """Where the episode ended (done or truncated), start a new one with a fresh task from the prior."""
    if env.reuse_initial_state:
        fresh = env.begin(state.initial, env.task_family.sample(key, 1)[0], state.key, initial=state.initial)
    else:
        fresh = reset_with_prior(env, key)
    ended = jnp.logical_or(state.done, state.truncated)
    return jax.tree.map(lambda new, old: jnp.where(ended, new, old), fresh, state)
