"""Run configuration: one frozen dataclass, every field documented, validated on construction.

The CLI's flags are these field names with hyphens; `help` metadata is the `--help` text.
Derived quantities are properties, never written back.
"""

from __future__ import annotations

import dataclasses
import math

from hipi_jax import envs
from hipi_jax.relabel import STRATEGIES, RelabelSpec

START_MODES = ("fresh", "reuse")
# Numeric hyperparameters a sweep may vary in one compiled program: none of them changes a shape.
SWEEPABLE = ("relabel_fraction", "learning_rate", "gamma", "tau")


def _field(default, help: str):
    return dataclasses.field(default=default, metadata={"help": help})


# Per-env defaults where they differ from the field defaults (which are nav2d's). App. C.1: (64, 64)
# networks except on 2D navigation; unit-norm gradient clipping on the arms, Jaco and Sawyer (C.1). Budgets are
# CPU-sized; the paper's are a flag away (--env-steps).
# The Sawyer's sparse goals relabel with HER's `future` by default: Alg. 1's candidates (the batch's
# commanded goals) almost never succeed at margin 0.01, and inverse RL reached no goal in 100k steps
# (docs/results.md); `--relabel inverse_rl` still runs Alg. 1 there.
_ARM = {"hidden": (64, 64), "env_steps": 100_000, "eval_every": 10_000, "grad_clip": 1.0}
ENV_PRESETS: dict[str, dict] = {
    "point_goal": {"env_steps": 100_000, "eval_every": 10_000},
    "walker_linear": {"hidden": (64, 64), "env_steps": 100_000, "eval_every": 10_000},
    "cheetah_velocity": {"hidden": (64, 64), "env_steps": 100_000, "eval_every": 10_000},
    "reacher_goal": {"hidden": (64, 64), "env_steps": 200_000, "eval_every": 20_000},
    "reacher_goal_hard": {"hidden": (64, 64), "env_steps": 200_000, "eval_every": 20_000},
    "reacher_discrete": {"hidden": (64, 64), "env_steps": 200_000, "eval_every": 20_000},
    "finger_goal": {"hidden": (64, 64), "env_steps": 200_000, "eval_every": 20_000},
    "quadruped_goal": {"hidden": (256, 256), "env_steps": 30_000, "eval_every": 10_000, "warmup_steps": 2_000},
    "quadruped_linear": {"hidden": (256, 256), "env_steps": 30_000, "eval_every": 10_000, "warmup_steps": 2_000},
    "arm_reach": _ARM,
    "arm_reach_hard": _ARM,
    "arm_reach_margin": _ARM,
    "sawyer_reach": {**_ARM, "relabel": "future"},
    "sawyer_reach_hard": {**_ARM, "relabel": "future"},
    "sawyer_reach_margin": _ARM,
    # App. C.11: (256, 256) networks, Q squashed into [0, 128] (rewards in [0, 1], 128 steps)
    "desk": {"hidden": (256, 256), "env_steps": 100_000, "eval_every": 10_000, "critic_bound": "0,128"},
}


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    env: str = _field("nav2d", f"environment: one of {', '.join(envs.continuous_names())}")
    relabel: str = _field(
        "inverse_rl",
        f"relabel strategy: one of {', '.join(STRATEGIES)}. The *_released ones emulate the authors' released "
        "code to explain the paper's Fig. 5 (rewards on s; HER copies paired with themselves, s' = s; inverse RL "
        "scoring the commanded tasks but handing out goals achieved by the batch's states); see docs/results.md. "
        "advantage and air are Generalized Hindsight's relabelers (Li et al. 2020): each sample's whole episode is "
        "scored under the candidates by its discounted return minus the critic's V(s_0, psi) (advantage) or by its "
        "percentile rank among the batch's episodes (air, approximate IRL), and it takes one of its --top-k best. "
        "future_rest_goals, future_self_pairs, future_on_state and future_share45 are future with one factor of "
        "future_released each (goals U[i, T); s' = s for 4/5 of samples; rewards on s; 4/5 relabeled)",
    )
    relabel_fraction: float = _field(
        0.5, "fraction of each replay batch that is relabeled, in [0, 1] (App. D); the released HER ignores it"
    )
    relabel_values: str = _field(
        "auto",
        "inverse-RL values: 'critic' = soft Q(s,a,psi) of the first twin critic, as in the released code "
        "(Eq. 8, Alg. 1); "
        "'backup' = r(s,a) - log pi(a|s,psi) + gamma (1-done) Q(s',a',psi), the authors' code's estimator; "
        "'auto' = critic, except backup for inverse_rl_released",
    )
    candidates: str = _field(
        "tasks",
        "inverse-RL candidate tasks of a continuous family, one or more of these joined by '+': 'tasks' = the "
        "batch's commanded tasks (Alg. 1); 'achieved' = the goals the batch's transitions reached, phi(s'); "
        "'future' = goals each sample's own episode reaches later (one of its next 4 states); goal families "
        "only for the last two. E.g. tasks+future (2B candidates)",
    )
    prior_candidates: int = _field(
        0, "extra candidate tasks drawn from the prior for inverse RL (0 = batch tasks only)"
    )
    num_candidates: int = _field(
        0,
        "K: inverse RL scores B x K pairs against a random subset of K of its candidate tasks (0 = all of them); "
        "the kernel's cost grows with K, and log Z is still estimated over the whole batch",
    )
    top_k: int = _field(1, "advantage and air: a sample takes one of its episode's top_k candidates, uniformly")
    starts: str = _field(
        "fresh",
        "where an env restarts after an episode: 'fresh' = a new draw of its start distribution every episode; "
        "'reuse' = the start it first drew (Brax's AutoResetWrapper), cheaper where a reset is costly, e.g. MJX. "
        "Tasks are drawn anew either way; cheetah, quadruped and the arms always reuse (their start is fixed)",
    )
    seed: int = _field(0, "base random seed; seed i of the vmapped axis uses fold_in(seed, i)")
    seeds: int = _field(1, "number of independent seeds, trained as one vmapped program")
    env_steps: int = _field(
        1_000_000,
        "environment steps per seed, warm-up included, all --num-envs envs together; rounded up to whole evaluation "
        "chunks (the resolved budget is printed at the start)",
    )
    warmup_steps: int = _field(5_000, "initial steps with uniform random actions and no updates")
    num_envs: int = _field(16, "parallel environments per seed")
    updates_per_env_step: float = _field(
        1.0, "gradient updates per environment step (App. C.1 tried 1, 3, 10, 30); num_envs x this must be whole"
    )
    batch_size: int = _field(32, "replay batch size B (App. C.1: 32); inverse RL scores B x B pairs")
    hidden: tuple[int, ...] = _field((32, 32), "hidden layer widths of actor and critic, e.g. 64,64")
    learning_rate: float = _field(3e-4, "Adam learning rate for actor, critic and alpha")
    gamma: float = _field(0.99, "discount factor")
    tau: float = _field(0.005, "Polyak rate of the target critic")
    grad_clip: float = _field(0.0, "clip gradients to this global norm; 0 = off (App. C.1: 1 on Sawyer and Jaco)")
    critic_bound: str = _field(
        "",
        "LOW,HIGH squashes the critic's output into (LOW, HIGH) with a sigmoid, as the released configs do for "
        "finger and reacher (-1000,0); empty = unbounded",
    )
    buffer_size: int = _field(1_000_000, "replay capacity in transitions, all parallel envs together")
    eval_every: int = _field(25_000, "environment steps between evaluations (one compiled chunk)")
    eval_episodes: int = _field(20, "deterministic evaluation episodes per seed at each evaluation")
    sweep: str = _field(
        "",
        "hyperparameter sweep NAME=V1,V2,...: every value x every seed is one run of the same vmapped program "
        f"(run r has value r // seeds and seed index r % seeds); NAME is one of {', '.join(SWEEPABLE)}, "
        "and the values replace that option's",
    )

    def __post_init__(self):
        if self.env not in envs.names():
            raise ValueError(f"env={self.env!r} is unknown; valid envs: {', '.join(envs.continuous_names())}")
        spec = self.relabel_spec  # checks the relabel options on their own
        if self.starts not in START_MODES:
            raise ValueError(f"starts={self.starts!r} is unknown; valid: {', '.join(START_MODES)}")
        self.critic_bounds  # noqa: B018 (parses and checks --critic-bound)
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"{f.name}={value} must be a finite number")
            if isinstance(value, int) and f.name != "seed" and not value < 2**31:  # int32 counters in the loop
                raise ValueError(f"{f.name}={value} must be < 2**31")
        if not 0 <= self.seed < 2**63:
            raise ValueError(f"seed={self.seed} must be in [0, 2**63)")
        if not 0.0 <= self.relabel_fraction <= 1.0:
            raise ValueError(f"relabel_fraction={self.relabel_fraction} is outside [0, 1]")
        for name in ("seeds", "env_steps", "num_envs", "batch_size", "buffer_size", "eval_every", "eval_episodes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be a positive integer")
        if self.warmup_steps < 0:
            raise ValueError(f"warmup_steps={self.warmup_steps} must be >= 0")
        for name in ("learning_rate", "updates_per_env_step"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}={getattr(self, name)} must be > 0")
        if not 0.0 <= self.gamma < 1.0:
            raise ValueError(f"gamma={self.gamma} is outside [0, 1)")
        if not 0.0 < self.tau <= 1.0:
            raise ValueError(f"tau={self.tau} is outside (0, 1]")
        if self.grad_clip < 0:
            raise ValueError(f"grad_clip={self.grad_clip} must be >= 0")
        if not self.hidden or min(self.hidden) < 1:
            raise ValueError(f"hidden={self.hidden} must be one or more positive widths")
        upi = self.num_envs * self.updates_per_env_step
        if abs(upi - round(upi)) > 1e-9 or round(upi) < 1:
            raise ValueError(
                f"num_envs x updates_per_env_step = {upi:g} must be a positive whole number of updates per iteration"
            )
        if self.batch_size > self.buffer_size:
            raise ValueError(f"batch_size={self.batch_size} is larger than buffer_size={self.buffer_size}")
        if self.buffer_size < self.num_envs:
            raise ValueError(f"buffer_size={self.buffer_size} must hold at least one step per env ({self.num_envs})")
        if self.warmup_steps < self.batch_size:
            raise ValueError(f"warmup_steps={self.warmup_steps} must be >= batch_size={self.batch_size}")
        if self.warmup_steps >= self.env_steps:
            raise ValueError(f"warmup_steps={self.warmup_steps} must be < env_steps={self.env_steps}")
        try:
            spec.check(envs.make(self.env).task_family, self.batch_size)
        except ValueError as e:
            raise ValueError(f"{e} (env={self.env!r})") from None
        if self.sweep:
            name, values = self.sweep_axis
            for value in values:  # each value must be a valid config on its own
                try:
                    dataclasses.replace(self, sweep="", **{name: value})
                except ValueError as e:
                    raise ValueError(f"sweep={self.sweep!r}: {e}") from None
        if envs.make(self.env).discrete_actions:
            raise ValueError(f"env={self.env!r} has discrete actions; SAC training needs a continuous-action env")

    # ---- derived quantities (never stored) ------------------------------------------------------------
    @property
    def relabel_spec(self) -> RelabelSpec:
        """The relabel options as the spec that `relabel.relabel` applies."""
        return RelabelSpec(
            strategy=self.relabel,
            candidates=self.candidates,
            prior_candidates=self.prior_candidates,
            num_candidates=self.num_candidates,
            values=self.relabel_values,
            top_k=self.top_k,
            gamma=self.gamma,
        )

    @property
    def critic_bounds(self) -> tuple[float, float] | None:
        """(low, high) of `critic_bound`, or None."""
        if not self.critic_bound:
            return None
        try:
            low, high = (float(v) for v in self.critic_bound.split(","))
        except ValueError:
            raise ValueError(f"critic_bound={self.critic_bound!r} must be LOW,HIGH, e.g. -1000,0") from None
        if not (math.isfinite(low) and math.isfinite(high) and low < high):
            raise ValueError(f"critic_bound={self.critic_bound!r} needs finite LOW < HIGH")
        return low, high

    @property
    def sweep_axis(self) -> tuple[str, tuple[float, ...]] | None:
        """(name, values) of `sweep`, or None."""
        if not self.sweep:
            return None
        name, sep, text = self.sweep.partition("=")
        if not sep or name not in SWEEPABLE:
            raise ValueError(f"sweep={self.sweep!r} must be NAME=V1,V2,... with NAME one of {', '.join(SWEEPABLE)}")
        try:
            values = tuple(float(v) for v in text.split(","))
        except ValueError:
            raise ValueError(f"sweep={self.sweep!r}: the values must be comma-separated numbers") from None
        if len(set(values)) != len(values):
            raise ValueError(f"sweep={self.sweep!r} repeats a value")
        return name, values

    @property
    def runs(self) -> int:
        """Independent runs trained as one vmapped program: seeds x sweep values."""
        return self.seeds * (len(self.sweep_axis[1]) if self.sweep else 1)

    def run_table(self) -> list[dict]:
        """One dict per run: its index `run`, `seed_index` (r % seeds) and, in a sweep, the swept value."""
        table = [{"run": r, "seed_index": r % self.seeds} for r in range(self.runs)]
        if self.sweep_axis is not None:
            name, values = self.sweep_axis
            for row in table:
                row[name] = values[row["run"] // self.seeds]
        return table

    @property
    def updates_per_iteration(self) -> int:
        """Gradient updates after each vector step of all `num_envs` envs."""
        return round(self.num_envs * self.updates_per_env_step)

    @property
    def iterations_per_chunk(self) -> int:
        """Vector steps per compiled chunk (between evaluations)."""
        return max(1, self.eval_every // self.num_envs)

    @property
    def warmup_iterations(self) -> int:
        return math.ceil(self.warmup_steps / self.num_envs)

    @property
    def num_chunks(self) -> int:
        steps_left = self.env_steps - self.warmup_iterations * self.num_envs
        return max(1, math.ceil(steps_left / (self.iterations_per_chunk * self.num_envs)))

    @property
    def total_env_steps(self) -> int:
        """Env steps each seed takes: warm-up, then whole chunks (`env_steps` rounded up)."""
        return (self.warmup_iterations + self.num_chunks * self.iterations_per_chunk) * self.num_envs

    @property
    def budget_text(self) -> str:
        """The resolved budget in words, as the CLI prints it."""
        warmup = self.warmup_iterations * self.num_envs
        chunk = self.iterations_per_chunk * self.num_envs
        updates = self.updates_per_iteration * self.num_chunks * self.iterations_per_chunk
        return (
            f"{self.total_env_steps:,} env steps per seed = {warmup:,} warm-up + {self.num_chunks} evaluation "
            f"chunk(s) x {chunk:,} (--env-steps {self.env_steps:,} rounded up to whole chunks of --num-envs x "
            f"(--eval-every // --num-envs) steps); {updates:,} updates per seed"
        )

    @property
    def capacity_per_env(self) -> int:
        return self.buffer_size // self.num_envs

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def preset(cls, env: str = "nav2d", **overrides) -> TrainConfig:
        """The config for `env`: field defaults, then the env's preset, then `overrides`."""
        return cls(**{**ENV_PRESETS.get(env, {}), "env": env, **overrides})

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        """Inverse of `to_dict` after a JSON round trip (lists back to tuples)."""
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})
