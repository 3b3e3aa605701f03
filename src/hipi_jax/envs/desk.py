"""An open substitute for the paper's desk (Fig. 7 right, App. C.11) on MuJoCo MJX: nine discrete tasks in one
scene, three button presses and six block pushes, sparse rewards in {0, 1}, 128-step episodes.

The paper's desk (Lynch et al.'s playground: a simulated arm at a desk with buttons, blocks, a drawer and a
sliding door) and its play data are not public. This scene keeps what makes the HIPI-BC experiment meaningful
and stays cheap enough for a 2-core CPU:
- an **end effector** (a 2 cm sphere) on three slide joints, driven by position actuators. An action
  a ∈ [−1, 1]³ moves the actuators' target by up to 2 cm per axis and step (as Meta-World's mocap hand), within
  the workspace box; a full arm is left out because the tasks only need a point that pushes, and an arm's
  chain costs most of an MJX step on the CPU (docs/environments.md);
- **three buttons** at the back of the desk, each on a vertical slide joint with a spring; a button counts as
  pressed while it is pushed down more than PRESS_DEPTH;
- **two blocks** (A, B; spheres of 3 cm radius) on two horizontal slide joints each, so they slide without
  rolling or tipping; joint damping stands in for the desk's friction, so a block stops soon after it is
  let go; three circular **target regions** lie at the front of the desk;
- only the contacts that matter exist: the effector against each block and each button, and block against
  block (explicit pairs, frictionless); gravity is off (nothing moves vertically except the effector, held by
  its actuator, and the buttons, held by their springs).

Tasks (one-hot ψ, nine of them, TASKS names them): press button 1, 2, 3; push block A into region 1, 2, 3;
push block B into region 1, 2, 3. Features φ ∈ {0, 1}⁹ say which conditions hold in s′, and r_ψ = ψᵀφ: 1
while the task's condition holds, else 0. Episodes never end early (a condition can hold and stop holding),
and are capped at 128 steps (App. C.11). `scripted_action` is a controller per task; with action noise its
episodes sometimes solve other tasks on the way, which is what HIPI-BC's relabeling can find.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from hipi_jax.envs.base import Env, EnvState
from hipi_jax.envs.mjx_suite import models
from hipi_jax.tasks import Indicators

Array = jax.Array

TASKS = (
    "press button 1", "press button 2", "press button 3",
    "block A to region 1", "block A to region 2", "block A to region 3",
    "block B to region 1", "block B to region 2", "block B to region 3",
)  # fmt: skip
TIMESTEP = 0.01
SUBSTEPS = 4  # a 0.04 s control step
MOVE = 0.02  # metres the effector's target moves per unit action and step
EFFECTOR_RADIUS = 0.02
BLOCK_RADIUS = 0.03
BUTTONS_XY = ((-0.15, 0.22), (0.0, 0.22), (0.15, 0.22))
BUTTON_COLOURS = ("0.85 0.2 0.2 1", "0.2 0.7 0.2 1", "0.2 0.3 0.85 1")
BUTTON_HALF = (0.03, 0.03, 0.01)  # the button's box; its top is at z = 0.02 when up
PRESS_DEPTH = 0.008  # a button counts as pressed below this depth (its travel is 0.015)
REGIONS_XY = ((-0.2, -0.12), (0.0, -0.17), (0.2, -0.12))
REGION_RADIUS = 0.05  # a block is in a region when its centre is within this distance of the region's centre
WORKSPACE_LOW = (-0.3, -0.25, EFFECTOR_RADIUS)  # the effector's target box (its centre; z: touching the desk)
WORKSPACE_HIGH = (0.3, 0.3, 0.15)
BLOCK_LOW, BLOCK_HIGH = (-0.27, -0.22), (0.27, 0.17)  # the blocks' joint ranges (centres)
START_LOW, START_HIGH = (-0.15, -0.09), (0.15, 0.08)  # the blocks' start box
START_GAP = 0.09  # the blocks start at least this far apart (centres)
EFFECTOR_START = (0.0, 0.05, 0.1)


def model_xml() -> str:
    """The desk's MJCF (see the module docstring)."""
    bx, by, bz = BUTTON_HALF
    buttons = "\n".join(
        f"""    <body name="button{i + 1}" pos="{x} {y} 0">
      <joint name="button{i + 1}" type="slide" axis="0 0 1" range="-0.015 0" stiffness="30" damping="1"
             springref="0"/>
      <geom name="button{i + 1}" type="box" size="{bx} {by} {bz}" pos="0 0 {bz}" mass="0.05" rgba="{rgba}"/>
    </body>"""
        for i, ((x, y), rgba) in enumerate(zip(BUTTONS_XY, BUTTON_COLOURS, strict=True))
    )
    blocks = "\n".join(
        f"""    <body name="block_{n}" pos="0 0 {BLOCK_RADIUS}">
      <joint name="block_{n}_x" type="slide" axis="1 0 0" range="{BLOCK_LOW[0]} {BLOCK_HIGH[0]}" damping="10"/>
      <joint name="block_{n}_y" type="slide" axis="0 1 0" range="{BLOCK_LOW[1]} {BLOCK_HIGH[1]}" damping="10"/>
      <geom name="block_{n}" type="sphere" size="{BLOCK_RADIUS}" mass="0.2" rgba="{rgba}"/>
    </body>"""
        for n, rgba in (("a", "0.9 0.6 0.1 1"), ("b", "0.5 0.2 0.7 1"))
    )
    regions = "\n".join(
        f'    <site name="region{i + 1}" type="cylinder" size="{REGION_RADIUS} 0.001" pos="{x} {y} 0.001" '
        f'rgba="0.3 0.3 0.3 0.4"/>'
        for i, (x, y) in enumerate(REGIONS_XY)
    )
    pairs = "\n".join(
        f'    <pair geom1="{a}" geom2="{b}" condim="1"/>'
        for a, b in [("effector", "block_a"), ("effector", "block_b"), ("block_a", "block_b")]
        + [("effector", f"button{i + 1}") for i in range(3)]
    )
    actuators = "\n".join(
        f'    <position name="move_{axis}" joint="effector_{axis}" kp="100" ctrlrange="{lo} {hi}"/>'
        for axis, lo, hi in zip("xyz", WORKSPACE_LOW, WORKSPACE_HIGH, strict=True)
    )
    return f"""<mujoco model="desk">
  <option timestep="{TIMESTEP}" iterations="4" ls_iterations="8" cone="pyramidal" gravity="0 0 0"/>
  <default><geom contype="0" conaffinity="0"/></default>
  <worldbody>
    <light pos="0 0 1.5" dir="0 0 -1"/>
    <camera name="overview" pos="0 -0.75 0.65" xyaxes="1 0 0 0 0.65 0.76"/>
    <geom name="desk" type="box" size="0.32 0.3 0.01" pos="0 0.02 -0.01" rgba="0.75 0.65 0.5 1"/>
{regions}
{buttons}
{blocks}
    <body name="effector" pos="0 0 0">
      <joint name="effector_x" type="slide" axis="1 0 0" damping="6"/>
      <joint name="effector_y" type="slide" axis="0 1 0" damping="6"/>
      <joint name="effector_z" type="slide" axis="0 0 1" damping="6"/>
      <geom name="effector" type="sphere" size="{EFFECTOR_RADIUS}" mass="0.1" rgba="0.2 0.2 0.2 1"/>
    </body>
  </worldbody>
  <contact>
{pairs}
  </contact>
  <actuator>
{actuators}
  </actuator>
</mujoco>"""


