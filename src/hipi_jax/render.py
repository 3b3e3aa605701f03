"""Rendering evaluated episodes (`hipi-eval --video FILE`), on the host and outside jit.

MuJoCo envs (`env.render_kind == "mujoco"`) are redrawn from what `rollout(..., record=env.render_record)`
kept of every state, with the task's goal as a translucent sphere of the success radius, into an .mp4
or .gif. The 2-D envs (`"plane"`: nav2d, point_goal) are drawn as trajectory plots: a .png, or an
animated .gif/.mp4. On a machine without a display, call `headless_gl()` before mujoco is imported
(it selects EGL: needs libEGL and a Mesa or NVIDIA EGL driver, e.g. Debian's libegl1 + libegl-mesa0).
"""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from hipi_jax import rundir
from hipi_jax.envs.base import Env, goal_of

SUFFIXES = {"mujoco": (".mp4", ".gif"), "plane": (".png", ".gif", ".mp4")}
DEFAULT_FPS = 30.0
MAX_GIF_FPS = 50.0  # GIF delays are in 1/100 s, and viewers slow down delays under 0.02 s
GOAL_RGBA = (0.1, 0.9, 0.2, 0.45)
MIN_GOAL_RADIUS = 0.02  # × the model's extent, so goals with tiny margins stay visible
HOLD_SECONDS = 0.5  # the last frame of each episode is shown this long
REACHED, MISSED = "tab:green", "tab:red"


def headless_gl() -> None:
    """Where MUJOCO_GL is unset, there is no DISPLAY and libEGL is installed, set MUJOCO_GL=egl
    (offscreen rendering). Must run before mujoco is first imported: mujoco picks its GL backend at
    import. Without libEGL nothing is set, so importing mujoco (and simulating) still works."""
    import ctypes.util

    if "MUJOCO_GL" not in os.environ and not os.environ.get("DISPLAY") and ctypes.util.find_library("EGL"):
        os.environ["MUJOCO_GL"] = "egl"


def check_gl() -> None:
    """Raise ValueError (one line) unless MuJoCo can open an offscreen GL context here."""
    try:
        import mujoco

        model = mujoco.MjModel.from_xml_string("<mujoco><worldbody><geom size='.1'/></worldbody></mujoco>")
        with mujoco.Renderer(model, 8, 8) as renderer:
            renderer.update_scene(mujoco.MjData(model))
            renderer.render()
    except Exception as e:  # noqa: BLE001 - any failure means: this machine cannot render
        reason = str(e).splitlines()[0][:100] if str(e) else type(e).__name__
        raise ValueError(
            f"MuJoCo cannot render here ({reason}; MUJOCO_GL={os.environ.get('MUJOCO_GL', 'unset')}): a machine "
            "without a display needs libEGL (Debian: apt-get install libegl1 libegl-mesa0) or MUJOCO_GL=osmesa"
        ) from None


# ---- what can be rendered -------------------------------------------------------------------------


def _env_and_label(env: Env | str) -> tuple[Env, str]:
    if isinstance(env, str):
        from hipi_jax import envs

        return envs.make(env), env
    return env, type(env).__name__


def video_suffixes(env: Env | str) -> tuple[str, ...]:
    """The file suffixes `render_episodes` writes for `env` (an env or a registered name); () if none."""
    return SUFFIXES.get(_env_and_label(env)[0].render_kind, ())


def renderable_envs() -> list[str]:
    """The registered env names that can be rendered."""
    from hipi_jax import envs

    return [name for name in envs.names() if video_suffixes(name)]


def check_video(env: Env | str, path: str | os.PathLike) -> None:
    """Raise ValueError (one line naming the bad value and what is allowed) unless `render_episodes`
    can write `path` for `env`: call it before any work."""
    env, label = _env_and_label(env)
    allowed = video_suffixes(env)
    if not allowed:
        raise ValueError(f"--video {path}: {label} cannot be rendered; envs that can: {', '.join(renderable_envs())}")
    if Path(path).suffix.lower() not in allowed:
        raise ValueError(f"--video {path}: the suffix must be {' or '.join(allowed)} for {label}")
    if env.render_kind == "mujoco":
        check_gl()


# ---- writing ---------------------------------------------------------------------------------------


