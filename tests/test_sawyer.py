"""The Sawyer reach envs (hipi_jax/envs/sawyer.py): the model is Meta-World's Sawyer without gripper, object and
collisions and moves as Meta-World's unmodified model does; MJX steps it as MuJoCo C does; every corner of the
goal box is reached within an episode through the env's own actions; rewards follow App. C.6. The tests that
compile MJX programs (a minute or more on a CPU) are marked slow (make test-envs)."""

from __future__ import annotations

import itertools
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import TINY_CONFIG

from hipi_jax import envs, programs, runner
from hipi_jax.config import TrainConfig
from hipi_jax.envs import sawyer
from hipi_jax.tasks import GoalMargin, GoalReach

NAMES = ("sawyer_reach", "sawyer_reach_hard", "sawyer_reach_margin")
ARM_JOINTS = [f"right_j{i}" for i in range(7)]
CORNERS = np.array(list(itertools.product(*zip(sawyer.GOAL_LOW, sawyer.GOAL_HIGH, strict=True))))
GAIN = 0.3  # the corner controller moves the mocap by GAIN × the remaining distance per step (≤ 1 cm)
RANDOM_STEPS = 150

pytestmark = pytest.mark.usefixtures("fast_compilation")


def metaworld_model():
    """Meta-World's unmodified reach model (gripper, object, table, collisions, 50 solver iterations), with the
    weld data its `reset_mocap_welds` writes."""
    import mujoco

    m = mujoco.MjModel.from_xml_path(str(sawyer.metaworld_assets() / "sawyer_xyz" / "sawyer_reach_v3.xml"))
    m.eq_data[0, :11] = [0, 0, 0, 0, 0, 0, -1, 0, 0, 0, 5]
    return m


def tcp(m, d) -> np.ndarray:
    """Meta-World's `tcp_center` (the claws' tip midpoint), or the site that stands in for it."""
    if m.nu:  # the unmodified model
        return (d.site("rightEndEffector").xpos + d.site("leftEndEffector").xpos) / 2
    return d.site(sawyer.TCP_SITE).xpos.copy()


def mocap_step(m, d, action) -> None:
    """`SawyerXYZEnv.step` in MuJoCo C: move the mocap, hold the gripper open (where there is one), 5 steps, then
    `mj_forward` (positions of the state reached)."""
    import mujoco

    mocap = d.mocap_pos[0] + sawyer.ACTION_SCALE * np.clip(action, -1.0, 1.0)
    d.mocap_pos[0], d.mocap_quat[0] = np.clip(mocap, sawyer.HAND_LOW, sawyer.HAND_HIGH), sawyer.MOCAP_QUAT
    if m.nu:
        d.ctrl[:] = (-1.0, 1.0)
    mujoco.mj_step(m, d, sawyer.FRAME_SKIP)
    mujoco.mj_forward(m, d)


def reset(m):
    """Meta-World's reset (`_reset_hand`: the mocap held at HAND_INIT from the reference pose), SETTLE_STEPS long."""
    import mujoco

    d = mujoco.MjData(m)
    d.mocap_pos[0] = sawyer.HAND_INIT
    for _ in range(sawyer.SETTLE_STEPS):
        mocap_step(m, d, np.zeros(3))
    return d


def names(m, kind: str, n: int) -> list[str]:
    return [getattr(m, kind)(i).name for i in range(n)]


