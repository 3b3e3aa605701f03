"""Meta-World's Sawyer arm on MuJoCo MJX, reaching for 3-D goals (Fig. 5 and Fig. 6 right, App. C.6).

The model is Meta-World's own `sawyer_xyz/sawyer_reach_v3.xml` with the files it includes
(`objects/assets/xyz_base.xml`, `xyz_base_dependencies.xml`, `scene/basic_scene.xml`), read as package
data of the `metaworld` package (3.1.1; its Python code is not imported: it needs gymnasium and pins an old
mujoco). As Meta-World does, the hand is moved by a mocap body welded to it (`SawyerXYZEnv.set_xyz_action`):
an action a ∈ [−1, 1]³ adds a/100 m to the mocap's position, clipped to the reach task's hand box
(−0.5, 0.4, 0.05)–(0.5, 1, 0.5); the mocap keeps the hand pointing down; the physics then runs 5 steps of
0.0025 s (the scene's timestep and integrator, MuJoCo's semi-implicit Euler) per control step, and positions
are recomputed for the state reached (Meta-World calls mj_forward). The weld's data are the ones
Meta-World's `reset_mocap_welds` writes: the hand's frame on the mocap's, torque scale 5.

The achieved goal is Meta-World's `tcp_center`, the midpoint of the claws' tip sites, which its reach task
measures the distance to the goal from (it sits 0.045 m below the `hand` body, whose position is the hand
XYZ of Meta-World's observation); goals are uniform in the task's goal box (−0.1, 0.8, 0.05)–(0.1, 0.9, 0.3),
which is laid out for that point: with the `hand` body the box's low far corners are out of reach.
Episodes are capped at C.6's 150 steps. Meta-World's reset holds the mocap at the hand's start
(0, 0.6, 0.2) for 50 control steps from the model's reference pose and leaves the arm still moving (joints
at up to 1.7 rad/s, the hand 5 mm from where it comes to rest); here the same procedure runs until the arm
is at rest (SETTLE_STEPS, once per process with MuJoCo C) and every episode starts there, with zero velocity.

Changes for MJX and for a reaching task:
- the gripper is dropped: its two claw bodies (0.016 kg each) with their slide joints and position
  actuators, so the action has no 4th (gripper) component; reaching needs none. A site at the open claws'
  tip midpoint in the hand's frame (0.045, 0, 0) stands in for `tcp_center`;
- the object (a free body, which Meta-World's reach task places on the table and never rewards) and the
  goal site are dropped; the table, walls, floor and lights of `basic_scene.xml` are only in the drawing
  model (`render_model`);
- every geom's collisions are off (reaching in free space needs none);
- the Newton solver stops after SOLVER_ITERATIONS iterations instead of the scene's 50: MuJoCo C needs 1
  on this model (the weld's six rows, plus a joint limit's row when one is hit), 2 while a joint limit is
  violated (as in the reset from the reference pose, where a cap of 1 leaves the converged trajectory by
  centimetres); with 4, C's trajectories equal the 50-iteration ones exactly. The scene's elliptic friction
  cone becomes pyramidal: there are no contacts, so nothing changes, and MJX's elliptic-cone code fails on
  a model that has none.
Over 150 random actions, `tcp_center` of this model stays within 2 mm (1.7 mm at most) of the unmodified
Meta-World model's (MuJoCo C, gripper held open, object on the table; tested).

MJX implements MuJoCo 3.x's weld, whose reference acceleration damps J·v. MuJoCo 4.0's C engine changed the
weld's velocity term: at rest MJX and MuJoCo 4.0 C agree to float precision, but while the arm moves their
accelerations differ by ~1%, so over an episode of random actions `tcp_center` drifts up to ~0.25 mm from
MuJoCo 4.0 C's (tested with a bound of 0.3 mm), while MuJoCo 3.3 C (Meta-World's pinned version) stays within
5e-7 m of MJX (checked once, in a separate environment).
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

from hipi_jax.envs.mjx_suite import ReachingArm, models
from hipi_jax.tasks import GoalMargin, GoalReach, TaskFamily

Array = jax.Array

PHYSICS_TIMESTEP = 0.0025  # basic_scene.xml
FRAME_SKIP = 5  # SawyerXYZEnv's frame_skip: a 0.0125 s control step
ACTION_SCALE = 1.0 / 100  # SawyerXYZEnv's action_scale: metres of mocap motion per unit action
HAND_LOW = (-0.5, 0.40, 0.05)  # SawyerReachEnvV3's hand_low/high, which bound the mocap
HAND_HIGH = (0.5, 1.0, 0.5)
HAND_INIT = (0.0, 0.6, 0.2)  # SawyerReachEnvV3's hand_init_pos, where the reset holds the mocap
MOCAP_QUAT = (1.0, 0.0, 1.0, 0.0)  # set_xyz_action's mocap_quat (MuJoCo and MJX normalise it)
SETTLE_STEPS = 400  # control steps of the reset (Meta-World: 50); the joint speeds end below 1e-9 rad/s
GOAL_LOW = (-0.1, 0.8, 0.05)  # SawyerReachEnvV3's goal_low/high
GOAL_HIGH = (0.1, 0.9, 0.3)
SOLVER_ITERATIONS = 4
TCP_IN_HAND = (0.045, 0.0, 0.0)  # the open claws' tip midpoint in the hand's frame (xyz_base.xml)
TCP_SITE = "tcp_center"
DROPPED_BODIES = ("rightclaw", "rightpad", "leftclaw", "leftpad", "obj", "tablelink", "RetainingWall")


def metaworld_assets() -> Path:
    """Meta-World's model directory, found without importing metaworld (whose code needs gymnasium)."""
    spec = importlib.util.find_spec("metaworld")
    if spec is None or spec.origin is None:
        raise ImportError("the sawyer_reach envs need Meta-World's model files: pip install --no-deps metaworld==3.1.1")
    return Path(spec.origin).parent / "assets"


