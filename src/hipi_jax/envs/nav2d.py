"""`nav2d`: the 2D navigation env of Eysenbach et al. ("Search on the Replay Buffer"), as in App. C.7.

A point moves in the classic FourRooms layout dilated by 3 (a 33×33 grid, row 0 at the top). The agent
always starts in the lower-left corner and goals are free-cell centres at least 15 steps away (App. C.7).
Observation, features and tasks are positions normalised by the grid size, so they lie in [0, 1]².
"""

from __future__ import annotations

import collections
import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from hipi_jax.envs.base import Env, goal_of
from hipi_jax.tasks import GoalReach

FOUR_ROOMS = np.array(
    [
        [0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0],
        [1, 0, 1, 1, 1, 1, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 1, 1, 1, 0, 1, 1],
        [0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0],
    ],
    dtype=np.int32,
)
FOUR_ROOMS.setflags(write=False)

NUM_SUBSTEPS = 10  # SoRB's PointEnv integrates each action in 10 axis-by-axis substeps


@functools.cache
def walls(dilation: int = 3) -> np.ndarray:
    """The FourRooms layout with every cell blown up to a `dilation`² block (App. C.7); 1 = wall.

    Returns a read-only int32 array [11·dilation, 11·dilation].
    """
    if dilation < 1:
        raise ValueError(f"dilation must be >= 1, got {dilation}")
    grid = np.repeat(np.repeat(FOUR_ROOMS, dilation, axis=0), dilation, axis=1)
    grid.setflags(write=False)
    return grid


def start_cell(grid: np.ndarray) -> tuple[int, int]:
    """The lower-left cell (row H−1, column 0), where every episode starts (App. C.7)."""
    return grid.shape[0] - 1, 0


def shortest_path_steps(grid: np.ndarray, source: tuple[int, int]) -> np.ndarray:
    """BFS step counts from `source` to every cell ([H, W] float, inf for walls and unreachable cells).

    Moves go to the 8 neighbours; a diagonal move needs both orthogonal cells it passes to be free, so
    a count is a lower bound on env steps (one step moves at most one cell per axis).
    """
    height, width = grid.shape
    dist = np.full((height, width), np.inf)
    if grid[source]:
        raise ValueError(f"BFS source {source} is a wall")
    dist[source] = 0
    queue = collections.deque([source])
    while queue:
        i, j = queue.popleft()
        for di in (-1, 0, 1):
            for dj in (-1, 0, 1):
                ni, nj = i + di, j + dj
                if (di, dj) == (0, 0) or not (0 <= ni < height and 0 <= nj < width):
                    continue
                if grid[ni, nj] or (di and dj and (grid[ni, j] or grid[i, nj])):
                    continue
                if np.isinf(dist[ni, nj]):
                    dist[ni, nj] = dist[i, j] + 1
                    queue.append((ni, nj))
    return dist


@functools.cache
def goal_cells(dilation: int = 3, min_goal_distance: int = 15) -> np.ndarray:
    """Free cells [n, 2] (row, col), int32, >= `min_goal_distance` BFS steps from the start (App. C.7)."""
    grid = walls(dilation)
    dist = shortest_path_steps(grid, start_cell(grid))
    cells = np.argwhere(np.isfinite(dist) & (dist >= min_goal_distance)).astype(np.int32)
    cells.setflags(write=False)
    return cells


@dataclasses.dataclass(frozen=True, eq=False)
class Nav2d(Env):
    """SoRB's PointEnv on dilated FourRooms: action = desired change of position in cells, in [−1, 1]².

    Gaussian noise (std `action_noise`) is added to the action, which is clipped to [−1, 1] and applied
    in 10 substeps, axis by axis, each move rejected if it would enter a wall or leave the grid.
    The sim state is the position in grid units [2]; observation and features are both position / (H, W).
    `task_family` is derived from the other fields: goals = normalised free-cell centres at least
    `min_goal_distance` steps from the start, reached within `margin` cells.
    """

    task_family: GoalReach = dataclasses.field(init=False)
    max_steps: int = 100
    dilation: int = 3  # FourRooms cells are blown up to dilation × dilation blocks
    action_noise: float = 0.1  # std of the Gaussian noise added to each action component
    margin: float = 1.0  # goal radius in cells
    min_goal_distance: int = 15  # goals are at least this many BFS steps from the start

    def __post_init__(self):
        if self.action_noise < 0:
            raise ValueError(f"action_noise must be >= 0, got {self.action_noise}")
        grid = walls(self.dilation)
        height, width = grid.shape
        cells = goal_cells(self.dilation, self.min_goal_distance)
        if cells.shape[0] == 0:
            raise ValueError(f"no free cell is {self.min_goal_distance} steps from the start")
        support = (cells + 0.5) / np.array([height, width], np.float32)
        family = GoalReach(margin=self.margin / height, low=[0.0, 0.0], high=[1.0, 1.0], support=support)
        object.__setattr__(self, "task_family", family)

    @property
    def grid(self) -> np.ndarray:
        """The wall grid [H, W] (1 = wall)."""
        return walls(self.dilation)

    obs_dim = 2
    action_dim = 2

    render_kind = "plane"  # observations and features are the position: no `render_record` needed

    def plane_xy(self, position: np.ndarray) -> np.ndarray:
        """Normalised (row, col) positions [..., 2] -> plot coordinates (x = column, y = H − row) in cells."""
        position = np.asarray(position, np.float64)
        height, width = self.grid.shape
        return np.stack([position[..., 1] * width, (1.0 - position[..., 0]) * height], axis=-1)

    def plane_map(self) -> tuple[np.ndarray | None, tuple[float, float, float, float]]:
        """(wall grid, row 0 at the top, and its extent (x0, x1, y0, y1) in plot coordinates)."""
        height, width = self.grid.shape
        return self.grid, (0.0, float(width), 0.0, float(height))

    def goal_position(self, task: np.ndarray) -> np.ndarray | None:
        goal = goal_of(self.task_family, task)
        return None if goal is None else np.array([*self.plane_xy(goal[0]), 0.0])

    def _normalise(self, pos):
        return pos / jnp.asarray(self.grid.shape, jnp.float32)

    def _blocked(self, pos):
        """Whether a position (grid units) is outside [0, H) × [0, W) or inside a wall cell."""
        shape = jnp.asarray(self.grid.shape, jnp.float32)
        outside = jnp.any((pos < 0) | (pos >= shape))
        cell = jnp.clip(jnp.floor(pos).astype(jnp.int32), 0, jnp.asarray(self.grid.shape) - 1)
        return outside | (jnp.asarray(self.grid)[cell[0], cell[1]] == 1)

    def init_sim(self, key):
        row, col = start_cell(self.grid)
        jitter = jax.random.uniform(key, (2,), minval=-0.25, maxval=0.25)
        pos = jnp.array([row + 0.5, col + 0.5], jnp.float32) + jitter
        obs = self._normalise(pos)
        return pos, obs, obs

    def sim_step(self, sim, action, key):
        noise = self.action_noise * jax.random.normal(key, (2,))
        delta = jnp.clip(action + noise, -1.0, 1.0) / NUM_SUBSTEPS

        def substep(_, pos):
            for axis in range(2):
                proposal = pos.at[axis].add(delta[axis])
                pos = jnp.where(self._blocked(proposal), pos, proposal)
            return pos

        pos = jax.lax.fori_loop(0, NUM_SUBSTEPS, substep, sim)
        obs = self._normalise(pos)
        return pos, obs, obs
