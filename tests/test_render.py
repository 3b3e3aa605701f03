"""hipi_jax.render: goal positions against the env's features, MuJoCo frames, video files, 2-D trajectory plots.

MuJoCo states are set on the host (no MJX compile); conftest.py selects offscreen GL before mujoco is imported.
"""

from __future__ import annotations

import dataclasses
import types

import imageio.v3 as iio
import jax
import mujoco
import numpy as np
import pytest

from hipi_jax import envs, render
from hipi_jax.envs.base import EnvState
from hipi_jax.episodes import Episodes, rollout

# imageio-ffmpeg reads .mp4 files through a subprocess (fork + exec), which JAX warns about
pytestmark = pytest.mark.filterwarnings(r"ignore:os\.fork\(\) was called:RuntimeWarning")


def random_act(action_dim: int):
    return lambda key, obs, task: jax.random.uniform(key, (obs.shape[0], action_dim), minval=-1.0, maxval=1.0)


def poses(env, n: int, seed: int = 0) -> np.ndarray:
    """n random joint configurations [n, nq] of env's render model (free joints keep a unit quaternion)."""
    model = env.render_model()
    qpos = np.tile(model.qpos0, (n, 1)) + np.random.default_rng(seed).normal(0.0, 0.6, (n, model.nq))
    if model.jnt_type[0] == mujoco.mjtJoint.mjJNT_FREE:
        qpos[:, 2:7] = model.qpos0[2:7]
    return qpos


def forward(model, qpos: np.ndarray):
    data = mujoco.MjData(model)
    data.qpos[:] = qpos
    mujoco.mj_forward(model, data)
    return data


def project(model, data, camera: int, point: np.ndarray, width: int, height: int) -> np.ndarray:
    """Pixel (column, row) of a world point seen by a fixed camera of the model."""
    local = data.cam_xmat[camera].reshape(3, 3).T @ (point - data.cam_xpos[camera])  # camera looks along -z
    focal = 0.5 * height / np.tan(np.deg2rad(model.cam_fovy[camera]) / 2)
    return np.array([width / 2 + focal * local[0] / -local[2], height / 2 - focal * local[1] / -local[2]])


def fake_episodes(env, qpos: np.ndarray, mask: np.ndarray, tasks: np.ndarray) -> Episodes:
    """Episodes [n, T] with only what rendering reads: recorded qpos, mask, tasks (features = 0)."""
    n, steps = mask.shape
    zeros = np.zeros((n, steps, env.task_family.feature_dim), np.float32)
    return Episodes(
        obs=zeros,
        actions=zeros,
        features=zeros,
        rewards=np.zeros((n, steps)),
        done=np.zeros((n, steps), bool),
        mask=mask,
        tasks=tasks,
        recorded={"qpos": qpos},
    )


def test_check_video_names_the_bad_value():
    render.check_video("reacher_goal", "a/b.mp4")
    render.check_video(envs.make("nav2d"), "x.png")
    assert ".gif" in render.video_suffixes("arm_reach") and ".mp4" in render.video_suffixes("point_goal")
    assert render.video_suffixes("walker_linear") == (".mp4", ".gif") and render.video_suffixes("gridworld") == ()
    with pytest.raises(ValueError, match=r"^--video x\.avi: the suffix must be \.mp4 or \.gif for reacher_goal$"):
        render.check_video("reacher_goal", "x.avi")
    with pytest.raises(ValueError, match=r"x\.png: the suffix must be \.mp4 or \.gif for WalkerLinear"):
        render.check_video(envs.make("walker_linear"), "x.png")
    with pytest.raises(ValueError, match=r"--video g\.gif: gridworld cannot be rendered; envs that can: .*nav2d"):
        render.check_video("gridworld", "g.gif")
    assert "gridworld" not in render.renderable_envs() and "quadruped_linear" in render.renderable_envs()