def _read(path: Path) -> ET.Element:
    return ET.fromstring(path.read_text())


def model_xml(scene: bool = False) -> str:
    """The Sawyer MJCF described in the module docstring; with `scene`, plus the table, walls, floor, lights and
    textures of `basic_scene.xml` (for drawing; still without collisions)."""
    assets = metaworld_assets()
    reach = _read(assets / "sawyer_xyz" / "sawyer_reach_v3.xml")
    dependencies = _read(assets / "objects" / "assets" / "xyz_base_dependencies.xml")
    arm = _read(assets / "objects" / "assets" / "xyz_base.xml")
    basic_scene = _read(assets / "scene" / "basic_scene.xml")

    root = ET.Element("mujoco", model="sawyer_reach")
    compiler = dependencies.find("compiler")
    compiler.set("assetdir", f"{assets / 'sawyer_xyz'}/")  # file paths are relative to the reach task's file
    root.append(compiler)
    option = basic_scene.find("option")
    option.set("iterations", str(SOLVER_ITERATIONS))
    option.set("ls_iterations", str(2 * SOLVER_ITERATIONS))
    option.set("cone", "pyramidal")
    root.append(option)
    root.append(dependencies.find("asset"))
    root.append(dependencies.find("default"))
    world = ET.SubElement(root, "worldbody")
    world.extend(arm)  # cameras, the arm and the mocap body

    hand = world.find(".//body[@name='hand']")
    for claw in hand.findall("body"):
        hand.remove(claw)
    ET.SubElement(hand, "site", name=TCP_SITE, pos=" ".join(map(str, TCP_IN_HAND)), size="0.01", rgba="1 0 0 0")
    weld = reach.find("equality/weld")
    weld.set("relpose", "0 0 0 -1 0 0 0")  # SawyerMocapBase.reset_mocap_welds
    weld.set("torquescale", "5")
    ET.SubElement(root, "equality").append(weld)

    if scene:
        root.extend(basic_scene.findall("asset"))
        root.append(basic_scene.find("visual"))
        world.extend(basic_scene.find("worldbody"))
    for geom in root.iter("geom"):
        geom.set("contype", "0")
        geom.set("conaffinity", "0")
    return ET.tostring(root, encoding="unicode")


@functools.cache
def load_model():
    """(MjModel, mjx.Model) of the Sawyer, built once per process."""
    return models(model_xml())


@functools.cache
def load_render_model():
    """The Sawyer's MjModel for drawing only: `model_xml(scene=True)`, on Meta-World's table; joints, sites and
    the arm's bodies are those of `load_model()`."""
    import mujoco

    return mujoco.MjModel.from_xml_string(model_xml(scene=True))