def write_video(frames: np.ndarray, path: str | os.PathLike, fps: float) -> None:
    """Write uint8 frames [T, H, W, 3] to an .mp4 (H.264, via imageio-ffmpeg) or a looping .gif (Pillow).
    A .gif plays at most 50 frames/s: faster videos keep every k-th frame."""
    path = Path(path)
    suffix = path.suffix.lower()
    frames = np.asarray(frames, np.uint8)
    if frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
        raise ValueError(f"frames must be a non-empty uint8 [T, H, W, 3] array, got shape {frames.shape}")
    if not fps > 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    if suffix == ".mp4":
        import imageio.v2 as imageio

        with warnings.catch_warnings(), rundir.atomic_path(path) as tmp:
            # JAX warns on any fork; imageio-ffmpeg's fork is followed by exec
            warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called", category=RuntimeWarning)
            writer = imageio.get_writer(tmp, format="FFMPEG", fps=fps, codec="libx264", quality=8, macro_block_size=2)
            with writer:
                for frame in frames:
                    writer.append_data(frame)
    elif suffix == ".gif":
        from PIL import Image

        every = math.ceil(fps / MAX_GIF_FPS)
        images = [Image.fromarray(frame) for frame in frames[::every]]
        duration = round(1000.0 * every / fps)
        with rundir.atomic_open(path, "wb") as f:
            images[0].save(f, format="GIF", save_all=True, append_images=images[1:], duration=duration, loop=0)
    else:
        raise ValueError(f"{path}: the suffix must be .mp4 or .gif")


# ---- MuJoCo envs -----------------------------------------------------------------------------------


def _camera(env: Env, model) -> Any:
    """The camera for `renderer.update_scene`: a camera id/name of the model, or a free `MjvCamera`."""
    import mujoco

    spec = env.render_camera()
    if isinstance(spec, str | int):
        return spec
    if spec is None and model.ncam > 0:
        return 0
    camera = mujoco.MjvCamera()
    mujoco.mjv_defaultFreeCamera(model, camera)  # frames the whole model
    for field, value in (spec or {}).items():
        if field == "trackbody":
            camera.type = mujoco.mjtCamera.mjCAMERA_TRACKING
            camera.trackbodyid = model.body(value).id
        else:
            setattr(camera, field, value)
    return camera


def _add_sphere(scene, position: np.ndarray, radius: float, rgba: tuple[float, ...]) -> None:
    """Append a sphere to an updated `mjvScene` (drawn by the next render)."""
    import mujoco

    if scene.ngeom >= scene.maxgeom:
        return
    mujoco.mjv_initGeom(
        scene.geoms[scene.ngeom],
        mujoco.mjtGeom.mjGEOM_SPHERE,
        np.full(3, radius),
        np.asarray(position, np.float64),
        np.eye(3).ravel(),
        np.asarray(rgba, np.float32),
    )
    scene.ngeom += 1


def goal_sphere(env: Env, task: np.ndarray, model) -> tuple[np.ndarray, float] | None:
    """(world position, radius) of the sphere drawn for `task`'s goal: the success radius, at least
    MIN_GOAL_RADIUS × the model's extent; None where the task is not a location."""
    position = env.goal_position(np.asarray(task))
    if position is None:
        return None
    goal = goal_of(env.task_family, np.asarray(task))
    margin = goal[1] if goal is not None else 0.0
    return np.asarray(position, np.float64), max(margin, MIN_GOAL_RADIUS * float(model.stat.extent))


