"""The Kinova Jaco arm on MuJoCo MJX, reaching for 3-D goals (Fig. 5 and Fig. 6 right, App. C.6).

The model is dm-control's `third_party/kinova/jaco_arm.xml` with the rigid part of its
`jaco_hand.xml` (the hand body, its main mesh and the grip site; the three 0.04 kg finger links and
their joints are left out), read as files (dm_control itself is not imported) and assembled as
dm_control's manipulation suite does: the arm's base at (0, 0.4, 0), the hand on the wrist site,
one velocity actuator per joint with the suite's gain, velocity limits and Kinova's peak torques.
Changes for MJX and for a reaching task: every geom's collisions are off (reaching in free space
needs none; there is no table), and the physics runs with MuJoCo's semi-implicit Euler at a 0.004 s
timestep, 10 substeps per 0.04 s control step (the suite's control timestep). MJX's `implicitfast`
differs from MuJoCo C's whenever a velocity actuator saturates its force range (C drops the clamped
actuator's damping derivative; MJX does not), so its trajectories left C's by ~1 cm within 10 steps;
MJX's Euler matches C to float precision, and at 0.004 s the explicit actuator damping
kv·dt/inertia is at most 1.0, so joint velocities settle without oscillating. The constraint
solver (the six joint-friction rows) is capped at 8 Newton iterations instead of 100: it converges
within them (trajectories equal the uncapped ones to float precision), and under vmap every env
otherwise pays for the slowest one's iterations (880 vs 5.3k env steps/s at 64 envs, random actions).

Goals lie in App. C.8's box [−0.1, 0.1] × [−0.1, 0.1] × [0.02, 0.4] m (the centre of dm_control's
`reach_site` box, [−0.2, 0.2]² × [0.02, 0.4]); episodes are capped at C.8's 250 steps. Every episode starts at rest
in one home pose, the grip site 0.3 m above the box's centre (as metaworld's Sawyer reach starts from a
fixed hand position; dm_control instead solves IK for a random start in the box).
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

from hipi_jax.envs.mjx_suite import ReachingArm, models, step_actuated
from hipi_jax.tasks import GoalMargin, GoalReach, TaskFamily

Array = jax.Array

PHYSICS_TIMESTEP = 0.004
CONTROL_SUBSTEPS = 10  # 0.04 s control step (dm_control manipulation's CONTROL_TIMESTEP)
ARM_OFFSET = (0.0, 0.4, 0.0)  # dm_control manipulation's robots.ARM_OFFSET
WORKSPACE_LOW = (-0.1, -0.1, 0.02)  # App. C.8's goal box
WORKSPACE_HIGH = (0.1, 0.1, 0.4)
# dm_control's jaco_arm.py: peak torques from Kinova's datasheet and the firmware's velocity limits.
LARGE_JOINTS, SMALL_JOINTS = ("joint_1", "joint_2", "joint_3"), ("joint_4", "joint_5", "joint_6")
MAX_TORQUE = {"large": 30.5, "small": 6.8}
MAX_VELOCITY = {"large": np.deg2rad(36.0), "small": np.deg2rad(48.0)}
VELOCITY_GAIN = 500.0
# Joint angles with the grip site at (0, 0, 0.3), the hand pointing down (solved once offline by
# damped least squares; tests check where it puts the grip site).
HOME_QPOS = (1.72, 2.7756, 4.8187, 0.3619, -1.2944, -0.2241)


def kinova_dir() -> Path:
    spec = importlib.util.find_spec("dm_control")
    if spec is None or spec.origin is None:
        raise ImportError("the arm_reach envs need the dm-control package (pip install dm-control)")
    return Path(spec.origin).parent / "third_party" / "kinova"


def model_xml() -> str:
    """The Jaco arm + rigid hand MJCF described in the module docstring."""
    kinova = kinova_dir()
    root = ET.fromstring((kinova / "jaco_arm.xml").read_text())
    hand = ET.fromstring((kinova / "jaco_hand.xml").read_text())
    common = ET.fromstring((kinova / "common.xml").read_text())

    root.remove(root.find("include"))
    root.remove(root.find("contact"))
    root.find("compiler").set("meshdir", f"{kinova / 'meshes_decimated'}/")
    root.insert(1, common.find("asset"))
    ET.SubElement(
        root, "option", timestep=str(PHYSICS_TIMESTEP), integrator="Euler", iterations="8", ls_iterations="16"
    )
    root.find("asset").append(hand.find("asset/mesh[@name='hand_3finger_main']"))

    base = root.find("worldbody/body[@name='b_base']")
    base.set("pos", " ".join(map(str, ARM_OFFSET)))
    wrist = root.find(".//site[@name='wristsite']")
    mount = ET.SubElement(root.find(".//body[@name='b_6']"), "body", name="hand_mount", quat=wrist.get("quat"))
    hand_body = ET.SubElement(mount, "body", name="hand", quat=hand.find("worldbody/body").get("quat"))
    hand_body.append(hand.find(".//site[@name='gripsite']"))
    hand_body.append(hand.find(".//geom[@name='link_6_main']"))

    for geom in root.iter("geom"):
        geom.set("contype", "0")
        geom.set("conaffinity", "0")
    actuators = ET.SubElement(root, "actuator")
    for joint in LARGE_JOINTS + SMALL_JOINTS:
        size = "large" if joint in LARGE_JOINTS else "small"
        v, f = MAX_VELOCITY[size], MAX_TORQUE[size]
        ET.SubElement(
            actuators,
            "velocity",
            name=joint,
            joint=joint,
            kv=str(VELOCITY_GAIN),
            ctrllimited="true",
            ctrlrange=f"{-v} {v}",
            forcelimited="true",
            forcerange=f"{-f} {f}",
        )
    return ET.tostring(root, encoding="unicode")


@functools.cache
def load_model():
    """(MjModel, mjx.Model) of the Jaco arm, built once per process."""
    return models(model_xml())


@functools.cache
def load_render_model():
    """The arm's MjModel for drawing only: `model_xml()` plus a light and a floor at z = 0 (the base's
    height; no collisions), with the black links drawn dark grey; joints, bodies and sites are those of
    `load_model()`."""
    import mujoco

    root = ET.fromstring(model_xml())
    root.find(".//material[@name='dark_gray']").set("rgba", ".3 .3 .3 1")
    asset = ET.SubElement(root, "asset")
    ET.SubElement(asset, "texture", name="floor", type="2d", builtin="checker", rgb1=".2 .3 .4", rgb2=".1 .2 .3",
                  width="300", height="300", mark="edge", markrgb=".2 .3 .4")  # fmt: skip
    ET.SubElement(asset, "material", name="floor", texture="floor", texrepeat="8 8", texuniform="false")
    world = root.find("worldbody")
    ET.SubElement(world, "light", pos="0 0 3", dir="0 0 -1", directional="true", diffuse=".8 .8 .8")
    ET.SubElement(world, "geom", name="floor", type="plane", size="1 1 .1", material="floor", contype="0",
                  conaffinity="0")  # fmt: skip
    return mujoco.MjModel.from_xml_string(ET.tostring(root, encoding="unicode"))


def reach_goals(margin: float) -> GoalReach:
    """Goals uniform in App. C.8's box, reached within `margin`."""
    return GoalReach(margin=margin, low=WORKSPACE_LOW, high=WORKSPACE_HIGH)