def test_model_is_metaworlds_sawyer_without_gripper_object_or_collisions():
    import mujoco

    ours, theirs = sawyer.load_model()[0], metaworld_model()
    assert names(ours, "joint", ours.njnt) == ARM_JOINTS
    assert names(theirs, "joint", theirs.njnt) == [*ARM_JOINTS, "r_close", "l_close", "objjoint"]
    kept = [name for name in names(theirs, "body", theirs.nbody) if name not in sawyer.DROPPED_BODIES]
    assert names(ours, "body", ours.nbody) == kept and ours.nbody == 27 == theirs.nbody - 7
    for name in kept:  # the same links: frames, masses, inertias
        for field in ("pos", "quat", "mass", "inertia", "ipos", "iquat"):
            np.testing.assert_array_equal(getattr(ours.body(name), field), getattr(theirs.body(name), field), name)
    for m in (ours, theirs):
        arm = [m.joint(j).id for j in ARM_JOINTS]
        assert list(m.jnt_dofadr[arm]) == arm  # hinges: dof i is joint i
    for field in ("jnt_range", "dof_damping", "dof_armature"):
        np.testing.assert_array_equal(getattr(ours, field)[:7], getattr(theirs, field)[:7], field)
    # moved by a mocap body welded to the hand as Meta-World's reset_mocap_welds sets it; no actuators
    assert ours.nmocap == 1 and ours.body("mocap").mocapid[0] == 0 and ours.nu == 0 and theirs.nu == 2
    assert ours.neq == 1 and ours.eq_type[0] == mujoco.mjtEq.mjEQ_WELD
    assert (ours.eq_obj1id[0], ours.eq_obj2id[0]) == (ours.body("mocap").id, ours.body("hand").id)
    np.testing.assert_array_equal(ours.eq_data[0, :11], theirs.eq_data[0, :11])
    np.testing.assert_array_equal(ours.eq_solref, theirs.eq_solref)
    # collisions off (Meta-World's hand, claws and table collide)
    assert np.all(ours.geom_contype == 0) and np.all(ours.geom_conaffinity == 0)
    assert np.any(theirs.geom_contype != 0)
    assert ours.opt.timestep == theirs.opt.timestep == sawyer.PHYSICS_TIMESTEP
    assert ours.opt.integrator == theirs.opt.integrator == mujoco.mjtIntegrator.mjINT_EULER
    assert (ours.opt.iterations, theirs.opt.iterations) == (sawyer.SOLVER_ITERATIONS, 50)
    # the tcp_center site is Meta-World's claw-tip midpoint with the gripper open, in any pose
    d_ours, d_theirs = mujoco.MjData(ours), mujoco.MjData(theirs)
    for qpos in (sawyer.home_qpos(), np.random.default_rng(0).uniform(-1.0, 1.0, 7)):
        d_ours.qpos[:], d_theirs.qpos[:7] = qpos, qpos
        mujoco.mj_forward(ours, d_ours)
        mujoco.mj_forward(theirs, d_theirs)
        np.testing.assert_allclose(tcp(ours, d_ours), tcp(theirs, d_theirs), atol=1e-12)


def test_start_is_at_rest_below_the_mocap():
    """The start (`home_qpos`): the end of Meta-World's reset run to rest; tcp_center 0.045 m below the hand's start
    (less the weld's sag under gravity), and it stays there."""
    m = sawyer.load_model()[0]
    d = reset(m)
    assert np.abs(d.qvel).max() < 1e-6
    np.testing.assert_allclose(d.qpos, sawyer.home_qpos(), atol=1e-6)
    np.testing.assert_allclose(tcp(m, d), np.subtract(sawyer.HAND_INIT, (0.0, 0.0, 0.045)), atol=0.005)
    start = tcp(m, d)
    for _ in range(10):
        mocap_step(m, d, np.zeros(3))
    np.testing.assert_allclose(tcp(m, d), start, atol=1e-6)


def test_moves_as_metaworlds_unmodified_model():
    """150 random actions through both models (MuJoCo C): without gripper, object, table, collisions and with the
    capped solver, tcp_center stays within 2 mm of Meta-World's own."""
    ours, theirs = sawyer.load_model()[0], metaworld_model()
    d_ours, d_theirs = reset(ours), reset(theirs)
    start, gaps = tcp(ours, d_ours), []
    for action in np.random.default_rng(1).uniform(-1.0, 1.0, (150, 3)):
        mocap_step(ours, d_ours, action)
        mocap_step(theirs, d_theirs, action)
        gaps.append(np.linalg.norm(tcp(ours, d_ours) - tcp(theirs, d_theirs)))
    assert max(gaps) < 2e-3, max(gaps)
    assert np.linalg.norm(tcp(ours, d_ours) - start) > 0.02  # the arm moved


@pytest.mark.parametrize("name", NAMES)
def test_make_presets_and_task_priors(name):
    env = envs.make(name)
    assert isinstance(env, sawyer.SawyerReach) and name in envs.continuous_names()
    assert (env.obs_dim, env.action_dim, env.max_steps) == (27, 3, 150) and env.reuse_initial_state
    assert env.control_timestep() == pytest.approx(0.0125)
    config = TrainConfig.preset(name)
    assert config.sac.hidden == (64, 64) and config.sac.grad_clip == 1.0
    assert (config.run.env_steps, config.evaluation.every) == (100_000, 10_000)
    family = env.task_family
    tasks = np.asarray(family.sample(jax.random.key(0), 1000))
    low, high = np.asarray(sawyer.GOAL_LOW), np.asarray(sawyer.GOAL_HIGH)
    assert np.all(tasks[:, :3] >= low) and np.all(tasks[:, :3] <= high)
    assert np.all(tasks[:, :3].max(0) - tasks[:, :3].min(0) > 0.9 * (high - low))  # the whole box
    if name == "sawyer_reach_margin":
        assert isinstance(family, GoalMargin) and tasks.shape == (1000, 4)
        assert tasks[:, 3].min() >= 0.0 and tasks[:, 3].max() <= 0.1 and tasks[:, 3].std() > 0.02
    else:
        assert isinstance(family, GoalReach) and family.margin == {"sawyer_reach": 0.01}.get(name, 0.003)