def mujoco_frames(
    env: Env,
    recorded: dict[str, np.ndarray],
    mask: np.ndarray,
    task: np.ndarray,
    width: int = 320,
    height: int = 240,
    *,
    goal: bool = True,
    stride: int = 1,
    fancy: bool = False,
) -> np.ndarray:
    """Frames uint8 [T', H, W, 3] of one episode: every `stride`-th step with `mask` [T] True, each state
    rebuilt from `recorded` (mjData field -> [T, ...], from `env.render_record`) by `mj_forward`. Where
    `recorded` has T + 1 steps (s_0 … s_T), the state the last step reached is drawn too.
    `goal` draws the goal sphere; `fancy` turns on shadows, reflections and the skybox (slow on a CPU)."""
    import mujoco

    model = env.render_model()
    if model is None:
        raise ValueError(f"{type(env).__name__} has no MuJoCo model to render")
    if width > model.vis.global_.offwidth or height > model.vis.global_.offheight:
        import copy

        model = copy.deepcopy(model)
        model.vis.global_.offwidth = max(width, model.vis.global_.offwidth)
        model.vis.global_.offheight = max(height, model.vis.global_.offheight)
    recorded = {name: np.asarray(value) for name, value in recorded.items()}
    mask = np.asarray(mask, bool)
    if any(len(value) == len(mask) + 1 for value in recorded.values()):
        mask = np.append(mask, mask[-1]) | np.append(False, mask)  # and the step after the last
    steps = np.flatnonzero(mask)[::stride]
    sphere = goal_sphere(env, task, model) if goal else None
    camera = _camera(env, model)
    data = mujoco.MjData(model)
    frames = np.empty((len(steps), height, width, 3), np.uint8)
    with mujoco.Renderer(model, height, width) as renderer:
        for flag in ("mjRND_SHADOW", "mjRND_REFLECTION", "mjRND_SKYBOX"):
            renderer.scene.flags[getattr(mujoco.mjtRndFlag, flag)] = fancy
        for i, t in enumerate(steps):
            for name, value in recorded.items():
                getattr(data, name)[...] = value[t]
            mujoco.mj_forward(model, data)
            renderer.update_scene(data, camera)
            if sphere is not None:
                _add_sphere(renderer.scene, *sphere, GOAL_RGBA)
            frames[i] = renderer.render()
    return frames


# ---- 2-D envs --------------------------------------------------------------------------------------


def _plane_episodes(env: Env, episodes) -> tuple[list[np.ndarray], list, np.ndarray]:
    """Per episode: its path in plot coordinates [L + 1, 2] (start, then φ(s_{t+1}) of each step: for the
    plane envs observations and features are positions), (goal xy, radius) or None, and success [n]."""
    obs, features, mask = (np.asarray(x) for x in (episodes.obs, episodes.features, episodes.mask))
    tasks = np.asarray(episodes.tasks)
    paths, goals = [], []
    for i in range(len(mask)):
        steps = int(mask[i].sum())
        paths.append(env.plane_xy(np.concatenate([obs[i, :1], features[i, :steps]])))
        goal = goal_of(env.task_family, tasks[i])
        if goal is None:
            goals.append(None)
            continue
        centre = env.plane_xy(goal[0])
        radius = np.linalg.norm(env.plane_xy(goal[0] + np.array([goal[1], 0.0])) - centre)
        goals.append((centre, float(radius)))
    return paths, goals, np.asarray(episodes.success)