@functools.cache
def load_model():
    """(MjModel, mjx.Model) of the desk, built once per process."""
    return models(model_xml())


# qpos: buttons 1-3 (z), block A (x, y), block B (x, y), effector (x, y, z): bodies in the order of the XML
BUTTONS, BLOCK_A, BLOCK_B, EFFECTOR = slice(0, 3), slice(3, 5), slice(5, 7), slice(7, 10)


def desk_features(qpos: Array) -> Array:
    """φ ∈ {0, 1}⁹ from the joint positions [..., 10]: buttons pressed, then block A, then B in each region."""
    pressed = qpos[..., BUTTONS] < -PRESS_DEPTH
    regions = jnp.asarray(REGIONS_XY, qpos.dtype)

    def inside(block):
        return jnp.linalg.norm(block[..., None, :] - regions, axis=-1) <= REGION_RADIUS

    return jnp.concatenate([pressed, inside(qpos[..., BLOCK_A]), inside(qpos[..., BLOCK_B])], axis=-1).astype(
        jnp.float32
    )


def start_qpos(key: Array) -> Array:
    """An episode's first joint positions: the buttons up, the effector at EFFECTOR_START (its actuators'
    target too), the blocks uniform in the start box and at least START_GAP apart (block B is redrawn up to 8
    times, then put START_GAP beside A, towards the box's middle)."""
    k_a, k_b = jax.random.split(key)
    low, high = jnp.asarray(START_LOW), jnp.asarray(START_HIGH)
    block_a = jax.random.uniform(k_a, (2,), minval=low, maxval=high)
    tries = jax.random.uniform(k_b, (8, 2), minval=low, maxval=high)
    far = jnp.linalg.norm(tries - block_a, axis=-1) >= START_GAP
    beside = block_a + jnp.asarray([jnp.where(block_a[0] < 0.0, START_GAP, -START_GAP), 0.0])
    block_b = jnp.where(jnp.any(far), tries[jnp.argmax(far)], beside)
    return jnp.concatenate([jnp.zeros(3), block_a, block_b, jnp.asarray(EFFECTOR_START)])