def test_rewards_and_success_by_hand():
    """r = 1(‖tcp − goal‖ ≤ m) − 1, terminal on success: m = 0.01, 0.003, or the task's own m (App. C.6)."""
    rng = np.random.default_rng(2)
    goal = np.array([0.05, 0.85, 0.1], np.float32)
    distances = np.array([0.0, 0.002, 0.0029, 0.0031, 0.009, 0.011, 0.05, 0.2])
    directions = rng.normal(size=(len(distances), 3))
    features = goal + distances[:, None] * directions / np.linalg.norm(directions, axis=-1, keepdims=True)
    action = np.zeros((len(distances), 3), np.float32)
    for name, margin in (("sawyer_reach", 0.01), ("sawyer_reach_hard", 0.003)):
        family = envs.make(name).task_family
        hit = distances <= margin
        tasks = np.broadcast_to(goal, features.shape)
        np.testing.assert_array_equal(np.asarray(family.reward(features, action, tasks)), hit - 1.0)
        np.testing.assert_array_equal(np.asarray(family.terminal(features, tasks)), hit)
    family = envs.make("sawyer_reach_margin").task_family
    for margin in (0.0, 0.003, 0.01, 0.1):
        tasks = np.broadcast_to(np.append(goal, margin).astype(np.float32), (len(distances), 4))
        hit = distances <= margin  # distance 0 reaches even m = 0
        np.testing.assert_array_equal(np.asarray(family.reward(features, action, tasks)), hit - 1.0)
        np.testing.assert_array_equal(np.asarray(family.success(features, tasks)), hit)


def test_goal_drawn_where_the_features_are():
    """The drawing model (Meta-World's table scene added) puts tcp_center where the physics model does."""
    import mujoco

    env = envs.make("sawyer_reach")
    physics, drawing = sawyer.load_model()[0], env.render_model()
    assert names(drawing, "joint", drawing.njnt) == ARM_JOINTS and drawing.body("tablelink").id > 0
    assert np.all(drawing.geom_contype == 0) and np.all(drawing.geom_conaffinity == 0)
    for qpos in (sawyer.home_qpos(), np.random.default_rng(3).uniform(-1.0, 1.0, 7)):
        d_physics, d_drawing = mujoco.MjData(physics), mujoco.MjData(drawing)
        d_physics.qpos[:], d_drawing.qpos[:] = qpos, qpos
        mujoco.mj_forward(physics, d_physics)
        mujoco.mj_forward(drawing, d_drawing)
        features = np.asarray(env.features(d_physics))
        np.testing.assert_allclose(env.goal_position(features), d_drawing.site(sawyer.TCP_SITE).xpos, atol=1e-12)


# ---- MJX (slow: compiles the env's reset and step) ---------------------------------------------------------------


@pytest.fixture(scope="module")
def episodes():
    """One jitted, vmapped program of sawyer_reach_hard episodes without auto-reset: env 0 takes RANDOM_STEPS
    uniform random actions (goal: the box centre), envs 1-8 drive tcp_center to a corner of the goal box by a
    proportional controller on the features. Returns the env, the first states and every later state."""
    env = envs.make("sawyer_reach_hard")
    goals = np.concatenate([[np.add(sawyer.GOAL_LOW, sawyer.GOAL_HIGH) / 2], CORNERS]).astype(np.float32)
    controlled = np.arange(len(goals)) > 0
    noise = jax.random.uniform(jax.random.key(5), (RANDOM_STEPS, len(goals), 3), minval=-1.0, maxval=1.0)
    jit = partial(jax.jit, compiler_options=env.compiler_options())

    def run(keys, goals, noise):
        first = jax.vmap(env.reset)(keys, goals)

        def body(state, random_action):
            toward = jnp.clip(GAIN * (state.task - state.features) / sawyer.ACTION_SCALE, -1.0, 1.0)
            nxt = jax.vmap(env.step)(state, jnp.where(controlled[:, None], toward, random_action))
            return nxt, (nxt, random_action)

        return first, jax.lax.scan(body, first, noise)[1]

    first, (states, actions) = jit(run)(jax.random.split(jax.random.key(4), len(goals)), goals, noise)
    return env, first, states, np.asarray(actions[:, 0], np.float64)


