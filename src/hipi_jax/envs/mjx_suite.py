"""DM Control Suite domains on MuJoCo MJX, with the paper's task families (App. C.5, C.9).

The models, their reset distributions and the physics come from MuJoCo Playground's MJX port of the
suite (`registry.load(name)`, `impl="jax"`, which runs on CPU and GPU). Only Playground's `reset` and
the pure physics step `mjx_env.step(model, data, action, n_substeps)` are used: observations and the
features that task rewards are computed from are defined here, never the suite's own reward.
The simulator state of an `EnvState` is the `mjx.Data`.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import warnings
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from hipi_jax.envs.base import Env, EnvState, goal_of
from hipi_jax.tasks import Discrete, GoalReach, Linear, TargetVelocity, TaskFamily

Array = jax.Array


@functools.cache
def load_suite(name: str):
    """The Playground env `name` with the pure-JAX MJX backend (loaded once per process)."""
    import mujoco

    warnings.filterwarnings("ignore", category=DeprecationWarning, module="jaxopt")  # imported by brax
    mujoco.set_mju_user_warning(lambda message: None)  # e.g. deprecated XML attributes under mujoco 4
    from mujoco_playground import registry

    with jax.ensure_compile_time_eval():  # the model's arrays must be concrete even if first used in a trace
        return registry.load(name, config_overrides={"impl": "jax"})


def models(xml: str, assets: dict | None = None):
    """(MjModel, mjx.Model) of an MJCF string; the MJX model's arrays are concrete even when first built
    inside a trace. Each env caches its own call (`functools.cache`)."""
    import mujoco
    from mujoco import mjx

    mj_model = mujoco.MjModel.from_xml_string(xml, assets)
    with jax.ensure_compile_time_eval():
        return mj_model, mjx.put_model(mj_model, impl="jax")


def _strong(tree):
    """Drop weak types (Playground's reset sets a Python-float time), so reset and step states match
    and a jitted step never retraces."""
    return jax.tree.map(lambda x: jnp.asarray(x, dtype=jnp.asarray(x).dtype), tree)


def read_sensor(mj_model, data, name: str) -> Array:
    """The reading of the model's sensor `name` from (unbatched) MJX data, as the suite's `get_sensor_data`."""
    sensor = mj_model.sensor(name).id
    adr, dim = int(mj_model.sensor_adr[sensor]), int(mj_model.sensor_dim[sensor])
    return data.sensordata[adr : adr + dim]


def ctrl_scale(mj_model) -> np.ndarray:
    """Per-actuator factor that maps an action in [−1, 1] onto the actuator's (symmetric) control range."""
    ctrlrange = mj_model.actuator_ctrlrange
    return np.asarray(np.maximum(np.abs(ctrlrange[:, 0]), np.abs(ctrlrange[:, 1])), np.float32)


def step_actuated(mj_model, model, data, action: Array, substeps: int):
    """Hold the scaled, clipped action for `substeps` MJX physics steps (one control step)."""
    from mujoco import mjx

    ctrl = jnp.clip(action, -1.0, 1.0) * ctrl_scale(mj_model)

    def substep(data, _):
        return mjx.step(model, data.replace(ctrl=ctrl)), None

    return jax.lax.scan(substep, data, None, length=substeps)[0]


HIDDEN_GROUP = 5  # a geom/site group MuJoCo's default visual options do not draw


class ReachingArm(Env):
    """What the MJX arms (`jaco.JacoReach`, `sawyer.SawyerReach`) share: goals are end-effector positions
    in the world frame, frames are drawn from `qpos`, and the CPU compiler option below."""

    render_kind = "mujoco"

    def compiler_options(self):
        """On the CPU, XLA's new fusion emitters recompute shared subexpressions of MJX's per-depth
        kinematics once per use: under vmap the Jaco's 9-body chain then costs ~100x the flops it needs
        (64 envs: 29 env steps/s vs 7.2k without them). The other envs are faster with the emitters."""
        return {"xla_cpu_use_fusion_emitters": False} if jax.default_backend() == "cpu" else None

    def render_record(self, state: EnvState) -> dict[str, Any]:
        return {"qpos": state.sim.qpos}

    def goal_position(self, task: np.ndarray) -> np.ndarray | None:
        goal = goal_of(self.task_family, task)
        return None if goal is None else np.asarray(goal[0], np.float64)


def without_markers(mj_model, geoms: tuple[str, ...] = (), sites: tuple[str, ...] = ()):
    """A copy of `mj_model` for rendering with the named geoms and sites hidden (e.g. the suite's own
    target, which sits wherever the suite's reset put it, not at the task's goal)."""
    model = copy.deepcopy(mj_model)
    for name in geoms:
        model.geom_group[model.geom(name).id] = HIDDEN_GROUP
    for name in sites:
        model.site_group[model.site(name).id] = HIDDEN_GROUP
    return model


@functools.cache
def render_model(suite_name: str, geoms: tuple[str, ...] = (), sites: tuple[str, ...] = ()):
    """The suite model `suite_name` for rendering, the named markers hidden (built once per process)."""
    return without_markers(load_suite(suite_name).mj_model, geoms=geoms, sites=sites)


def rest_data(mj_model):
    """`mjData` of `mj_model` at its default pose after `mj_forward` (positions of fixed frames)."""
    import mujoco

    data = mujoco.MjData(mj_model)
    mujoco.mj_forward(mj_model, data)
    return data


@dataclasses.dataclass(frozen=True, eq=False)
class SuiteEnv(Env):
    """An MJX suite domain. Subclasses set `suite_name` and define `observe(data)` and `features(data)`,
    both functions of the `mjx.Data` alone."""

    suite_name: str = dataclasses.field(default="", init=False)

    @property
    def suite(self):
        return load_suite(self.suite_name)

    @property
    def action_dim(self) -> int:
        return self.suite.action_size

    def sensor(self, data, name: str) -> Array:
        return read_sensor(self.suite.mj_model, data, name)

    render_kind = "mujoco"

    def render_model(self):
        return self.suite.mj_model

    def render_record(self, state: EnvState) -> dict[str, Any]:
        return {"qpos": state.sim.qpos}

    def control_timestep(self) -> float:
        return float(self.suite.mj_model.opt.timestep) * self.suite.n_substeps

    def init_sim(self, key: Array):
        data = _strong(self.suite.reset(key).data)
        return data, self.observe(data), self.features(data)

    def sim_step(self, sim, action: Array, key: Array):
        from mujoco_playground._src import mjx_env

        suite = self.suite
        data = mjx_env.step(suite.mjx_model, sim, jnp.clip(action, -1.0, 1.0), suite.n_substeps)
        return data, self.observe(data), self.features(data)


# ---- walker (App. C.9) ------------------------------------------------------------------------------

WALKER_FEATURES = ("torso_height - 0.5", "forward_velocity", "left_foot_x", "left_foot_z", "right_foot_x",
                   "right_foot_z")  # fmt: skip


def walker_linear_family() -> Linear:
    """ψ ∈ [−1, 1]⁶ × [−1, 0] on φ = (6 state features, ‖a‖²): the last weight is a control cost."""
    return Linear(low=[-1.0] * 7, high=[1.0] * 6 + [0.0], control_feature=True)


@dataclasses.dataclass(frozen=True, eq=False)
class WalkerLinear(SuiteEnv):
    """Planar walker with linear rewards r = ψᵀφ (Fig. 6 centre). Observation as in DM Control:
    the xx, xz entries of every body's frame (14), torso height (1), joint velocities (9).
    Features: torso height − 0.5, forward velocity of the torso subtree's centre of mass, and each
    foot's XZ position relative to the walker's centre of mass."""

    suite_name: str = dataclasses.field(default="WalkerWalk", init=False)
    task_family: TaskFamily = dataclasses.field(default_factory=walker_linear_family)
    max_steps: int = 100

    obs_dim = 24

    def _body(self, name: str) -> int:
        return self.suite.mj_model.body(name).id

    def observe(self, data) -> Array:
        orientations = data.xmat[1:, [0, 0], [0, 2]].ravel()
        return jnp.concatenate([orientations, data.xpos[self._body("torso"), 2:3], data.qvel])

    def features(self, data) -> Array:
        xz = jnp.array([0, 2])
        torso = self._body("torso")
        com = data.subtree_com[torso][xz]
        feet = [data.xpos[self._body(foot)][xz] - com for foot in ("left_foot", "right_foot")]
        height = data.xpos[torso, 2:3] - 0.5
        velocity = self.sensor(data, "torso_subtreelinvel")[:1]
        return jnp.concatenate([height, velocity, *feet])


# ---- cheetah (App. C.10) ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, eq=False)
class CheetahVelocity(SuiteEnv):
    """Half-cheetah with target velocities ψ ∈ [0, 3] m/s, r = −|v − ψ| − 0.05‖a‖² (Fig. 7 left).
    Observation as in DM Control: joint positions without the x coordinate (8) and velocities (9).
    Feature: the forward velocity of the torso subtree's centre of mass (the suite's speed sensor).
    The suite's reset settles the body for 200 physics steps, so each env slot restarts from its
    first initial state (`reuse_initial_state`); tasks are drawn anew every episode."""

    suite_name: str = dataclasses.field(default="CheetahRun", init=False)
    task_family: TaskFamily = dataclasses.field(default_factory=lambda: TargetVelocity(0.0, 3.0, 0.05))
    max_steps: int = 100
    reuse_initial_state: bool = True

    obs_dim = 17

    def observe(self, data) -> Array:
        return jnp.concatenate([data.qpos[1:], data.qvel])

    def features(self, data) -> Array:
        return self.sensor(data, "torso_subtreelinvel")[:1]


# ---- reacher (App. C.5, Fig. 6 left) ---------------------------------------------------------------

REACHER_GOAL_RADIUS = (0.05, 0.2)  # the suite's target sampler: angle ~ U(0, 2π), radius ~ U(0.05, 0.2)


def reacher_discrete_targets(num: int = 32, radius: float = 0.15) -> np.ndarray:
    """`num` fixed targets evenly spaced on a ring of `radius` around the arm's base."""
    angle = 2 * np.pi * np.arange(num) / num
    return np.stack([radius * np.sin(angle), radius * np.cos(angle)], axis=-1).astype(np.float32)


@dataclasses.dataclass(frozen=True, eq=False)
class Reacher(SuiteEnv):
    """Two-link planar reacher; ψ is a fingertip XY goal (App. C.5). Observation: joint angles and
    velocities (4) — the goal reaches the policy as its task input, not through the observation.
    Features: the fingertip's XY position. Goals follow the suite's target sampler."""

    suite_name: str = dataclasses.field(default="ReacherEasy", init=False)
    task_family: TaskFamily = dataclasses.field(
        default_factory=lambda: GoalReach(margin=0.01, low=[-0.2, -0.2], high=[0.2, 0.2], radius=REACHER_GOAL_RADIUS)
    )
    max_steps: int = 1000

    obs_dim = 4

    @functools.cached_property
    def _finger(self) -> int:
        return self.suite.mj_model.geom("finger").id

    def observe(self, data) -> Array:
        return jnp.concatenate([data.qpos, data.qvel])

    def features(self, data) -> Array:
        return data.geom_xpos[self._finger, :2]

    def render_model(self):
        return render_model(self.suite_name, geoms=("target",))

    def goal_position(self, task: np.ndarray) -> np.ndarray | None:
        """The XY goal at the fingertip's height (the arm moves in a horizontal plane)."""
        goal = goal_of(self.task_family, task)
        if goal is None:
            return None
        height = rest_data(self.suite.mj_model).geom_xpos[self._finger, 2]
        return np.array([*goal[0], height], np.float64)


def reacher_goal(margin: float = 0.01) -> Reacher:
    return Reacher(task_family=GoalReach(margin=margin, low=[-0.2, -0.2], high=[0.2, 0.2], radius=REACHER_GOAL_RADIUS))


def reacher_discrete() -> Reacher:
    return Reacher(task_family=Discrete(targets=reacher_discrete_targets(), margin=0.01))


# ---- finger (App. C.4) ------------------------------------------------------------------------------


FINGER_RADIUS = 0.13  # distance of the knob tip from the hinge: cap1's half-length + radius (tested)


@dataclasses.dataclass(frozen=True, eq=False)
class FingerGoal(SuiteEnv):
    """Finger turning a knob; ψ is an XZ goal for the knob tip relative to the hinge (App. C.4),
    drawn as the suite's turn task draws its target: angle ~ U(−π, π) on the tip's circle.
    Observation as the suite's spin task: proximal and distal joint angles (2), tip position (2),
    joint velocities (3), log1p of the two touch sensors (2). Feature: the tip's XZ relative to the hinge."""

    suite_name: str = dataclasses.field(default="FingerTurnEasy", init=False)
    task_family: TaskFamily = dataclasses.field(
        default_factory=lambda: GoalReach(
            margin=0.01, low=[-FINGER_RADIUS] * 2, high=[FINGER_RADIUS] * 2, radius=(FINGER_RADIUS, FINGER_RADIUS)
        )
    )
    max_steps: int = 1000

    obs_dim = 9

    def observe(self, data) -> Array:
        touch = jnp.log1p(jnp.concatenate([self.sensor(data, "touchtop"), self.sensor(data, "touchbottom")]))
        position = [self.sensor(data, "proximal"), self.sensor(data, "distal"), self.features(data)]
        return jnp.concatenate([*position, data.qvel, touch])

    def features(self, data) -> Array:
        xz = jnp.array([0, 2])
        return self.sensor(data, "tip")[xz] - self.sensor(data, "spinner")[xz]

    def render_model(self):
        return render_model(self.suite_name, sites=("target",))

    def goal_position(self, task: np.ndarray) -> np.ndarray | None:
        """The XZ goal relative to the hinge: the spinner body's origin (fixed; the hinge's anchor)."""
        goal = goal_of(self.task_family, task)
        if goal is None:
            return None
        mj_model = self.suite.mj_model
        hinge = rest_data(mj_model).xpos[mj_model.body("spinner").id]
        return hinge + np.array([goal[0][0], 0.0, goal[0][1]])
