"""Task families: a prior p(ψ), a reward r_ψ and a success/terminal test (paper Sec. 4, App. C).

Rewards are computed from the *features* an environment exposes for the state reached by a
transition (`features` = φ(s')), never from a simulator's own scalar reward, so any task can be
evaluated on any stored transition. Every method broadcasts over leading axes, so
`reward(features[:, None], action[:, None], tasks[None])` gives the [samples, tasks] matrix that
HIPI-BC and the relabel strategies need.

Families are frozen dataclasses closed over by the jitted functions that use them (never passed
as traced arguments), so their array fields become compile-time constants.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array


def _as_array(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float32)


@dataclasses.dataclass(frozen=True, eq=False)
class TaskFamily:
    """Base class. Subclasses set `task_dim`, `feature_dim` and implement `sample` and `reward`."""

    @property
    def task_dim(self) -> int:
        raise NotImplementedError

    @property
    def feature_dim(self) -> int:
        raise NotImplementedError

    has_success: bool = dataclasses.field(default=False, init=False)
    """Whether `success` is meaningful (goal families); otherwise it is always False."""

    def sample(self, key: Array, n: int) -> Array:
        """n tasks from the prior p(ψ): [n, task_dim]."""
        raise NotImplementedError

    def reward(self, features: Array, action: Array, task: Array) -> Array:
        """r_ψ(s, a) from φ(s') and a; broadcasts over leading axes."""
        raise NotImplementedError

    def success(self, features: Array, task: Array) -> Array:
        """Whether φ(s') solves ψ; broadcasts over leading axes."""
        return jnp.zeros(jnp.broadcast_shapes(features.shape[:-1], task.shape[:-1]), bool)

    def terminal(self, features: Array, task: Array) -> Array:
        """Whether the episode ends in s' under ψ (goal families end on success)."""
        return self.success(features, task)

    def achieved_task(self, features: Array, task: Array) -> Array:
        """The task that φ(s') achieves (for `final`/`future` relabeling); goal families only."""
        raise ValueError(f"{type(self).__name__} has no achieved goal: use relabel 'inverse_rl' or 'random'")

    @property
    def supports_hindsight_goals(self) -> bool:
        """True where `achieved_task` is defined, i.e. `final` and `future` apply."""
        return False

    def candidate_tasks(self) -> Array | None:
        """The whole task set for finite families, else None (candidates come from the batch)."""
        return None


def _sparse_goal_reward(position: Array, goal: Array, margin: Array) -> tuple[Array, Array]:
    """Eq. 9-style sparse reward 1(‖x−g‖ ≤ m) − 1 and the success flag."""
    hit = jnp.linalg.norm(position - goal, axis=-1) <= margin
    return hit.astype(jnp.float32) - 1.0, hit


@dataclasses.dataclass(frozen=True, eq=False)
class GoalReach(TaskFamily):
    """ψ = goal position; r = 1(‖x−ψ‖ ≤ margin) − 1, terminal on success (App. C.3–C.8).

    The prior is uniform on the box [low, high]; or uniform over the rows of `support` when given
    (e.g. the free cells of a maze that are far enough from the start); or, with `radius` = (r0, r1)
    for 2-D goals, at angle ~ U(0, 2π) and distance ~ U(r0, r1) from the origin (the DM Control
    reacher's target sampler; [low, high] must then contain that disc).
    """

    margin: float
    low: np.ndarray
    high: np.ndarray
    support: np.ndarray | None = None
    radius: tuple[float, float] | None = None
    has_success: bool = dataclasses.field(default=True, init=False)

    def __post_init__(self):
        object.__setattr__(self, "low", _as_array(self.low))
        object.__setattr__(self, "high", _as_array(self.high))
        if self.support is not None:
            object.__setattr__(self, "support", _as_array(self.support))
        if self.margin <= 0:
            raise ValueError(f"GoalReach margin must be > 0, got {self.margin}")
        if self.radius is not None:
            r0, r1 = self.radius
            if self.low.shape != (2,) or not 0 <= r0 <= r1 or np.any(-self.low < r1) or np.any(self.high < r1):
                raise ValueError(f"GoalReach radius={self.radius} needs 2-D goals, 0 <= r0 <= r1 inside [low, high]")

    @property
    def task_dim(self) -> int:
        return self.low.shape[0]

    @property
    def feature_dim(self) -> int:
        return self.low.shape[0]

    def sample(self, key: Array, n: int) -> Array:
        if self.support is not None:
            idx = jax.random.randint(key, (n,), 0, self.support.shape[0])
            return jnp.asarray(self.support)[idx]
        if self.radius is not None:
            k_angle, k_radius = jax.random.split(key)
            angle = jax.random.uniform(k_angle, (n,), maxval=2 * jnp.pi)
            dist = jax.random.uniform(k_radius, (n,), minval=self.radius[0], maxval=self.radius[1])
            return dist[:, None] * jnp.stack([jnp.sin(angle), jnp.cos(angle)], axis=-1)
        return jax.random.uniform(key, (n, self.task_dim), minval=self.low, maxval=self.high)

    def reward(self, features: Array, action: Array, task: Array) -> Array:
        return _sparse_goal_reward(features, task, self.margin)[0]

    def success(self, features: Array, task: Array) -> Array:
        return _sparse_goal_reward(features, task, self.margin)[1]

    def achieved_task(self, features: Array, task: Array) -> Array:
        return jnp.broadcast_to(features, jnp.broadcast_shapes(features.shape, task.shape))

    @property
    def supports_hindsight_goals(self) -> bool:
        return True


@dataclasses.dataclass(frozen=True, eq=False)
class GoalMargin(TaskFamily):
    """ψ = (goal, m): reach within m of the goal (Fig. 6 right, App. C.6); m ~ U[margin_low, margin_high]."""

    low: np.ndarray
    high: np.ndarray
    margin_low: float = 0.0
    margin_high: float = 0.1
    has_success: bool = dataclasses.field(default=True, init=False)

    def __post_init__(self):
        object.__setattr__(self, "low", _as_array(self.low))
        object.__setattr__(self, "high", _as_array(self.high))
        if not 0 <= self.margin_low <= self.margin_high:
            raise ValueError(
                f"GoalMargin needs 0 <= margin_low <= margin_high, got {self.margin_low}, {self.margin_high}"
            )

    @property
    def task_dim(self) -> int:
        return self.low.shape[0] + 1

    @property
    def feature_dim(self) -> int:
        return self.low.shape[0]

    def sample(self, key: Array, n: int) -> Array:
        kg, km = jax.random.split(key)
        goal = jax.random.uniform(kg, (n, self.feature_dim), minval=self.low, maxval=self.high)
        margin = jax.random.uniform(km, (n, 1), minval=self.margin_low, maxval=self.margin_high)
        return jnp.concatenate([goal, margin], axis=-1)

    def reward(self, features: Array, action: Array, task: Array) -> Array:
        return _sparse_goal_reward(features, task[..., :-1], task[..., -1])[0]

    def success(self, features: Array, task: Array) -> Array:
        return _sparse_goal_reward(features, task[..., :-1], task[..., -1])[1]


@dataclasses.dataclass(frozen=True, eq=False)
class Discrete(TaskFamily):
    """K fixed targets (Fig. 6 left); ψ is a one-hot vector, r = 1(‖x − target_ψ‖ ≤ margin) − 1."""

    targets: np.ndarray  # [K, feature_dim]
    margin: float
    has_success: bool = dataclasses.field(default=True, init=False)

    def __post_init__(self):
        object.__setattr__(self, "targets", _as_array(self.targets))
        if self.targets.ndim != 2 or self.targets.shape[0] < 1:
            raise ValueError(f"Discrete targets must be [K >= 1, dim], got shape {self.targets.shape}")

    @property
    def task_dim(self) -> int:
        return self.targets.shape[0]

    @property
    def feature_dim(self) -> int:
        return self.targets.shape[1]

    def sample(self, key: Array, n: int) -> Array:
        idx = jax.random.randint(key, (n,), 0, self.task_dim)
        return jax.nn.one_hot(idx, self.task_dim)

    def _goal(self, task: Array) -> Array:
        return task @ jnp.asarray(self.targets)

    def reward(self, features: Array, action: Array, task: Array) -> Array:
        return _sparse_goal_reward(features, self._goal(task), self.margin)[0]

    def success(self, features: Array, task: Array) -> Array:
        return _sparse_goal_reward(features, self._goal(task), self.margin)[1]

    def candidate_tasks(self) -> Array:
        return jnp.eye(self.task_dim)


@dataclasses.dataclass(frozen=True, eq=False)
class Indicators(TaskFamily):
    """A finite set of tasks, each a condition on s′ (the desk, App. C.11): φ(s′) ∈ {0, 1}^K says which hold,
    ψ is one-hot and r_ψ = ψᵀφ, 1 while the task's condition holds, else 0. Episodes do not end when it holds
    (a condition can stop holding), so there is no success flag: the return counts the steps it held."""

    num_tasks: int

    def __post_init__(self):
        if self.num_tasks < 1:
            raise ValueError(f"Indicators needs num_tasks >= 1, got {self.num_tasks}")

    @property
    def task_dim(self) -> int:
        return self.num_tasks

    @property
    def feature_dim(self) -> int:
        return self.num_tasks

    def sample(self, key: Array, n: int) -> Array:
        return jax.nn.one_hot(jax.random.randint(key, (n,), 0, self.num_tasks), self.num_tasks)

    def reward(self, features: Array, action: Array, task: Array) -> Array:
        return jnp.sum(features * task, axis=-1)

    def candidate_tasks(self) -> Array:
        return jnp.eye(self.num_tasks)


@dataclasses.dataclass(frozen=True, eq=False)
class Linear(TaskFamily):
    """r = ψᵀφ(s, a) (Fig. 6 centre, App. C.9); ψ ~ U[low, high] per dimension.

    With `control_feature`, φ(s, a) = concat(features(s'), ‖a‖²), so the last task dimension weighs
    a control cost (its bounds, e.g. [−1, 0], make it a penalty). `control_cost` c subtracts a fixed
    c‖a‖² instead. With `radius` the prior is uniform on the circle of that radius (2-D tasks, e.g.
    directions to walk in) rather than on the box.
    """

    low: np.ndarray
    high: np.ndarray
    control_feature: bool = False
    control_cost: float = 0.0
    radius: float | None = None

    def __post_init__(self):
        object.__setattr__(self, "low", _as_array(self.low))
        object.__setattr__(self, "high", _as_array(self.high))
        if np.any(self.low > self.high):
            raise ValueError(f"Linear bounds need low <= high, got {self.low} and {self.high}")
        if self.radius is not None and (self.task_dim != 2 or self.control_feature or not self.radius > 0):
            raise ValueError(f"Linear radius={self.radius} needs 2-D tasks without a control feature")

    @property
    def task_dim(self) -> int:
        return self.low.shape[0]

    @property
    def feature_dim(self) -> int:
        return self.task_dim - int(self.control_feature)

    def sample(self, key: Array, n: int) -> Array:
        if self.radius is not None:
            angle = jax.random.uniform(key, (n,), maxval=2 * jnp.pi)
            return self.radius * jnp.stack([jnp.cos(angle), jnp.sin(angle)], axis=-1)
        return jax.random.uniform(key, (n, self.task_dim), minval=self.low, maxval=self.high)

    def reward(self, features: Array, action: Array, task: Array) -> Array:
        r = jnp.sum(features * task[..., : self.feature_dim], axis=-1)
        if self.control_feature:
            r = r + task[..., -1] * jnp.sum(action**2, axis=-1)
        if self.control_cost:
            r = r - self.control_cost * jnp.sum(action**2, axis=-1)
        return r


@dataclasses.dataclass(frozen=True, eq=False)
class TargetVelocity(TaskFamily):
    """r = −|v − ψ| − c‖a‖² (App. C.10); ψ ~ U[low, high]; features[..., 0] is the velocity v."""

    low: float = 0.0
    high: float = 3.0
    control_cost: float = 0.05

    @property
    def task_dim(self) -> int:
        return 1

    @property
    def feature_dim(self) -> int:
        return 1

    def sample(self, key: Array, n: int) -> Array:
        return jax.random.uniform(key, (n, 1), minval=self.low, maxval=self.high)

    def reward(self, features: Array, action: Array, task: Array) -> Array:
        return -jnp.abs(features[..., 0] - task[..., 0]) - self.control_cost * jnp.sum(action**2, -1)