@pytest.mark.slow
def test_tcp_by_mujoco_c(episodes):
    """The features at reset and after each of the 150 random actions, against MuJoCo C running the same actions on
    the same model. MJX implements MuJoCo 3.x's weld: MuJoCo 3.3 C (Meta-World's version, not installed here) runs
    this episode to within 5e-7 m of MJX. MuJoCo 4.0's C engine changed the weld's velocity term, so it drifts from
    MJX while the arm moves: 8e-5 m at most on this episode (0.1-0.25 mm on others), bounded here by 3e-4 m, a tenth
    of the hard margin. Kinematics: the features are MuJoCo C's tcp_center of MJX's own states."""
    import mujoco

    env, first, states, actions = episodes
    m = sawyer.load_model()[0]
    d = mujoco.MjData(m)
    d.qpos[:], d.mocap_pos[0], d.mocap_quat[0] = sawyer.home_qpos(), sawyer.HAND_INIT, sawyer.MOCAP_QUAT
    mujoco.mj_forward(m, d)
    np.testing.assert_allclose(np.asarray(first.features[0]), tcp(m, d), atol=1e-6)
    features = np.asarray(states.features[:, 0], np.float64)
    mocap = np.asarray(states.sim.mocap_pos[:, 0, 0], np.float64)
    gaps = []
    for t, action in enumerate(actions):
        mocap_step(m, d, action)
        np.testing.assert_allclose(mocap[t], d.mocap_pos[0], atol=1e-5)
        gaps.append(np.linalg.norm(features[t] - tcp(m, d)))
    assert gaps[0] < 2e-5 and max(gaps) < 3e-4, np.round(gaps, 6)
    assert np.linalg.norm(features[-1] - np.asarray(first.features[0])) > 0.02  # the arm moved
    qpos = np.asarray(states.sim.qpos[:, 0])
    for t in (0, RANDOM_STEPS // 2, RANDOM_STEPS - 1):
        d.qpos[:] = qpos[t]
        mujoco.mj_kinematics(m, d)
        np.testing.assert_allclose(features[t], tcp(m, d), atol=1e-5)


@pytest.mark.slow
def test_every_corner_of_the_goal_box_is_reached_in_an_episode(episodes):
    """Through the env's own step, a proportional controller on the features brings tcp_center within the hard margin
    (0.003) of each corner of the goal box well within the 150 steps: the episode's terminal flag is set. Rewards and
    terminals equal 1(‖φ − goal‖ ≤ 0.003) − 1 and the success flag, recomputed from the features."""
    env, first, states, _ = episodes
    features, tasks = np.asarray(states.features, np.float64), np.asarray(states.task, np.float64)
    hit = np.linalg.norm(features - tasks, axis=-1) <= 0.003
    np.testing.assert_array_equal(np.asarray(states.reward), hit - 1.0)
    np.testing.assert_array_equal(np.asarray(states.done), hit)
    done = np.asarray(states.done[:, 1:])
    assert np.all(done.any(axis=0)), CORNERS[~done.any(axis=0)]
    assert np.argmax(done, axis=0).max() < 100, np.argmax(done, axis=0)
    assert np.all(np.asarray(states.t[-1]) == env.max_steps)


@pytest.mark.slow
def test_trains_a_few_hundred_steps():
    """sawyer_reach_hard and sawyer_reach_margin differ from sawyer_reach only in the task family (6-7 min each on
    2 busy CPU cores; arm_reach_margin trains the margin family)."""
    name = "sawyer_reach"
    config = TINY_CONFIG.replace(
        env=name, seeds=1, env_steps=400, warmup_steps=64, num_envs=8, batch_size=16, hidden=(16, 16),
        buffer_size=4_000, eval_every=168, grad_clip=TrainConfig.preset(name).sac.grad_clip,
    )  # fmt: skip
    records = []
    summary, _ = runner.loop(programs.build(config), records.append, progress=False)
    assert summary["env_steps"] >= 400 and np.all(np.isfinite(summary["eval_return"]))
    assert all(np.isfinite(r["critic_loss"]).all() for r in records[1:])