@dataclasses.dataclass(frozen=True, eq=False)
class JacoReach(ReachingArm):
    """Observation (21): sin and cos of the 6 joint angles, joint velocities (6), grip-site XYZ (3).
    Features: grip-site XYZ. Actions in [−1, 1]⁶ scale onto each joint's velocity limit."""

    task_family: TaskFamily = dataclasses.field(default_factory=lambda: reach_goals(0.1))
    max_steps: int = 250  # App. C.8
    reuse_initial_state: bool = True  # the start is deterministic

    obs_dim = 21
    action_dim = 6

    def features(self, data) -> Array:
        return data.site_xpos[load_model()[0].site("gripsite").id]

    def render_model(self):
        return load_render_model()

    def render_camera(self) -> dict[str, Any]:
        return {"lookat": (0.0, 0.2, 0.3), "distance": 1.4, "azimuth": 135.0, "elevation": -15.0}

    def control_timestep(self) -> float:
        return PHYSICS_TIMESTEP * CONTROL_SUBSTEPS

    def observe(self, data) -> Array:
        return jnp.concatenate([jnp.sin(data.qpos), jnp.cos(data.qpos), data.qvel, self.features(data)])

    def init_sim(self, key: Array):
        from mujoco import mjx

        mj_model, model = load_model()
        data = mjx.make_data(mj_model, impl="jax").replace(qpos=jnp.asarray(HOME_QPOS, jnp.float32))
        data = mjx.forward(model, data)
        return data, self.observe(data), self.features(data)

    def sim_step(self, sim, action: Array, key: Array):
        data = step_actuated(*load_model(), sim, action, CONTROL_SUBSTEPS)
        return data, self.observe(data), self.features(data)


def arm_reach(margin: float = 0.1) -> JacoReach:
    """Fig. 5's Jaco reaching; margin 0.1 (easy) or 0.01 (`arm_reach_hard`)."""
    return JacoReach(task_family=reach_goals(margin))


def arm_reach_margin() -> JacoReach:
    """Fig. 6 right: ψ = (goal, m) with m ~ U[0, 0.1] (App. C.6)."""
    return JacoReach(task_family=GoalMargin(low=WORKSPACE_LOW, high=WORKSPACE_HIGH, margin_low=0.0, margin_high=0.1))
