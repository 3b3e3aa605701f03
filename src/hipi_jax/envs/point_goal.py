"""`point_goal`: a point on the open plane [−1, 1]² that must reach a goal (the smallest sanity env)."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from hipi_jax.envs.base import Env, goal_of
from hipi_jax.tasks import GoalReach


def default_family(margin: float = 0.1) -> GoalReach:
    return GoalReach(margin=margin, low=[-1.0, -1.0], high=[1.0, 1.0])


@dataclasses.dataclass(frozen=True, eq=False)
class PointGoal(Env):
    """Start uniform in the box; action = velocity in [−1, 1]², scaled by `max_speed`; no noise.

    Observation and features are both the position [2].
    """

    task_family: GoalReach = dataclasses.field(default_factory=default_family)
    max_steps: int = 50
    max_speed: float = 0.1

    obs_dim = 2
    action_dim = 2

    render_kind = "plane"  # observations and features are the position: no `render_record` needed

    def plane_xy(self, position: np.ndarray) -> np.ndarray:
        """Positions [..., 2] are already plot coordinates."""
        return np.asarray(position, np.float64)

    def plane_map(self) -> tuple[np.ndarray | None, tuple[float, float, float, float]]:
        """(no walls, the box [−1, 1]²)."""
        return None, (-1.0, 1.0, -1.0, 1.0)

    def goal_position(self, task: np.ndarray) -> np.ndarray | None:
        goal = goal_of(self.task_family, task)
        return None if goal is None else np.array([*self.plane_xy(goal[0]), 0.0])

    def init_sim(self, key):
        pos = jax.random.uniform(key, (2,), minval=-1.0, maxval=1.0)
        return pos, pos, pos

    def sim_step(self, sim, action, key):
        pos = jnp.clip(sim + self.max_speed * jnp.clip(action, -1.0, 1.0), -1.0, 1.0)
        return pos, pos, pos