@dataclasses.dataclass(frozen=True, eq=False)
class Desk(Env):
    """Observation (20): effector position (3) and velocity (3), block A and B positions and velocities (2 each),
    the buttons' depths (3), the effector's actuator target (3). Features: the nine task conditions."""

    task_family: Indicators = dataclasses.field(default_factory=lambda: Indicators(num_tasks=len(TASKS)))
    max_steps: int = 128  # App. C.11
    render_kind = "mujoco"
    scripted_noise = 0.3

    def scripted_action(self, key: Array, obs: Array, task: Array, noise: float) -> Array:
        return scripted_action(obs, jnp.argmax(task), key, noise)

    obs_dim = 20
    action_dim = 3

    def control_timestep(self) -> float:
        return TIMESTEP * SUBSTEPS

    def render_model(self):
        return load_model()[0]

    def render_camera(self) -> str:
        return "overview"

    def render_record(self, state: EnvState) -> dict[str, Any]:
        return {"qpos": state.sim.qpos}

    def observe(self, data) -> Array:
        q, v = data.qpos, data.qvel
        blocks = [q[BLOCK_A], v[BLOCK_A], q[BLOCK_B], v[BLOCK_B]]
        return jnp.concatenate([q[EFFECTOR], v[EFFECTOR], *blocks, q[BUTTONS], data.ctrl])

    def init_sim(self, key: Array):
        from mujoco import mjx

        mj_model, model = load_model()
        data = mjx.make_data(mj_model, impl="jax")
        qpos = start_qpos(key).astype(data.qpos.dtype)
        data = mjx.forward(model, data.replace(qpos=qpos, ctrl=qpos[EFFECTOR]))
        return data, self.observe(data), desk_features(data.qpos)

    def sim_step(self, sim, action: Array, key: Array):
        """Move the effector's target by MOVE·a (clipped to the workspace), then SUBSTEPS physics steps."""
        from mujoco import mjx

        model = load_model()[1]
        target = sim.ctrl + MOVE * jnp.clip(action, -1.0, 1.0)
        data = sim.replace(ctrl=jnp.clip(target, np.asarray(WORKSPACE_LOW), np.asarray(WORKSPACE_HIGH)))
        data = jax.lax.scan(lambda d, _: (mjx.step(model, d), None), data, None, length=SUBSTEPS)[0]
        return data, self.observe(data), desk_features(data.qpos)


