"""The DM Control quadruped on MuJoCo MJX, with goal-reaching and linear tasks (App. C.3).

The model is `suite/quadruped.xml` from the `dm-control` package, read as a file (dm_control itself
is not imported) and simplified exactly as the suite's own walk/run tasks do (`make_model` without
terrain, rangefinders, walls, ball and target): the terrain heightfield geom, the 20 rangefinder
sensors, the four walls, the ball and the target site are removed. Physics runs on MJX
(`impl="jax"`) at the suite's 0.005 s timestep, 4 substeps per 0.02 s control step.

The envs simulate it with `FAST` physics rather than the suite's (`SUITE`), about 11x faster at 16
envs on a CPU (`benchmarks/quadruped_speed.py`), with the same bodies, masses, inertias, geoms,
friction, actuators and integrator: the body's geoms collide with the floor only (the suite's
self-contact pairs stay > 5 cm apart while the legs' coupling holds, tested), MJX keeps the 8 deepest
floor contacts (MuJoCo C never has more touching at once in the fidelity test), and the Newton solver
stops after 8 iterations (100 in the suite); on the CPU, XLA's fusion emitters are off (with them,
programs of 64 envs hung). Over 1 s of random actions the torso XY stays within
5 mm of MuJoCo C's on the suite's physics (tested; docs/environments.md has each change's ratio).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from hipi_jax.envs.base import Env, EnvState, goal_of
from hipi_jax.envs.mjx_suite import models, read_sensor, step_actuated
from hipi_jax.tasks import GoalReach, Linear, TaskFamily

Array = jax.Array

CONTROL_SUBSTEPS = 4  # 0.02 s control step / 0.005 s physics step (the suite's)
TOES = ("front_left", "front_right", "back_right", "back_left")
REMOVED_GEOMS = ("wall_px", "wall_py", "wall_nx", "wall_ny", "terrain")


@dataclasses.dataclass(frozen=True)
class Physics:
    """How the simplified quadruped is simulated: `SUITE` is the suite's own settings, `FAST` the envs'."""

    self_contacts: bool = True  # False: the body's geoms collide with the floor only
    solver: str = "Newton"  # MJCF <option> values
    iterations: int = 100
    ls_iterations: int = 50
    cone: str = "pyramidal"
    max_contact_points: int | None = None  # MJX only: keep the deepest this many contacts (C ignores it)
    integrator: str = "Euler"
    eulerdamp: bool = True
    fusion_emitters: bool = True  # XLA's CPU fusion emitters (`Env.compiler_options`)


SUITE = Physics()
# what the envs run (module docstring; docs/environments.md has the speed-ups and the fidelity check)
FAST = Physics(self_contacts=False, iterations=8, ls_iterations=8, max_contact_points=8, fusion_emitters=False)


def suite_dir() -> Path:
    spec = importlib.util.find_spec("dm_control")
    if spec is None or spec.origin is None:
        raise ImportError("the quadruped envs need the dm-control package (pip install dm-control)")
    return Path(spec.origin).parent / "suite"


def _removed(child: ET.Element) -> bool:
    """Whether `model_xml` drops this element of the suite's MJCF."""
    name = child.get("name", "")
    return (
        (child.tag == "geom" and name in REMOVED_GEOMS)
        or (child.tag == "body" and name == "ball")
        or (child.tag == "site" and name == "target")
        or child.tag == "rangefinder"
    )


def model_xml(floor_size: float = 10.0, physics: Physics = SUITE) -> tuple[str, dict[str, bytes]]:
    """The simplified quadruped MJCF and the include files it needs."""
    root = ET.fromstring((suite_dir() / "quadruped.xml").read_text())
    for parent in root.iter():
        for child in list(parent):
            if _removed(child):
                parent.remove(child)
    root.find(".//geom[@name='floor']").set("size", f"{floor_size} {floor_size} .5")
    if not physics.self_contacts:  # contype 0 & conaffinity 1: a body geom meets the floor (contype 1) only
        for geom in root.find(".//body[@name='torso']").iter("geom"):
            geom.set("contype", "0")
    option = root.find("option")
    for field in ("solver", "iterations", "ls_iterations", "cone", "integrator"):
        option.set(field, str(getattr(physics, field)))
    if not physics.eulerdamp:
        ET.SubElement(option, "flag", eulerdamp="disable")
    if physics.max_contact_points is not None:
        custom = ET.SubElement(root, "custom")
        ET.SubElement(custom, "numeric", name="max_contact_points", data=str(physics.max_contact_points))
    common = suite_dir() / "common"
    assets = {f"./common/{f.name}": f.read_bytes() for f in common.glob("*.xml")}
    return ET.tostring(root, encoding="unicode"), assets