@functools.cache
def home_qpos() -> np.ndarray:
    """The joint angles every episode starts from, at rest: Meta-World's reset (from the reference pose, the
    mocap held at HAND_INIT), run for SETTLE_STEPS control steps with MuJoCo C."""
    import mujoco

    mj_model = load_model()[0]
    data = mujoco.MjData(mj_model)
    data.mocap_pos[0], data.mocap_quat[0] = HAND_INIT, MOCAP_QUAT
    mujoco.mj_step(mj_model, data, SETTLE_STEPS * FRAME_SKIP)
    return data.qpos.copy()


def reach_goals(margin: float) -> GoalReach:
    """Goals uniform in Meta-World's reach goal box, reached within `margin`."""
    return GoalReach(margin=margin, low=GOAL_LOW, high=GOAL_HIGH)


@dataclasses.dataclass(frozen=True, eq=False)
class SawyerReach(ReachingArm):
    """Observation (27): sin and cos of the 7 joint angles, joint velocities (7), `tcp_center` XYZ (3), mocap
    XYZ (3; the weld pulls the hand towards it). Features: `tcp_center` XYZ. Actions in [−1, 1]³ move the
    mocap by up to 1 cm per axis and step."""

    task_family: TaskFamily = dataclasses.field(default_factory=lambda: reach_goals(0.01))
    max_steps: int = 150  # App. C.6
    reuse_initial_state: bool = True  # the start is deterministic

    obs_dim = 27
    action_dim = 3

    def features(self, data) -> Array:
        return data.site_xpos[load_model()[0].site(TCP_SITE).id]

    def render_model(self):
        return load_render_model()

    def render_camera(self) -> dict[str, Any]:
        return {"lookat": (0.0, 0.7, 0.15), "distance": 1.5, "azimuth": 140.0, "elevation": -20.0}

    def control_timestep(self) -> float:
        return PHYSICS_TIMESTEP * FRAME_SKIP

    def observe(self, data) -> Array:
        q = data.qpos
        return jnp.concatenate([jnp.sin(q), jnp.cos(q), data.qvel, self.features(data), data.mocap_pos[0]])

    def init_sim(self, key: Array):
        from mujoco import mjx

        mj_model, model = load_model()
        data = mjx.make_data(mj_model, impl="jax")
        dtype = data.qpos.dtype
        data = data.replace(
            qpos=jnp.asarray(home_qpos(), dtype),
            mocap_pos=jnp.asarray([HAND_INIT], dtype),
            mocap_quat=jnp.asarray([MOCAP_QUAT], dtype) / np.sqrt(2.0),
        )
        data = mjx.forward(model, data)
        return data, self.observe(data), self.features(data)

    def sim_step(self, sim, action: Array, key: Array):
        """SawyerXYZEnv.step without the gripper: move the mocap, FRAME_SKIP physics steps, then the positions of
        the state reached (Meta-World's step calls mj_forward; `mjx.step` leaves them one physics step behind)."""
        from mujoco import mjx

        model = load_model()[1]
        mocap = sim.mocap_pos + ACTION_SCALE * jnp.clip(action, -1.0, 1.0)
        data = sim.replace(mocap_pos=jnp.clip(mocap, np.asarray(HAND_LOW), np.asarray(HAND_HIGH)).astype(mocap.dtype))
        data = jax.lax.scan(lambda d, _: (mjx.step(model, d), None), data, None, length=FRAME_SKIP)[0]
        data = mjx.kinematics(model, data)
        return data, self.observe(data), self.features(data)


def sawyer_reach(margin: float = 0.01) -> SawyerReach:
    """Fig. 5's Sawyer reaching (App. C.6): margin 0.01, or 0.003 (`sawyer_reach_hard`)."""
    return SawyerReach(task_family=reach_goals(margin))


def sawyer_reach_margin() -> SawyerReach:
    """Fig. 6 right: ψ = (goal, m) with m ~ U[0, 0.1] (App. C.6)."""
    return SawyerReach(task_family=GoalMargin(low=GOAL_LOW, high=GOAL_HIGH, margin_low=0.0, margin_high=0.1))
