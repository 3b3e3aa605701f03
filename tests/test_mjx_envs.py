"""MJX suite envs: reset/step jit and vmap, finite observations, features recomputed by hand from the
`mjx.Data` (through other fields than the env uses where one exists), rewards recomputed by hand from
the features. Training smoke tests are marked `slow` (`make test-envs`)."""

from __future__ import annotations

import itertools
from functools import partial

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import TINY_CONFIG

from hipi_jax import envs, programs, runner
from hipi_jax.envs import jaco, quadruped
from hipi_jax.envs.base import auto_reset, reset_with_prior
from hipi_jax.envs.mjx_suite import FINGER_RADIUS, ctrl_scale, reacher_discrete_targets

MJX_ENVS = ("walker_linear", "cheetah_velocity", "reacher_goal", "reacher_goal_hard", "reacher_discrete", "finger_goal",
            "quadruped_goal", "quadruped_linear", "arm_reach", "arm_reach_hard", "arm_reach_margin")  # fmt: skip
# reacher_goal_hard and arm_reach_hard differ from their easy versions only in the margin; the quadruped takes
# ~90 s to compile on a CPU, so its contract tests run with the slow set (make test-envs)
ROLLOUT_ENVS = (
    "walker_linear",
    "cheetah_velocity",
    "reacher_goal",
    "reacher_discrete",
    "finger_goal",
    "arm_reach",
    "arm_reach_margin",
) + tuple(  # fmt: skip
    pytest.param(name, marks=pytest.mark.slow) for name in ("quadruped_goal", "quadruped_linear")
)
NUM_ENVS, NUM_STEPS = 3, 5

pytestmark = pytest.mark.usefixtures("fast_compilation")


def rollout(name: str):
    """NUM_STEPS random-action steps of NUM_ENVS envs (with auto-reset), all states and actions."""
    env = envs.make(name)
    keys = jax.random.split(jax.random.key(0), NUM_ENVS)
    jit = partial(jax.jit, compiler_options=env.compiler_options())
    state = jit(jax.vmap(partial(reset_with_prior, env)))(keys)

    def body(s, key):
        k_act, k_reset = jax.random.split(key)
        action = jax.random.uniform(k_act, (NUM_ENVS, env.action_dim), minval=-1.0, maxval=1.0)
        nxt = jax.vmap(env.step)(s, action)
        return jax.vmap(partial(auto_reset, env))(nxt, jax.random.split(k_reset, NUM_ENVS)), (nxt, action)

    _, (states, actions) = jit(lambda s: jax.lax.scan(body, s, jax.random.split(jax.random.key(1), NUM_STEPS)))(state)
    return env, state, states, actions


@pytest.fixture(scope="module", params=ROLLOUT_ENVS)
def rolled(request):
    return (request.param, *rollout(request.param))


def test_shapes_and_finite(rolled):
    name, env, first, states, actions = rolled
    chex.assert_shape(first.obs, (NUM_ENVS, env.obs_dim))
    chex.assert_shape(states.obs, (NUM_STEPS, NUM_ENVS, env.obs_dim))
    chex.assert_shape(states.features, (NUM_STEPS, NUM_ENVS, env.task_family.feature_dim))
    chex.assert_shape(states.task, (NUM_STEPS, NUM_ENVS, env.task_family.task_dim))
    for x in (first.obs, first.features, states.obs, states.features, states.reward):
        assert bool(jnp.all(jnp.isfinite(x))), name
    np.testing.assert_array_equal(np.asarray(states.t[:, 0]), np.arange(1, NUM_STEPS + 1))
    # the state moves: physics is stepped
    assert not np.allclose(np.asarray(states.obs[0]), np.asarray(states.obs[-1]))


def _np_reward(name, env, features, action, task):
    f, a, t = (np.asarray(x, np.float64) for x in (features, action, task))
    if name == "walker_linear":
        return np.sum(f * t[..., :6], -1) + t[..., 6] * np.sum(a**2, -1)
    if name == "cheetah_velocity":
        return -np.abs(f[..., 0] - t[..., 0]) - 0.05 * np.sum(a**2, -1)
    if name == "quadruped_linear":
        return np.sum(f * t, -1) - 0.1 * np.sum(a**2, -1)
    if name == "arm_reach_margin":
        return np.where(np.linalg.norm(f - t[..., :3], axis=-1) <= t[..., 3], 0.0, -1.0)
    family = env.task_family
    goal = t if name != "reacher_discrete" else reacher_discrete_targets()[np.argmax(t, -1)]
    return np.where(np.linalg.norm(f - goal, axis=-1) <= family.margin, 0.0, -1.0)