@pytest.mark.parametrize("name", ["reacher_goal", "reacher_discrete", "finger_goal", "arm_reach", "quadruped_goal"])
def test_goal_drawn_where_the_features_are(name):
    """For a state whose features are the goal, the drawn goal sits on the effector the features measure."""
    env = envs.make(name)
    model = env.render_model()
    if name.startswith("arm"):
        from hipi_jax.envs.jaco import load_model  # the physics model: the render model must match it

        physics = load_model()[0]
        effector = lambda data: data.site_xpos[model.site("gripsite").id]
    elif name.startswith("reacher"):
        physics = env.suite.mj_model
        effector = lambda data: data.geom_xpos[model.geom("finger").id]
    elif name.startswith("finger"):
        physics = env.suite.mj_model
        effector = lambda data: data.site_xpos[model.site("tip").id]
    else:
        physics = model
        effector = lambda data: data.xpos[model.body("torso").id] * [1, 1, 0]  # on the floor
    for qpos in poses(env, 3):
        features = np.asarray(env.features(forward(physics, qpos)))
        if name == "reacher_discrete":  # the target nearest the fingertip, compared with the target itself
            targets = env.task_family.targets
            task = np.eye(len(targets))[np.argmin(np.linalg.norm(targets - features, axis=-1))]
            features = targets[task.argmax()]
            np.testing.assert_allclose(env.goal_position(task)[:2], features, atol=1e-6)
            continue
        np.testing.assert_allclose(env.goal_position(features), effector(forward(model, qpos)), atol=1e-5)
    assert envs.make("quadruped_linear").goal_position(np.array([1.0, 0.0])) is None
    assert envs.make("walker_linear").goal_position(np.zeros(7)) is None


def test_reacher_frames_show_the_goal_at_the_fingertip():
    env = envs.make("reacher_goal")
    model = env.render_model()
    qpos = poses(env, 4)
    mask = np.array([True, True, True, False])
    tip = forward(model, qpos[1]).geom_xpos[model.geom("finger").id]
    frames = render.mujoco_frames(env, {"qpos": qpos}, mask, tip[:2], width=160, height=120)
    bare = render.mujoco_frames(env, {"qpos": qpos}, mask, tip[:2], width=160, height=120, goal=False)
    assert frames.shape == (3, 120, 160, 3) and frames.dtype == np.uint8
    assert frames.std() > 10 and not np.array_equal(frames[0], frames[2])  # not blank; the arm moves
    for t in range(3):
        changed = np.argwhere((frames[t] != bare[t]).any(-1))  # (row, col) of the goal sphere's pixels
        assert len(changed) > 0
        sphere = project(model, forward(model, qpos[t]), 0, env.goal_position(tip[:2]), 160, 120)
        assert np.abs(changed.mean(0)[::-1] - sphere).max() < 3  # the sphere is drawn where it belongs
    # at step 1 the goal is the fingertip itself
    np.testing.assert_allclose(project(model, forward(model, qpos[1]), 0, tip, 160, 120), sphere, atol=0.5)
    # recorded s_0 … s_T (one more state than steps): the state the last step reached is drawn too
    reached = render.mujoco_frames(env, {"qpos": qpos}, [True, True, False], tip[:2], width=160, height=120)
    np.testing.assert_array_equal(reached, frames)
    assert env.render_camera() is None and model.camera(0).name == "fixed"  # the suite's top-down camera
    assert model.geom_group[model.geom("target").id] == 5  # the suite's own (random) target is hidden


def test_render_record_keeps_qpos():
    env = envs.make("reacher_goal")
    state = EnvState(types.SimpleNamespace(qpos=np.ones((3, 2))), *[None] * 8)
    assert set(env.render_record(state)) == {"qpos"} and env.render_record(state)["qpos"].shape == (3, 2)
    assert envs.make("nav2d").render_record(state) is None
    assert env.control_timestep() == pytest.approx(0.02) and render.default_fps(env, stride=2) == pytest.approx(25)


def test_write_video_round_trip(tmp_path):
    frames = np.random.default_rng(0).integers(0, 255, (6, 48, 64, 3), dtype=np.uint8)
    render.write_video(frames, tmp_path / "v.mp4", fps=10)
    render.write_video(frames, tmp_path / "v.gif", fps=10)
    render.write_video(frames, tmp_path / "fast.gif", fps=100)  # GIFs play at most 50 frames/s
    assert iio.imread(tmp_path / "v.mp4", index=None).shape == (6, 48, 64, 3)
    gif = iio.imread(tmp_path / "v.gif", index=None)
    assert gif.shape[:3] == (6, 48, 64)
    assert iio.immeta(tmp_path / "v.gif", index=0)["duration"] == 100
    assert iio.imread(tmp_path / "fast.gif", index=None).shape[0] == 3
    with pytest.raises(ValueError, match="suffix must be .mp4 or .gif"):
        render.write_video(frames, tmp_path / "v.webm", fps=10)