def _plane_figure(env: Env, paths: list[np.ndarray], goals: list, success: np.ndarray):
    """An Agg figure of the map with each path, start and goal; returns (figure, path lines, head markers)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Circle

    fig = Figure(figsize=(4.8, 4.8), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    walls, extent = env.plane_map()
    if walls is not None:
        ax.imshow(walls, cmap="Greys", vmin=0, vmax=1.5, origin="upper", extent=extent, interpolation="nearest")
    ax.set_xlim(extent[0], extent[1])
    ax.set_ylim(extent[2], extent[3])
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    lines, heads = [], []
    for path, goal, ok in zip(paths, goals, success, strict=True):
        color = REACHED if ok else MISSED
        lines.append(ax.plot(path[:, 0], path[:, 1], color=color, lw=1.2, alpha=0.8)[0])
        heads.append(ax.plot(path[-1:, 0], path[-1:, 1], "o", color=color, ms=4)[0])
        ax.plot(path[0, 0], path[0, 1], "o", color="black", ms=4)
        if goal is not None:
            ax.add_patch(Circle(goal[0], goal[1], fill=False, color=color, ls="--", lw=0.8))
            ax.plot(goal[0][0], goal[0][1], "*", color=color, ms=11, markeredgecolor="black", markeredgewidth=0.5)
    legend = [
        Line2D([], [], color=REACHED, label="reached"),
        Line2D([], [], color=MISSED, label="not reached"),
        Line2D([], [], ls="", marker="o", color="black", label="start"),
        Line2D([], [], ls="", marker="*", color="gray", markeredgecolor="black", label="goal"),
    ]
    ax.legend(handles=legend, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=4, fontsize=8, frameon=False)
    ax.set_title(f"{int(np.sum(success))}/{len(paths)} goals reached", fontsize=10)
    fig.tight_layout()
    return fig, lines, heads


def _figure_rgb(fig) -> np.ndarray:
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()


def trajectory_png(env: Env, episodes, path: str | os.PathLike) -> None:
    """A static plot (.png) of the episodes of a plane env: map, paths, starts and goals, success coloured."""
    fig, _, _ = _plane_figure(env, *_plane_episodes(env, episodes))
    with rundir.atomic_open(path, "wb") as f:
        fig.savefig(f, format="png")


def trajectory_frames(env: Env, episodes, max_frames: int = 100) -> np.ndarray:
    """Frames uint8 [F, H, W, 3] of the paths growing step by step (at most `max_frames` steps shown)."""
    paths, goals, success = _plane_episodes(env, episodes)
    fig, lines, heads = _plane_figure(env, paths, goals, success)
    longest = max(len(p) for p in paths)
    title = fig.axes[0].get_title()
    frames = []
    for end in np.unique(np.linspace(1, longest, min(longest, max_frames)).round().astype(int)):
        for line, head, points in zip(lines, heads, paths, strict=True):
            shown = points[:end]
            line.set_data(shown[:, 0], shown[:, 1])
            head.set_data(shown[-1:, 0], shown[-1:, 1])
        fig.axes[0].set_title(f"step {end - 1}/{longest - 1}: {title}", fontsize=10)
        frames.append(_figure_rgb(fig))
    return np.stack(frames)


def trajectory_gif(env: Env, episodes, path: str | os.PathLike, fps: float = DEFAULT_FPS) -> None:
    """An animation (.gif or .mp4) of the paths of a plane env growing step by step; the last frame is held."""
    frames = trajectory_frames(env, episodes)
    hold = np.repeat(frames[-1:], max(1, round(2 * HOLD_SECONDS * fps)), axis=0)
    write_video(np.concatenate([frames, hold]), path, fps)


# ---- the entry point -------------------------------------------------------------------------------


def _first(episodes, n: int):
    """The first n episodes, as numpy arrays."""
    import jax

    return jax.tree.map(lambda x: np.asarray(x)[:n], episodes)


def default_fps(env: Env, stride: int = 1) -> float:
    """Real-time playback: one frame per `stride` env steps of `env.control_timestep()`, else 30."""
    dt = env.control_timestep()
    return 1.0 / (dt * stride) if dt else DEFAULT_FPS


def render_episodes(
    env: Env,
    episodes,
    path: str | os.PathLike,
    fps: float | None = None,
    max_episodes: int = 4,
    *,
    width: int = 320,
    height: int = 240,
    stride: int = 1,
    fancy: bool = False,
) -> None:
    """Render the first `max_episodes` of `episodes` (an `Episodes`, host or device arrays) to `path`.

    MuJoCo envs: the episodes one after another (each held for HOLD_SECONDS at its end), .mp4 or .gif;
    `episodes.recorded` must come from `rollout(..., record=env.render_record)`. Plane envs: .png (static),
    .gif or .mp4 (animated; `fps` defaults to 30). Other envs or suffixes raise ValueError.
    """
    check_video(env, path)
    if max_episodes < 1 or stride < 1:
        raise ValueError(f"max_episodes and stride must be >= 1, got {max_episodes} and {stride}")
    episodes = _first(episodes, max_episodes)
    suffix = Path(path).suffix.lower()
    if env.render_kind == "plane":
        if suffix == ".png":
            trajectory_png(env, episodes, path)
        else:
            trajectory_gif(env, episodes, path, fps or DEFAULT_FPS)
        return
    if episodes.recorded is None:
        raise ValueError("the episodes carry no render records: roll out with record=env.render_record")
    fps = fps or default_fps(env, stride)
    hold = max(1, round(HOLD_SECONDS * fps))
    videos = []
    for i in range(len(episodes.mask)):
        recorded = {name: value[i] for name, value in episodes.recorded.items()}
        frames = mujoco_frames(
            env, recorded, episodes.mask[i], episodes.tasks[i], width, height, stride=stride, fancy=fancy
        )
        videos += [frames, np.repeat(frames[-1:], hold, axis=0)]
    write_video(np.concatenate(videos), path, fps)
