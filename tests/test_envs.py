"""Env tests: the registry, the shared reset/step contract under jit and vmap, and exact checks of
`nav2d` (App. C.7) and `gridworld` (Fig. 4)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hipi_jax import envs
from hipi_jax.envs import gridworld, nav2d
from hipi_jax.envs.base import reset_with_prior
from hipi_jax.tasks import GoalReach

NUM_ENVS = 4
NUM_STEPS = 3


def _random_actions(env, key, shape):
    if env.discrete_actions:
        return jax.random.randint(key, shape, 0, env.action_dim)
    return jax.random.uniform(key, (*shape, env.action_dim), minval=-1.0, maxval=1.0)


def _np_goal_reward(family: GoalReach, features, task):
    dist = np.linalg.norm(np.asarray(features, np.float64) - np.asarray(task, np.float64), axis=-1)
    return np.where(dist <= family.margin, 0.0, -1.0)


PURE_JAX_ENVS = ("gridworld", "nav2d", "point_goal")  # the MJX envs have their own module, test_mjx_envs.py


@pytest.mark.parametrize("name", PURE_JAX_ENVS)
def test_reset_step_contract_under_jit_and_vmap(name):
    env = envs.make(name)
    family = env.task_family
    keys = jax.random.split(jax.random.key(0), NUM_ENVS)
    state = jax.jit(jax.vmap(lambda k: reset_with_prior(env, k)))(keys)
    step = jax.jit(jax.vmap(env.step))
    assert state.obs.shape == (NUM_ENVS, env.obs_dim)
    assert state.task.shape == (NUM_ENVS, family.task_dim)
    for i in range(NUM_STEPS):
        action = _random_actions(env, jax.random.key(100 + i), (NUM_ENVS,))
        state = step(state, action)
        assert state.obs.shape == (NUM_ENVS, env.obs_dim)
        assert state.features.shape == (NUM_ENVS, family.feature_dim)
        assert np.all(np.isfinite(np.asarray(state.obs)))
        np.testing.assert_array_equal(np.asarray(state.t), np.full(NUM_ENVS, i + 1))
        action_vec = jnp.zeros((NUM_ENVS, 1)) if env.discrete_actions else action
        np.testing.assert_array_equal(
            np.asarray(state.reward), np.asarray(family.reward(state.features, action_vec, state.task))
        )
        if isinstance(family, GoalReach):
            np.testing.assert_array_equal(np.asarray(state.reward), _np_goal_reward(family, state.features, state.task))
        np.testing.assert_array_equal(np.asarray(state.done), np.asarray(family.success(state.features, state.task)))

    # An unbatched jitted step agrees with the vmapped one.
    single = jax.tree.map(lambda x: x[0], state)
    action = _random_actions(env, jax.random.key(7), ())
    one = jax.jit(env.step)(single, action)
    batched = step(state, jnp.broadcast_to(action, (NUM_ENVS, *action.shape)))
    np.testing.assert_allclose(np.asarray(one.obs), np.asarray(batched.obs[0]), atol=1e-6)
    assert one.obs.shape == (env.obs_dim,)


def test_make_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match="nope") as info:
        envs.make("nope")
    for name in envs.names():
        assert name in str(info.value)
    assert {"gridworld", "nav2d"} <= set(envs.names())


# --------------------------------------------------------------------------- nav2d


def test_nav2d_walls_are_dilated_four_rooms():
    grid = nav2d.walls(3)
    assert grid.shape == (33, 33)
    expected = np.repeat(np.repeat(nav2d.FOUR_ROOMS, 3, axis=0), 3, axis=1)
    np.testing.assert_array_equal(grid, expected)
    np.testing.assert_array_equal(grid[15:18, 3:6], np.zeros((3, 3)))  # the west door (base cell (5, 1))
    np.testing.assert_array_equal(grid[30:33, 15:18], np.ones((3, 3)))  # base cell (10, 5)
    np.testing.assert_array_equal(envs.make("nav2d").grid, grid)


def test_nav2d_start_is_lower_left_cell_with_jitter():
    env = envs.make("nav2d")
    keys = jax.random.split(jax.random.key(1), 64)
    pos, obs, features = jax.vmap(env.init_sim)(keys)
    pos = np.asarray(pos)
    np.testing.assert_array_equal(np.floor(pos), np.tile([32.0, 0.0], (64, 1)))
    assert np.all(np.abs(pos - np.array([32.5, 0.5])) <= 0.25)
    np.testing.assert_allclose(np.asarray(obs), pos / 33.0, rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(obs), np.asarray(features))


def test_nav2d_bfs_counts_and_no_corner_cutting():
    grid = nav2d.walls(3)
    dist = nav2d.shortest_path_steps(grid, (32, 0))
    assert dist[32, 0] == 0
    assert dist[29, 14] == 14  # 3 diagonal steps, then 11 to the right
    assert dist[29, 15] == 15  # first cell of the east door out of the start room
    assert np.isinf(dist[32, 15])  # a wall
    # (18, 2) -> (17, 3) is diagonal past the wall cell (17, 2): two steps, not one.
    assert nav2d.shortest_path_steps(grid, (18, 2))[17, 3] == 2
    # Two free cells touching only at a corner are not connected.
    np.testing.assert_array_equal(
        nav2d.shortest_path_steps(np.array([[0, 1], [1, 0]]), (0, 0)), [[0, np.inf], [np.inf, np.inf]]
    )


def test_nav2d_goal_support_is_far_from_start():
    env = envs.make("nav2d")
    grid = env.grid
    cells = nav2d.goal_cells(3, 15)
    assert cells.shape[0] > 0
    assert np.all(grid[cells[:, 0], cells[:, 1]] == 0)
    # One env step moves at most one cell per axis, so a goal needs Chebyshev distance >= 15.
    assert np.all(np.max(np.abs(cells - np.array([32, 0])), axis=1) >= 15)
    cell_set = {tuple(c) for c in cells.tolist()}
    start_room = {(i, j) for i in range(18, 33) for j in range(15) if grid[i, j] == 0}
    assert not (cell_set & start_room)  # the whole start room is within 14 steps
    assert (29, 15) in cell_set and (0, 32) in cell_set
    support = env.task_family.support
    np.testing.assert_allclose(support, (cells + 0.5) / 33.0, rtol=1e-6)
    np.testing.assert_allclose(env.task_family.margin, 1.0 / 33.0)
    tasks = np.asarray(env.task_family.sample(jax.random.key(2), 256))
    assert {tuple(t) for t in np.round(tasks * 33 - 0.5).astype(int).tolist()} <= cell_set


def test_nav2d_never_enters_walls_or_leaves_grid():
    env = envs.make("nav2d")
    grid = env.grid

    def rollout(key):
        k_init, k_act, k_step = jax.random.split(key, 3)
        pos0, _, _ = env.init_sim(k_init)
        actions = jnp.sign(jax.random.normal(k_act, (200, 2))) * jax.random.uniform(
            k_act, (200, 1), minval=0.5, maxval=1.0
        )

        def body(pos, inputs):
            action, k = inputs
            pos, _, _ = env.sim_step(pos, action, k)
            return pos, pos

        _, path = jax.lax.scan(body, pos0, (actions, jax.random.split(k_step, 200)))
        return path

    paths = np.asarray(jax.jit(jax.vmap(rollout))(jax.random.split(jax.random.key(3), 8))).reshape(-1, 2)
    assert np.all(paths >= 0) and np.all(paths < 33)
    cells = np.floor(paths).astype(int)
    assert not np.any(grid[cells[:, 0], cells[:, 1]])
    assert np.ptp(paths[:, 0]) > 3  # the walk actually moved


def test_nav2d_noiseless_moves_and_wall_stops():
    env = envs.make("nav2d", action_noise=0.0)
    step = jax.jit(env.sim_step)
    key = jax.random.key(4)
    start, _, _ = env.init_sim(jax.random.key(5))
    up, obs, _ = step(start, jnp.array([-1.0, 0.0]), key)
    np.testing.assert_allclose(np.asarray(up), np.asarray(start) + np.array([-1.0, 0.0]), atol=1e-5)
    np.testing.assert_allclose(np.asarray(obs), np.asarray(up) / 33.0, rtol=1e-6)
    # Left from column ~0.5 stops at the grid edge, within one substep (0.1) of it.
    left, _, _ = step(start, jnp.array([0.0, -1.0]), key)
    assert 0.0 <= float(left[1]) < 0.1 and float(left[0]) == float(start[0])
    # Right from (31.5, 14.5) runs into the wall block at columns 15-17.
    right, _, _ = step(jnp.array([31.5, 14.5]), jnp.array([0.0, 1.0]), key)
    assert 14.85 < float(right[1]) < 15.0 and float(right[0]) == 31.5


def test_nav2d_truncates_at_max_steps():
    env = envs.make("nav2d", action_noise=0.0, max_steps=5)
    state = reset_with_prior(env, jax.random.key(6))
    step = jax.jit(env.step)
    truncated = []
    for _ in range(5):
        state = step(state, jnp.zeros(2))
        truncated.append(bool(state.truncated))
        assert not bool(state.done)
    assert truncated == [False, False, False, False, True]


# --------------------------------------------------------------------------- gridworld


def test_gridworld_sizes_and_family():
    env = envs.make("gridworld")
    assert env.discrete_actions and env.action_dim == 5 and env.obs_dim == 2 and env.max_steps == 10
    np.testing.assert_array_equal(env.task_family.support, gridworld.all_cells(5))
    assert env.task_family.support.shape == (25, 2)
    assert envs.make("gridworld", size=3).max_steps == 6


def test_gridworld_moves_are_deterministic_and_clipped():
    env = envs.make("gridworld")
    step = jax.jit(env.sim_step)
    key = jax.random.key(0)
    expected = {0: [1, 2], 1: [3, 2], 2: [2, 1], 3: [2, 3], 4: [2, 2]}
    for action, cell in expected.items():
        sim, obs, features = step(jnp.array([2, 2], jnp.int32), jnp.int32(action), key)
        np.testing.assert_array_equal(np.asarray(sim), cell)
        np.testing.assert_array_equal(np.asarray(obs), np.asarray(cell, np.float32))
        np.testing.assert_array_equal(np.asarray(features), np.asarray(cell, np.float32))
    for corner, off_grid in (([0, 0], (0, 2)), ([4, 4], (1, 3))):
        for action in off_grid:
            sim, _, _ = step(jnp.array(corner, jnp.int32), jnp.int32(action), key)
            np.testing.assert_array_equal(np.asarray(sim), corner)


def test_gridworld_start_covers_every_cell():
    env = envs.make("gridworld")
    cells, _, _ = jax.vmap(env.init_sim)(jax.random.split(jax.random.key(8), 1000))
    assert {tuple(c) for c in np.asarray(cells).tolist()} == {(i, j) for i in range(5) for j in range(5)}


def test_gridworld_reaching_goal_rewards_zero_and_terminates():
    env = envs.make("gridworld")
    state = env.reset(jax.random.key(0), jnp.array([2.0, 3.0]))
    at = jnp.array([2, 2], jnp.int32)
    state = state.replace(sim=at, obs=at.astype(jnp.float32), features=at.astype(jnp.float32))
    step = jax.jit(env.step)
    miss = step(state, jnp.int32(0))  # up, to (1, 2)
    assert float(miss.reward) == -1.0 and not bool(miss.done) and not bool(miss.truncated)
    hit = step(state, jnp.int32(3))  # right, onto the goal (2, 3)
    assert float(hit.reward) == 0.0 and bool(hit.done) and not bool(hit.truncated)