def test_render_episodes_mujoco_video(tmp_path):
    env = envs.make("reacher_goal")
    qpos = poses(env, 6).reshape(2, 3, -1)
    mask = np.array([[True, True, True], [True, True, False]])
    episodes = fake_episodes(env, qpos, mask, np.array([[0.1, 0.0], [0.0, -0.1]], np.float32))
    render.render_episodes(env, episodes, tmp_path / "r.mp4", width=160, height=120)
    hold = round(render.HOLD_SECONDS * 50)  # reacher: 50 control steps per second
    assert iio.imread(tmp_path / "r.mp4", index=None).shape == (3 + 2 + 2 * hold, 120, 160, 3)
    render.render_episodes(env, episodes, tmp_path / "r.gif", max_episodes=1, fps=10, width=160, height=120)
    assert iio.imread(tmp_path / "r.gif", index=None).shape[0] == 3  # Pillow merges the held copies of the last
    with pytest.raises(ValueError, match="record=env.render_record"):
        render.render_episodes(env, episodes.replace(recorded=None), tmp_path / "r.mp4")
    with pytest.raises(ValueError, match="suffix must be .mp4 or .gif"):
        render.render_episodes(env, episodes, tmp_path / "r.png")


def nav2d_episodes(env) -> Episodes:
    """Two hand-made nav2d episodes of 6 steps: one walks up the left edge, one goes right along the bottom
    and reaches its goal at step 3."""
    height, width = env.grid.shape
    start = np.array([height - 0.5, 0.5]) / [height, width]
    walk = np.linspace(0.0, 0.3, 7)[:, None]
    positions = np.stack([start - walk * [1.0, 0.0], start + walk * [0.0, 1.0]]).astype(np.float32)
    tasks = np.stack([env.task_family.support[0], positions[1, 3]])
    mask = np.array([[True] * 6, [True] * 3 + [False] * 3])
    done = np.zeros((2, 6), bool)
    done[1, 2] = True
    return Episodes(
        obs=positions[:, :-1],
        actions=np.zeros((2, 6, 2), np.float32),
        features=positions[:, 1:],
        rewards=np.zeros((2, 6), np.float32),
        done=done,
        mask=mask,
        tasks=tasks,
    )


@pytest.mark.parametrize("name", ["nav2d", "point_goal"])
def test_trajectory_plots(name, tmp_path):
    if name == "nav2d":
        env = envs.make(name)
        episodes = nav2d_episodes(env)
    else:  # a real rollout, with the record hook the eval command passes (None for the 2-D envs)
        env = dataclasses.replace(envs.make(name), max_steps=6)
        episodes = rollout(env, random_act(env.action_dim), jax.random.PRNGKey(0), 3, record=env.render_record)
    render.render_episodes(env, episodes, tmp_path / "t.png")
    image = iio.imread(tmp_path / "t.png")
    assert image.ndim == 3 and image.shape[0] > 100 and image.std() > 10
    render.render_episodes(env, episodes, tmp_path / "t.gif", max_episodes=2)
    gif = iio.imread(tmp_path / "t.gif", index=None)
    assert 2 <= gif.shape[0] <= 7 and not np.array_equal(gif[0], gif[-1])  # the paths grow
    render.render_episodes(env, episodes, tmp_path / "t.mp4", fps=10)
    assert iio.imread(tmp_path / "t.mp4", index=None).shape[0] == 7 + 10  # a frame per step, then 1 s held
    # the goal marker sits at the task's position in plot coordinates, inside the map
    task = np.asarray(episodes.tasks[0])
    goal = env.goal_position(task)
    np.testing.assert_allclose(goal[:2], env.plane_xy(task))
    walls, extent = env.plane_map()
    assert extent[0] <= goal[0] <= extent[1] and extent[2] <= goal[1] <= extent[3]
    if walls is not None:  # nav2d: goals are free cells, and the map's row 0 is at the top
        assert walls[int(extent[3] - goal[1]), int(goal[0])] == 0
        start = env.plane_xy(np.asarray(episodes.obs[0, 0]))
        assert start[0] < 1 and start[1] < 1  # the start cell is the lower-left corner