def test_reward_is_a_hand_computation_from_features(rolled):
    name, env, _, states, actions = rolled
    expected = _np_reward(name, env, states.features, actions, states.task)
    np.testing.assert_allclose(np.asarray(states.reward), expected, rtol=1e-5, atol=1e-5)


def test_features_by_hand_from_mjx_data(rolled):
    name, env, _, states, _ = rolled
    data = states.sim  # mjx.Data batched [steps, envs]
    m = env.suite.mj_model if hasattr(env, "suite") else None  # the quadruped is not a Playground env
    f = np.asarray(states.features, np.float64)
    if name == "walker_linear":
        torso, left, right = (m.body(b).id for b in ("torso", "left_foot", "right_foot"))
        xpos = np.asarray(data.xpos, np.float64)
        com = np.asarray(data.subtree_com, np.float64)[..., torso, :]
        np.testing.assert_allclose(f[..., 0], xpos[..., torso, 2] - 0.5, atol=1e-6)
        vel = np.asarray(data._impl.subtree_linvel)[..., torso, 0]  # the field the sensor reads
        np.testing.assert_allclose(f[..., 1], vel, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(f[..., 2:4], xpos[..., left, :][..., [0, 2]] - com[..., [0, 2]], atol=1e-6)
        np.testing.assert_allclose(f[..., 4:6], xpos[..., right, :][..., [0, 2]] - com[..., [0, 2]], atol=1e-6)
    elif name == "cheetah_velocity":
        torso = m.body("torso").id
        vel = np.asarray(data._impl.subtree_linvel)[..., torso, 0]
        np.testing.assert_allclose(f[..., 0], vel, rtol=1e-4, atol=1e-5)
    elif name.startswith("quadruped"):
        # the free joint's world position / linear velocity
        source = data.qpos if name == "quadruped_goal" else data.qvel
        np.testing.assert_array_equal(f, np.asarray(source)[..., :2])
    elif name.startswith("arm_reach"):
        # the grip site; its forward kinematics are checked against MuJoCo C in test_jaco_*
        np.testing.assert_array_equal(f, np.asarray(data.site_xpos)[..., jaco.load_model()[0].site("gripsite").id, :])
    elif name == "finger_goal":
        # tip site minus the spinner body, in world XZ (the env reads the framepos sensors)
        tip = np.asarray(data.site_xpos, np.float64)[..., m.site("tip").id, :][..., [0, 2]]
        hinge = np.asarray(data.xpos, np.float64)[..., m.body("spinner").id, :][..., [0, 2]]
        np.testing.assert_allclose(f, tip - hinge, atol=1e-5)
        # the tip moves on the goal circle of the prior
        np.testing.assert_allclose(np.linalg.norm(f, axis=-1), FINGER_RADIUS, atol=1e-4)
        assert FINGER_RADIUS == pytest.approx(float(m.geom("cap1").size.sum()))
    else:
        np.testing.assert_array_equal(f, np.asarray(data.geom_xpos)[..., m.geom("finger").id, :2])


def test_reacher_fingertip_by_forward_kinematics():
    """At reset the kinematics are consistent with qpos (after a step, MuJoCo's positions lag qpos by
    the last integration), so the fingertip must match planar two-link forward kinematics."""
    env = envs.make("reacher_goal")
    m = env.suite.mj_model
    state = jax.jit(jax.vmap(partial(reset_with_prior, env)))(jax.random.split(jax.random.key(2), 8))
    shoulder, wrist = (np.asarray(state.sim.qpos, np.float64)[:, i] for i in range(2))
    l1 = np.linalg.norm(m.body("hand").pos[:2])  # links point along +x of their body frames
    l2 = np.linalg.norm(m.body("finger").pos[:2]) + np.linalg.norm(m.geom("finger").pos[:2])
    base = m.body("arm").pos[:2]
    tip = base + np.stack(
        [l1 * np.cos(shoulder) + l2 * np.cos(shoulder + wrist), l1 * np.sin(shoulder) + l2 * np.sin(shoulder + wrist)],
        axis=-1,
    )
    np.testing.assert_allclose(np.asarray(state.features), tip, atol=1e-5)


def test_task_priors():
    key = jax.random.key(3)
    goals = np.asarray(envs.make("reacher_goal").task_family.sample(key, 1000))
    radius = np.linalg.norm(goals, axis=-1)
    assert radius.min() >= 0.05 - 1e-6 and radius.max() <= 0.2 + 1e-6
    assert envs.make("reacher_goal").task_family.margin == 0.01
    assert envs.make("reacher_goal_hard").task_family.margin == 0.003
    walker = np.asarray(envs.make("walker_linear").task_family.sample(key, 1000))
    assert walker.shape == (1000, 7) and np.all(np.abs(walker) <= 1) and np.all(walker[:, 6] <= 0)
    speeds = np.asarray(envs.make("cheetah_velocity").task_family.sample(key, 1000))
    assert speeds.min() >= 0 and speeds.max() <= 3
    finger = np.asarray(envs.make("finger_goal").task_family.sample(key, 1000))
    np.testing.assert_allclose(np.linalg.norm(finger, axis=-1), FINGER_RADIUS, rtol=1e-5)
    for name in ("quadruped_goal", "quadruped_linear"):
        tasks = np.asarray(envs.make(name).task_family.sample(key, 1000))
        np.testing.assert_allclose(np.linalg.norm(tasks, axis=-1), 1.0, rtol=1e-5)
    low, high = np.asarray(jaco.WORKSPACE_LOW), np.asarray(jaco.WORKSPACE_HIGH)
    for name, margin in (("arm_reach", 0.1), ("arm_reach_hard", 0.01)):
        family = envs.make(name).task_family
        goals = np.asarray(family.sample(key, 1000))
        assert family.margin == margin and np.all(goals >= low) and np.all(goals <= high)
    tasks = np.asarray(envs.make("arm_reach_margin").task_family.sample(key, 1000))
    assert np.all(tasks[:, :3] >= low) and np.all(tasks[:, :3] <= high)
    assert tasks[:, 3].min() >= 0.0 and tasks[:, 3].max() <= 0.1 and tasks[:, 3].std() > 0.02
    targets = reacher_discrete_targets()
    assert targets.shape == (32, 2)
    np.testing.assert_allclose(np.linalg.norm(targets, axis=-1), 0.15, rtol=1e-6)


def test_cheetah_reuses_its_initial_state_on_reset():
    env = envs.make("cheetah_velocity")
    state = jax.jit(partial(reset_with_prior, env))(jax.random.key(5))
    ended = state.replace(t=jnp.asarray(100, jnp.int32), truncated=jnp.asarray(True), obs=state.obs + 1.0)
    fresh = jax.jit(partial(auto_reset, env))(ended, jax.random.key(6))
    np.testing.assert_array_equal(np.asarray(fresh.obs), np.asarray(state.obs))
    assert int(fresh.t) == 0 and not bool(fresh.truncated)
    assert not np.array_equal(np.asarray(fresh.task), np.asarray(state.task))  # a new task from the prior


def test_jaco_model_is_the_dm_control_arm_with_velocity_actuators_and_no_collisions():
    import mujoco

    m = jaco.load_model()[0]
    assert (m.nq, m.nv, m.nu) == (6, 6, 6)
    assert np.all(m.geom_contype == 0) and np.all(m.geom_conaffinity == 0)
    large, small = np.deg2rad(36.0), np.deg2rad(48.0)
    np.testing.assert_allclose(m.actuator_ctrlrange[:, 1], [large] * 3 + [small] * 3, rtol=1e-6)
    np.testing.assert_allclose(m.actuator_forcerange[:, 1], [30.5] * 3 + [6.8] * 3)
    np.testing.assert_allclose(m.actuator_gainprm[:, 0], 500.0)
    np.testing.assert_allclose(m.body("b_base").pos, jaco.ARM_OFFSET)
    assert m.opt.timestep * jaco.CONTROL_SUBSTEPS == pytest.approx(0.04)
    assert m.opt.integrator == mujoco.mjtIntegrator.mjINT_EULER and m.opt.iterations == 8
    # explicit actuator damping: kv dt / M_ii <= kv dt / armature <= 1, so velocities settle without oscillating
    assert np.all(500.0 * m.opt.timestep / m.dof_armature <= 1.0 + 1e-9)


def test_jaco_grip_site_by_mujoco_c_forward_kinematics():
    """The features equal MuJoCo C's grip site at reset (the home pose, 0.3 m above the box centre) and
    after the same 10 random actions run through MuJoCo C's own step on the same model."""
    import mujoco

    env = envs.make("arm_reach")
    m = jaco.load_model()[0]
    jit = partial(jax.jit, compiler_options=env.compiler_options())
    state = jit(partial(reset_with_prior, env))(jax.random.key(4))
    step = jit(lambda s, a: jax.lax.scan(lambda s, a: (env.step(s, a), s), s, a))
    actions = jax.random.uniform(jax.random.key(5), (10, env.action_dim), minval=-1.0, maxval=1.0)
    last, _ = step(state, actions)
    d = mujoco.MjData(m)
    d.qpos[:] = jaco.HOME_QPOS
    mujoco.mj_forward(m, d)
    site = m.site("gripsite").id
    np.testing.assert_allclose(np.asarray(state.features), d.site_xpos[site], atol=1e-5)
    np.testing.assert_allclose(d.site_xpos[site], [0.0, 0.0, 0.3], atol=1e-3)
    for action in np.asarray(actions, np.float64):
        d.ctrl[:] = action * m.actuator_ctrlrange[:, 1]
        mujoco.mj_step(m, d, jaco.CONTROL_SUBSTEPS)
    np.testing.assert_allclose(np.asarray(last.features), d.site_xpos[site], atol=1e-4)  # float32 (MJX) vs float64 (C)
    assert np.linalg.norm(np.asarray(last.features - state.features)) > 0.01  # the arm moved


def test_jaco_every_corner_of_the_goal_box_is_reachable_in_an_episode():
    """A resolved-rate controller through the env's own actuators (MuJoCo C, same model) brings the grip
    site within the hard margin (0.01) of each corner of the goal box in under a third of an episode."""
    import mujoco

    m = jaco.load_model()[0]
    d = mujoco.MjData(m)
    site, scale = m.site("gripsite").id, m.actuator_ctrlrange[:, 1]
    for corner in itertools.product(*zip(jaco.WORKSPACE_LOW, jaco.WORKSPACE_HIGH, strict=True)):
        mujoco.mj_resetData(m, d)
        d.qpos[:] = jaco.HOME_QPOS
        mujoco.mj_forward(m, d)
        for _ in range(50):
            jac = np.zeros((3, m.nv))
            mujoco.mj_jacSite(m, d, jac, None, site)
            error = np.asarray(corner) - d.site_xpos[site]
            velocity = jac.T @ np.linalg.solve(jac @ jac.T + 1e-3 * np.eye(3), 3.0 * error)
            d.ctrl[:] = np.clip(velocity / scale, -1.0, 1.0) * scale  # what the env does to an action
            mujoco.mj_step(m, d, jaco.CONTROL_SUBSTEPS)
        assert np.linalg.norm(np.asarray(corner) - d.site_xpos[site]) < 0.01, corner


def test_quadruped_fast_model_is_the_suite_model_colliding_with_the_floor_only():
    """The env's model has the suite model's bodies, masses, inertias and geoms; MJX collides only body-floor
    pairs; and the self-contacts it drops cannot happen: over random poses within the joint limits that keep
    the legs' coupling (pitch + knee + ankle = 0, up to the 0.09 rad seen under random actions), every body
    geom pair that the suite model would collide stays > 5 cm apart."""
    import mujoco
    from mujoco.mjx._src.collision_driver import geom_pairs

    suite, fast = quadruped.load_model(quadruped.SUITE)[0], quadruped.load_model(quadruped.FAST)[0]
    for field in ("body_mass", "body_inertia", "body_ipos", "geom_type", "geom_size", "geom_friction", "geom_condim"):
        np.testing.assert_array_equal(getattr(fast, field), getattr(suite, field), err_msg=field)
    floor, pairs = suite.geom("floor").id, list(geom_pairs(fast))
    assert all(floor in pair[:2] for pair in pairs) and len(pairs) == suite.ngeom - 1  # each body geom, floor
    dropped = [(a, b) for a, b, _ in geom_pairs(suite) if floor not in (a, b)]
    low, high = suite.jnt_range[1:5].T  # every leg's yaw, pitch, knee, ankle
    legs = np.random.default_rng(0).uniform(low, high, (20_000, 4))
    legs[:, 3] = -legs[:, 1] - legs[:, 2] + np.random.default_rng(1).uniform(-0.09, 0.09, 20_000)
    poses = legs[(legs[:, 3] >= low[3]) & (legs[:, 3] <= high[3])][: 4 * 300].reshape(300, 16)
    d, clearance = mujoco.MjData(suite), np.inf
    for pose in poses:
        d.qpos[7:] = pose
        mujoco.mj_kinematics(suite, d)
        clearance = min(clearance, min(mujoco.mj_geomDistance(suite, d, a, b, 0.2, None) for a, b in dropped))
    assert clearance > 0.05


def _c_torso_xy(physics, qpos: np.ndarray, actions: np.ndarray) -> tuple[np.ndarray, int, int]:
    """Torso XY after each control step of MuJoCo C on the quadruped model with `physics`, the most
    contacts touching (distance < 0) at once and the most solver iterations of any physics step."""
    import mujoco

    m = quadruped.load_model(physics)[0]
    d = mujoco.MjData(m)
    d.qpos[:] = qpos
    mujoco.mj_forward(m, d)
    xy, touching, iterations = [], 0, 0
    for action in actions:
        d.ctrl[:] = np.clip(action, -1.0, 1.0) * ctrl_scale(m)
        for _ in range(quadruped.CONTROL_SUBSTEPS):
            mujoco.mj_step(m, d)
            touching = max(touching, int(np.sum(d.contact.dist[: d.ncon] < 0)))
            iterations = max(iterations, int(d.solver_niter[0]))
        xy.append(d.qpos[:2].copy())
    return np.array(xy), touching, iterations


QUADRUPED_XY_TOLERANCE = 0.005  # m over 1 s: 1/60 of the goal margin (0.3); changing the physics moves it by cm


@pytest.mark.slow
def test_quadruped_fast_physics_follows_mujoco_c_on_the_suite_physics():
    """From the same start (dropped from the default height, so the landing is included), 50 control steps
    (1 s) of the same random actions, each held for 0.2 s: the env's torso XY (MJX, float32, `FAST`) stays
    within QUADRUPED_XY_TOLERANCE of MuJoCo C's on the suite's physics (`SUITE`, float64). MuJoCo C on
    `FAST` separates the simplification (≈ 0) from MJX's difference to C; and no more contacts touch at
    once on the suite's physics than `FAST`'s cap keeps, nor does MuJoCo C need more solver iterations."""
    env = envs.make("quadruped_goal")
    assert env.physics == quadruped.FAST
    jit = partial(jax.jit, compiler_options=env.compiler_options())
    state = jit(partial(reset_with_prior, env))(jax.random.key(7))
    actions = np.repeat(np.random.default_rng(0).uniform(-1.0, 1.0, (5, env.action_dim)), 10, axis=0)
    mjx_xy = np.asarray(jit(lambda s, a: jax.lax.scan(lambda s, a: (env.step(s, a),) * 2, s, a)[1].features)(
        state, jnp.asarray(actions, jnp.float32)))  # fmt: skip
    qpos = np.asarray(state.sim.qpos, np.float64)
    (suite_xy, touching, iterations), (fast_xy, *_) = (
        _c_torso_xy(physics, qpos, actions) for physics in (quadruped.SUITE, quadruped.FAST)
    )
    deviation = {
        "C FAST vs C SUITE": (fast_xy, suite_xy),
        "MJX FAST vs C FAST": (mjx_xy, fast_xy),
        "MJX FAST vs C SUITE": (mjx_xy, suite_xy),
    }
    deviation = {k: float(np.linalg.norm(a - b, axis=-1).max()) for k, (a, b) in deviation.items()}
    print(", ".join(f"{k} {1e3 * v:.4f} mm" for k, v in deviation.items()), "max torso XY deviation;",
          f"C SUITE: at most {touching} contacts touching, {iterations} solver iterations")  # fmt: skip
    assert touching <= quadruped.FAST.max_contact_points  # MJX's cap on contacts drops none that touch
    assert iterations <= quadruped.FAST.iterations  # C converges within the cap on the suite's physics
    assert np.linalg.norm(suite_xy[-1] - qpos[:2]) > 0.1  # the test is not vacuous: the quadruped moved
    assert deviation["C FAST vs C SUITE"] < 1e-3
    assert deviation["MJX FAST vs C SUITE"] < QUADRUPED_XY_TOLERANCE


@pytest.mark.slow
@pytest.mark.parametrize("name", MJX_ENVS)
def test_trains_a_few_hundred_steps(name):
    config = TINY_CONFIG.replace(
        env=name, seeds=1, env_steps=400, warmup_steps=64, num_envs=8, batch_size=16, hidden=(16, 16),
        buffer_size=4_000, eval_every=168,
    )  # fmt: skip
    records = []
    summary, _ = runner.loop(programs.build(config), records.append, progress=False)
    assert summary["env_steps"] >= 400 and np.all(np.isfinite(summary["eval_return"]))
    assert all(np.isfinite(r["critic_loss"]).all() for r in records[1:])
