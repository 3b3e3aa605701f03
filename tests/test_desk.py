"""The desk (Fig. 7 right's open substitute): its task family and features by hand, the model's layout, each
scripted demonstrator solving its task on MuJoCo C physics, `hipi-bc collect --scripted`'s input checks; the
MJX env against MuJoCo C and the collected dataset's schema are slow tests (they compile MJX programs)."""

from __future__ import annotations

import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hipi_jax import bc_cli, envs
from hipi_jax.envs import desk
from hipi_jax.tasks import Indicators

ONE_HOT = np.eye(9, dtype=np.float32)


def test_indicator_rewards_are_the_commanded_condition():
    family = Indicators(num_tasks=3)
    features = jnp.asarray([[1.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
    tasks = jnp.eye(3)
    np.testing.assert_array_equal(family.reward(features[:, None], None, tasks[None]), [[1, 0, 1], [0, 0, 0]])
    assert not np.any(family.terminal(features[:, None], tasks[None])) and not family.has_success  # no early end
    np.testing.assert_array_equal(family.candidate_tasks(), np.eye(3))
    drawn = np.asarray(family.sample(jax.random.key(0), 300))
    assert drawn.shape == (300, 3) and np.all(drawn.sum(1) == 1) and set(drawn.argmax(1)) == {0, 1, 2}
    with pytest.raises(ValueError, match="num_tasks >= 1"):
        Indicators(num_tasks=0)


def _qpos(buttons=(0.0, 0.0, 0.0), a=(0.0, 0.0), b=(0.1, 0.0), effector=desk.EFFECTOR_START):
    return jnp.asarray([*buttons, *a, *b, *effector], jnp.float32)


def test_features_by_hand():
    assert desk.TASKS[1] == "press button 2" and desk.TASKS[5] == "block A to region 3"
    (r1x, r1y), _, (r3x, r3y) = desk.REGIONS_XY
    # button 2 pressed past the threshold, button 1 just short of it; A inside region 3, B on region 1's edge
    qpos = _qpos(buttons=(-0.0079, -0.009, 0.0), a=(r3x + 0.03, r3y - 0.03), b=(r1x + 0.0499, r1y))
    np.testing.assert_array_equal(desk.desk_features(qpos), [0, 1, 0, 0, 0, 1, 1, 0, 0])
    qpos = _qpos(a=(r3x + 0.04, r3y - 0.04), b=(r1x + 0.0501, r1y))  # both just outside
    np.testing.assert_array_equal(desk.desk_features(qpos), np.zeros(9))
    env = envs.make("desk")
    rewards = env.task_family.reward(desk.desk_features(_qpos(buttons=(0, -0.01, 0)))[None], None, jnp.eye(9))
    np.testing.assert_array_equal(rewards, ONE_HOT[1])


def test_model_layout():
    mj_model = desk.load_model()[0]
    names = [mj_model.joint(i).name for i in range(mj_model.njnt)]
    assert names[desk.BUTTONS] == ["button1", "button2", "button3"]
    assert names[desk.BLOCK_A] == ["block_a_x", "block_a_y"] and names[desk.BLOCK_B] == ["block_b_x", "block_b_y"]
    assert names[desk.EFFECTOR] == ["effector_x", "effector_y", "effector_z"]
    assert mj_model.nq == mj_model.nv == 10 and mj_model.nu == 3
    pairs = {frozenset((mj_model.geom(g1).name, mj_model.geom(g2).name))
             for g1, g2 in zip(mj_model.pair_geom1, mj_model.pair_geom2, strict=True)}  # fmt: skip
    expected = [("effector", "block_a"), ("effector", "block_b"), ("block_a", "block_b")]
    expected += [("effector", f"button{i}") for i in (1, 2, 3)]
    assert pairs == {frozenset(p) for p in expected}
    assert not np.any(mj_model.geom_contype) and not np.any(mj_model.geom_conaffinity)  # no other contacts
    np.testing.assert_array_equal(mj_model.opt.gravity, 0.0)


def test_starts_keep_the_blocks_apart_and_out_of_the_buttons_way():
    qpos = np.asarray(jax.jit(jax.vmap(desk.start_qpos))(jax.random.split(jax.random.key(0), 2000)))
    a, b = qpos[:, desk.BLOCK_A], qpos[:, desk.BLOCK_B]
    assert np.all(np.linalg.norm(a - b, axis=1) >= desk.START_GAP - 1e-6)
    for block in (a, b):
        assert np.all(block >= np.asarray(desk.START_LOW) - 1e-6) and np.all(block <= np.asarray(desk.START_HIGH))
    np.testing.assert_array_equal(qpos[:, desk.BUTTONS], 0.0)
    np.testing.assert_allclose(qpos[:, desk.EFFECTOR], np.broadcast_to(desk.EFFECTOR_START, (2000, 3)), atol=1e-7)


DESK = envs.make("desk")
_scripted = jax.jit(DESK.scripted_action)


def c_rollout(key, task_index: int, noise: float):
    """One episode of the scripted demonstrator on MuJoCo C: the env's step (target moved by MOVE·a, clipped to
    the workspace, SUBSTEPS physics steps) on `mjData`. Returns the features of every state reached [T, 9]."""
    import mujoco

    mj_model = desk.load_model()[0]
    data = mujoco.MjData(mj_model)
    k_start, k_act = jax.random.split(key)
    data.qpos[:] = np.asarray(desk.start_qpos(k_start))
    data.ctrl[:] = data.qpos[desk.EFFECTOR]
    mujoco.mj_forward(mj_model, data)
    task = jnp.asarray(ONE_HOT[task_index])
    features = []
    for k in jax.random.split(k_act, DESK.max_steps):
        obs = DESK.observe(types.SimpleNamespace(qpos=data.qpos, qvel=data.qvel, ctrl=data.ctrl))
        action = np.asarray(_scripted(k, jnp.asarray(obs, jnp.float32), task, noise))
        data.ctrl[:] = np.clip(data.ctrl + desk.MOVE * action, desk.WORKSPACE_LOW, desk.WORKSPACE_HIGH)
        mujoco.mj_step(mj_model, data, desk.SUBSTEPS)
        features.append(np.asarray(desk.desk_features(jnp.asarray(data.qpos))))
    return np.stack(features)


@pytest.mark.parametrize("task_index", range(9))
def test_each_scripted_demonstrator_solves_its_task_in_most_episodes(task_index):
    keys = jax.random.split(jax.random.key(task_index), 8)
    solved = [c_rollout(k, task_index, noise=0.3)[:, task_index].max() for k in keys]
    assert sum(solved) >= 6, f"{desk.TASKS[task_index]}: solved in {sum(solved)} of 8 episodes"


@pytest.mark.parametrize(
    "extra, message",
    [
        (
            ["--env", "cheetah_velocity", "--scripted"],
            "--scripted: env 'cheetah_velocity' has no scripted demonstrator",
        ),
        (["--env", "desk", "--scripted", "--expert-steps", "5000"], "--expert-steps applies to a trained expert"),
        (["--env", "desk", "--noise", "0.1"], "--noise applies to --scripted demonstrations only"),
        (["--env", "desk", "--scripted", "--noise", "-0.1"], "--noise -0.1 must be a finite number >= 0"),
        (["--env", "desk", "--scripted", "--noise", "nan"], "--noise nan must be a finite number >= 0"),
    ],
)
def test_collect_scripted_refuses_bad_input(tmp_path, capsys, extra, message):
    out = tmp_path / "demos.npz"
    with pytest.raises(SystemExit) as e:
        bc_cli.main(["collect", "--out", str(out), *extra])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"hipi-bc: error: {message}") and "\n" not in err
    assert not out.exists()


@pytest.mark.slow
def test_mjx_desk_matches_mujoco_c_on_a_scripted_episode():
    """The MJX env's step (`Desk.sim_step`) against `c_rollout`'s MuJoCo C step on the same actions."""
    import mujoco

    env, task_index = envs.make("desk"), 4
    task = jnp.asarray(ONE_HOT[task_index])
    key = jax.random.key(7)
    k_start, k_act = jax.random.split(key)
    state = env.begin(env.init_sim(k_start), task, k_start)
    mj_model = desk.load_model()[0]
    data = mujoco.MjData(mj_model)
    data.qpos[:] = np.asarray(state.sim.qpos)
    data.ctrl[:] = data.qpos[desk.EFFECTOR]
    mujoco.mj_forward(mj_model, data)
    step = jax.jit(env.step)
    worst = 0.0
    for k in jax.random.split(k_act, env.max_steps):
        action = env.scripted_action(k, state.obs, task, 0.3)
        state = step(state, action)
        data.ctrl[:] = np.clip(data.ctrl + desk.MOVE * np.asarray(action), desk.WORKSPACE_LOW, desk.WORKSPACE_HIGH)
        mujoco.mj_step(mj_model, data, desk.SUBSTEPS)
        worst = max(worst, float(np.abs(np.asarray(state.sim.qpos) - data.qpos).max()))
        data.qpos[:], data.qvel[:] = np.asarray(state.sim.qpos), np.asarray(state.sim.qvel)  # one-step error only
    assert worst < 1e-4, worst
    assert float(state.reward) == 1.0  # the demonstrator solved block A to region 2 on MJX too


@pytest.mark.slow
def test_collect_scripted_writes_a_valid_dataset(tmp_path):
    from hipi_jax import dataset

    out = tmp_path / "desk.npz"
    assert bc_cli.main(["collect", "--env", "desk", "--scripted", "--episodes", "18", "--out", str(out)]) == 0
    data = dataset.load(out)  # the schema's checks
    assert data.num_trajectories == 18 and data.obs.shape == (18, 128, 20) and np.all(data.mask)
    np.testing.assert_array_equal(np.argmax(data.tasks, 1), np.arange(18) % 9)
    np.testing.assert_array_equal(data.features, np.asarray(data.features, bool))
    assert np.all(np.abs(data.actions) <= 1.0)
