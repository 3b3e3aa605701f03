"""The env registry: `make(name)` returns a functional env with its task family (docs/architecture.md `envs/`)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from hipi_jax.envs.base import Env, EnvState, auto_reset, reset_with_prior
from hipi_jax.envs.desk import Desk
from hipi_jax.envs.gridworld import GridWorld
from hipi_jax.envs.jaco import arm_reach, arm_reach_margin
from hipi_jax.envs.mjx_suite import CheetahVelocity, FingerGoal, WalkerLinear, reacher_discrete, reacher_goal
from hipi_jax.envs.nav2d import Nav2d
from hipi_jax.envs.point_goal import PointGoal
from hipi_jax.envs.quadruped import quadruped_goal, quadruped_linear
from hipi_jax.envs.sawyer import sawyer_reach, sawyer_reach_margin

_REGISTRY: dict[str, Callable[..., Env]] = {
    "nav2d": Nav2d,
    "point_goal": PointGoal,
    "gridworld": GridWorld,
    "walker_linear": WalkerLinear,
    "cheetah_velocity": CheetahVelocity,
    "reacher_goal": reacher_goal,
    "reacher_goal_hard": partial(reacher_goal, margin=0.003),
    "reacher_discrete": reacher_discrete,
    "finger_goal": FingerGoal,
    "quadruped_goal": quadruped_goal,
    "quadruped_linear": quadruped_linear,
    "arm_reach": arm_reach,
    "arm_reach_hard": partial(arm_reach, margin=0.01),
    "arm_reach_margin": arm_reach_margin,
    "sawyer_reach": sawyer_reach,
    "sawyer_reach_hard": partial(sawyer_reach, margin=0.003),
    "sawyer_reach_margin": sawyer_reach_margin,
    "desk": Desk,
}


def register(name: str, factory: Callable[..., Env], overwrite: bool = False) -> None:
    """Add a user's env: `factory(**kwargs)` returns an `Env` (subclass it: `init_sim`, `sim_step`, a task
    family, `obs_dim`, `action_dim`; see examples/custom_env.py). Then `make(name)`, `TrainConfig.preset(name)`
    and `train` accept it in this process. A taken name raises ValueError unless `overwrite`."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"env name {name!r} must be a non-empty string")
    if name in _REGISTRY and not overwrite:
        raise ValueError(f"env {name!r} is already registered; pass overwrite=True to replace it")
    if not callable(factory):
        raise ValueError(f"the factory for env {name!r} must be callable, got {factory!r}")
    _REGISTRY[name] = factory


def names() -> list[str]:
    """Registered env names, sorted."""
    return sorted(_REGISTRY)


def continuous_names() -> list[str]:
    """Registered envs with continuous actions (the ones SAC trains on), sorted."""
    return [name for name in names() if not make(name).discrete_actions]


def scripted_names() -> list[str]:
    """Registered envs with a scripted demonstrator (`Env.scripted_action`), sorted."""
    return [name for name in names() if make(name).scripted_noise is not None]


def make(name: str, **kwargs) -> Env:
    """Build the env `name`; an unknown name raises ValueError listing the valid ones."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown env {name!r}; valid envs: {', '.join(names())}")
    return _REGISTRY[name](**kwargs)


__all__ = [
    "Env",
    "EnvState",
    "auto_reset",
    "continuous_names",
    "make",
    "names",
    "register",
    "reset_with_prior",
    "scripted_names",
]
