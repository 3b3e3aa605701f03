"""`gridworld`: the open tabular gridworld of the discrete experiment (Fig. 4), one goal per task."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from hipi_jax.envs.base import Env
from hipi_jax.tasks import GoalReach

# Action index -> (Δrow, Δcol): up, down, left, right, stay (row 0 at the top).
MOVES = np.array([[-1, 0], [1, 0], [0, -1], [0, 1], [0, 0]], dtype=np.int32)
MOVES.setflags(write=False)


def all_cells(size: int) -> np.ndarray:
    """Every (row, col) of a size × size grid, row-major: [size², 2] float32."""
    rows, cols = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    return np.stack([rows.ravel(), cols.ravel()], axis=-1).astype(np.float32)


@dataclasses.dataclass(frozen=True, eq=False)
class GridWorld(Env):
    """An open `size` × `size` grid, deterministic moves; a move off the grid leaves the agent in place.

    Actions are ints 0..4 = up, down, left, right, stay. The sim state is the cell (row, col) as int32 [2];
    observation and features are the same cell as float32. The start is uniform over all cells and a
    task is a goal cell, reached when the agent stands on it (margin 0.5 < one cell).
    `max_steps` defaults to 2·size, resolved in `__post_init__` (so `dataclasses.replace(env, size=...)`
    keeps the old, resolved value; pass `max_steps` too).
    """

    task_family: GoalReach = dataclasses.field(init=False)
    max_steps: int | None = None  # None -> 2 * size
    discrete_actions: bool = dataclasses.field(default=True, init=False)
    size: int = 5  # side length of the grid

    def __post_init__(self):
        if self.size < 1:
            raise ValueError(f"GridWorld size must be >= 1, got {self.size}")
        if self.max_steps is None:
            object.__setattr__(self, "max_steps", 2 * self.size)
        family = GoalReach(
            margin=0.5, low=[0.0, 0.0], high=[self.size - 1.0, self.size - 1.0], support=all_cells(self.size)
        )
        object.__setattr__(self, "task_family", family)

    obs_dim = 2
    action_dim = MOVES.shape[0]

    def init_sim(self, key):
        cell = jax.random.randint(key, (2,), 0, self.size, dtype=jnp.int32)
        obs = cell.astype(jnp.float32)
        return cell, obs, obs

    def sim_step(self, sim, action, key):
        cell = jnp.clip(sim + jnp.asarray(MOVES)[action], 0, self.size - 1)
        obs = cell.astype(jnp.float32)
        return cell, obs, obs