# ---------------------------------------------------------------- scripted demonstrations

HOVER = 0.09  # the effector's height while it travels above the blocks
PUSH_HEIGHT = EFFECTOR_RADIUS  # pushing, the effector touches the desk, below the blocks' centres: the contact
#                               presses it down onto its target rather than lifting it over the block
BEHIND = BLOCK_RADIUS + EFFECTOR_RADIUS + 0.012  # the push starts this far behind the block's centre
ALIGNED = 0.012  # metres of sideways slack before the controller lifts and lines up again
PUSH_LEAD = 0.06  # while pushing, the effector is sent this far ahead of its start point, along the line


def _toward(effector: Array, waypoint: Array) -> Array:
    """The action that moves the effector's target straight at `waypoint`: scaled down as a whole (not
    clipped per axis, which would bend the path) to at most a full step."""
    step = (waypoint - effector) / MOVE
    return step / jnp.maximum(1.0, jnp.max(jnp.abs(step)))


def _press(effector: Array, button_xy: Array) -> Array:
    off = jnp.linalg.norm(effector[:2] - button_xy)
    low = effector[2] < HOVER - 0.02
    above = (off < 0.01) | (low & (off < 0.02))  # once down on the button, small drifts are corrected in place
    low_and_away = jnp.logical_and(~above, low)
    waypoint = jnp.where(
        above,
        jnp.append(button_xy, 0.0),  # down onto the button: the target below its top presses it
        jnp.where(low_and_away, jnp.append(effector[:2], HOVER), jnp.append(button_xy, HOVER)),
    )
    return _toward(effector, waypoint)


def _push(effector: Array, block: Array, region_xy: Array) -> Array:
    to_region = region_xy - block
    distance = jnp.linalg.norm(to_region)
    d = to_region / jnp.maximum(distance, 1e-6)
    behind = block - BEHIND * d
    rel = effector[:2] - block
    along = rel @ d
    sideways = jnp.linalg.norm(rel - along * d)
    low = effector[2] < BLOCK_RADIUS + 0.015
    pushing = (sideways < ALIGNED) & (along < 0.0) & low
    over_start = jnp.linalg.norm(effector[:2] - behind) < ALIGNED
    arrived = distance < 0.3 * REGION_RADIUS
    push_to = jnp.append(block - (BEHIND - PUSH_LEAD) * d, PUSH_HEIGHT)  # on the line: steers back onto it
    descend = jnp.append(behind, PUSH_HEIGHT)
    lift = jnp.append(effector[:2], HOVER)
    travel = jnp.append(behind, HOVER)
    waypoint = jnp.where(pushing, push_to, jnp.where(over_start, descend, jnp.where(low, lift, travel)))
    waypoint = jnp.where(arrived, jnp.append(effector[:2], HOVER), waypoint)  # done: back off upwards
    return _toward(effector, waypoint)


def scripted_action(obs: Array, task_index: Array, key: Array, noise: float = 0.3) -> Array:
    """The scripted controller of task `task_index` (an index into TASKS) from the observation alone, plus
    Gaussian action noise of std `noise`, clipped to [−1, 1]. It steers the effector (obs[0:3]) through
    waypoints: presses go above the button, then down; pushes lift, travel above the
    block to a point behind it (seen from the region), descend, and push through the block's centre; they
    lift and line up again when the block slides off the line."""
    effector = obs[0:3]
    blocks = (obs[6:8], obs[10:12])
    regions = jnp.asarray(REGIONS_XY, obs.dtype)
    buttons = jnp.asarray(BUTTONS_XY, obs.dtype)
    actions = [_press(effector, buttons[i]) for i in range(3)]
    actions += [_push(effector, blocks[b], regions[r]) for b in range(2) for r in range(3)]
    action = jnp.stack(actions)[task_index]
    return jnp.clip(action + noise * jax.random.normal(key, action.shape, action.dtype), -1.0, 1.0)