@functools.cache
def load_model(physics: Physics = SUITE):
    """(MjModel, mjx.Model) of the simplified quadruped, built once per process and `physics`."""
    return models(*model_xml(physics=physics))


def unit_circle_goals() -> GoalReach:
    """Goals on the unit circle around the start, reached within 0.3 (App. C.3)."""
    return GoalReach(margin=0.3, low=[-1.0, -1.0], high=[1.0, 1.0], radius=(1.0, 1.0))


def unit_circle_directions() -> Linear:
    """r = ψᵀ v_xy − 0.1‖a‖², ψ on the unit circle (App. C.3 prints +0.1: a control cost is meant)."""
    return Linear(low=[-1.0, -1.0], high=[1.0, 1.0], radius=1.0, control_cost=0.1)


@dataclasses.dataclass(frozen=True, eq=False)
class Quadruped(Env):
    """Starts upright at the origin with a random heading, legs at rest, dropped from the model's
    default height. Observation (56): torso XY (2), heading (cos, sin) (2), torso height (1), torso
    uprightness (1), joint angles (16), joint velocities (16), world-frame torso velocity (3), IMU
    gyro (3), toe force sensors (12, arcsinh as in the suite). Features: torso XY for goal tasks,
    world-frame torso XY velocity for linear tasks."""

    task_family: TaskFamily = dataclasses.field(default_factory=unit_circle_goals)
    max_steps: int = 300
    physics: Physics = FAST

    def compiler_options(self):
        """The CPU fusion emitters off where `physics` says so (see `ReachingArm.compiler_options`)."""
        off = not self.physics.fusion_emitters and jax.default_backend() == "cpu"
        return {"xla_cpu_use_fusion_emitters": False} if off else None

    @property
    def model(self):
        return load_model(self.physics)

    obs_dim = 56
    action_dim = 12

    def _sensor(self, data, name: str) -> Array:
        return read_sensor(self.model[0], data, name)

    def observe(self, data) -> Array:
        xmat = data.xmat[self.model[0].body("torso").id]
        forces = [self._sensor(data, f"force_toe_{leg}") for leg in TOES]
        return jnp.concatenate(
            [
                data.qpos[:2],
                xmat[:2, 0],
                data.qpos[2:3],
                xmat[2:3, 2],
                data.qpos[7:],
                data.qvel[6:],
                data.qvel[:3],
                self._sensor(data, "imu_gyro"),
                jnp.arcsinh(jnp.concatenate(forces)),
            ]
        )

    def features(self, data) -> Array:
        return data.qpos[:2] if isinstance(self.task_family, GoalReach) else data.qvel[:2]

    render_kind = "mujoco"

    def render_model(self):
        return self.model[0]

    def render_record(self, state: EnvState) -> dict[str, Any]:
        return {"qpos": state.sim.qpos}

    def goal_position(self, task: np.ndarray) -> np.ndarray | None:
        """The torso-XY goal on the floor (z = 0); None for the linear (direction) tasks."""
        goal = goal_of(self.task_family, task)
        return None if goal is None else np.array([*goal[0], 0.0], np.float64)

    def render_camera(self) -> dict[str, Any]:
        """Goal tasks: fixed over the start, wide enough for the unit circle of goals; linear tasks: following
        the torso."""
        view = {"distance": 4.5, "azimuth": 90.0, "elevation": -45.0}
        if isinstance(self.task_family, GoalReach):
            return view | {"lookat": (0.0, 0.0, 0.0)}
        return view | {"distance": 3.0, "trackbody": "torso"}

    def control_timestep(self) -> float:
        return float(self.model[0].opt.timestep) * CONTROL_SUBSTEPS

    def init_sim(self, key: Array):
        from mujoco import mjx

        mj_model, model = self.model
        yaw = jax.random.uniform(key, (), minval=-jnp.pi, maxval=jnp.pi)
        qpos = jnp.asarray(mj_model.qpos0, jnp.float32)
        qpos = qpos.at[3:7].set(jnp.stack([jnp.cos(yaw / 2), 0.0, 0.0, jnp.sin(yaw / 2)]))
        data = mjx.make_data(mj_model, impl="jax").replace(qpos=qpos)
        data = mjx.forward(model, data)
        return data, self.observe(data), self.features(data)

    def sim_step(self, sim, action: Array, key: Array):
        data = step_actuated(*self.model, sim, action, CONTROL_SUBSTEPS)
        return data, self.observe(data), self.features(data)


def quadruped_goal() -> Quadruped:
    return Quadruped(task_family=unit_circle_goals())


def quadruped_linear() -> Quadruped:
    return Quadruped(task_family=unit_circle_directions())
