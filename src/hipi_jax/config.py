"""Run configuration: `TrainConfig`, made of its parts' own frozen configs, each validated where it is
defined: `RunConfig` (env and budget, here), `RelabelSpec` (relabel.py), `SACConfig` (agents/sac.py),
`EvalConfig` (here) and the sweep.

The CLI's flags are the option names of `OPTIONS` with hyphens (each names one field of one part;
`HELP` is its `--help` text); `TrainConfig.from_options` builds a config from them. config.json holds
the parts (`to_dict`, with `CONFIG_VERSION`); `from_dict` also reads hipi-jax 0.2's flat files.
Derived quantities are properties, never written back.
"""

from __future__ import annotations

import dataclasses
import math

from hipi_jax import envs
from hipi_jax.agents.sac import SACConfig
from hipi_jax.relabel import STRATEGIES, RelabelSpec

START_MODES = ("fresh", "reuse")
# Numeric hyperparameters a sweep may vary in one compiled program: none of them changes a shape.
SWEEPABLE = ("relabel_fraction", "learning_rate", "gamma", "tau")


CONFIG_VERSION = 2  # config.json's layout: 2 = one object per part (0.3); 0.2's flat files have no version
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


# Each option: (part, field); "" = TrainConfig's own field.
OPTIONS: dict[str, tuple[str, str]] = {
    "env": ("run", "env"),
    "relabel": ("relabel", "strategy"),
    "relabel_fraction": ("relabel", "fraction"),
    "relabel_values": ("relabel", "values"),
    "candidates": ("relabel", "candidates"),
    "prior_candidates": ("relabel", "prior_candidates"),
    "num_candidates": ("relabel", "num_candidates"),
    "top_k": ("relabel", "top_k"),
    "episode_ends": ("relabel", "episode_ends"),
    "starts": ("run", "starts"),
    "seed": ("run", "seed"),
    "seeds": ("run", "seeds"),
    "env_steps": ("run", "env_steps"),
    "warmup_steps": ("run", "warmup_steps"),
    "num_envs": ("run", "num_envs"),
    "updates_per_env_step": ("run", "updates_per_env_step"),
    "batch_size": ("run", "batch_size"),
    "hidden": ("sac", "hidden"),
    "learning_rate": ("sac", "learning_rate"),
    "gamma": ("sac", "gamma"),
    "tau": ("sac", "tau"),
    "grad_clip": ("sac", "grad_clip"),
    "critic_bound": ("sac", "critic_bound"),
    "buffer_size": ("run", "buffer_size"),
    "eval_every": ("evaluation", "every"),
    "eval_episodes": ("evaluation", "episodes"),
    "sweep": ("", "sweep"),
}

HELP: dict[str, str] = {
    "env": f"environment: one of {', '.join(envs.continuous_names())}",
    "relabel": f"relabel strategy: one of {', '.join(STRATEGIES)}. The *_released ones emulate the authors' released "
    "code to explain the paper's Fig. 5 (rewards on s; HER copies paired with themselves, s' = s; inverse RL "
    "scoring the commanded tasks but handing out goals achieved by the batch's states): a mix of the released "
    "code's two configurations, its README command (final_released, future_released, inverse_rl_released_tasks) "
    "and its defaults (the *_released_defaults); see docs/results.md. "
    "advantage and air are Generalized Hindsight's relabelers (Li et al. 2020): each sample's whole episode is "
    "scored under the candidates by its discounted return minus the critic's V(s_0, psi) (advantage) or by its "
    "percentile rank among the batch's episodes (air, approximate IRL), and it takes one of its --top-k best. "
    "future_rest_goals, future_self_pairs, future_on_state and future_share45 are future with one factor of "
    "future_released each (goals U[i, T); s' = s for 4/5 of samples; rewards on s; 4/5 relabeled)",
    "relabel_fraction": "fraction of each replay batch that is relabeled, in [0, 1] (App. D); the released HER "
    "and the *_released_defaults ignore it",
    "relabel_values": "inverse-RL values: 'critic' = soft Q(s,a,psi) of the first twin critic, as in the released "
    "code (Eq. 8, Alg. 1); 'backup' = r(s,a) - log pi(a|s,psi) + gamma (1-done) Q(s',a',psi), the authors' code's "
    "estimator; 'auto' = critic, except backup for the inverse_rl_released ones",
    "candidates": "inverse-RL candidate tasks of a continuous family, one or more of these joined by '+': 'tasks' = "
    "the batch's commanded tasks (Alg. 1); 'achieved' = the goals the batch's transitions reached, phi(s'); "
    "'future' = goals each sample's own episode reaches later (one of its next 4 states); goal families "
    "only for the last two. E.g. tasks+future (2B candidates)",
    "prior_candidates": "extra candidate tasks drawn from the prior for inverse RL (0 = batch tasks only)",
    "num_candidates": "K: inverse RL scores B x K pairs against a random subset of K of its candidate tasks (0 = all "
    "of them); the kernel's cost grows with K, and log Z is still estimated over the whole batch",
    "top_k": "advantage and air: a sample takes one of its episode's top_k candidates, uniformly",
    "episode_ends": "the strategies with rewards on s (the *_released ones, future_on_state): 'released' emulates "
    "the released env's end of an episode that reaches its goal, the goal state stored as one more item that "
    "succeeds (relabel.released_episode_ends); 'stored' samples the transitions as stored",
    "starts": "where an env restarts after an episode: 'fresh' = a new draw of its start distribution every "
    "episode; 'reuse' = the start it first drew (Brax's AutoResetWrapper), cheaper where a reset is costly, e.g. "
    "MJX. Tasks are drawn anew either way; cheetah, quadruped and the arms always reuse (their start is fixed)",
    "seed": "base random seed; seed i of the vmapped axis uses fold_in(seed, i)",
    "seeds": "number of independent seeds, trained as one vmapped program",
    "env_steps": "environment steps per seed, warm-up included, all --num-envs envs together; rounded up to whole "
    "evaluation chunks (the resolved budget is printed at the start)",
    "warmup_steps": "initial steps with uniform random actions and no updates",
    "num_envs": "parallel environments per seed",
    "updates_per_env_step": "gradient updates per environment step (App. C.1 tried 1, 3, 10, 30); num_envs x this "
    "must be whole",
    "batch_size": "replay batch size B (App. C.1: 32); inverse RL scores B x B pairs",
    "hidden": "hidden layer widths of actor and critic, e.g. 64,64",
    "learning_rate": "Adam learning rate for actor, critic and alpha",
    "gamma": "discount factor",
    "tau": "Polyak rate of the target critic",
    "grad_clip": "clip gradients to this global norm; 0 = off (App. C.1: 1 on Sawyer and Jaco)",
    "critic_bound": "LOW,HIGH squashes the critic's output into (LOW, HIGH) with a sigmoid, as the released configs "
    "do for finger and reacher (-1000,0); empty = unbounded",
    "buffer_size": "replay capacity in transitions, all parallel envs together",
    "eval_every": "environment steps between evaluations (one compiled chunk)",
    "eval_episodes": "deterministic evaluation episodes per seed at each evaluation",
    "sweep": "hyperparameter sweep NAME=V1,V2,...: every value x every seed is one run of the same vmapped program "
    f"(run r has value r // seeds and seed index r % seeds); NAME is one of {', '.join(SWEEPABLE)}, "
    "and the values replace that option's",
}


def _check_numbers(config, exempt=()) -> None:
    """Every float option finite, every integer one < 2**31 (the loop's int32 counters)."""
    options = config.options() if hasattr(config, "options") else dataclasses.asdict(config)
    for name, value in options.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{name}={value} must be a finite number")
        if isinstance(value, int) and name not in exempt and not value < 2**31:
            raise ValueError(f"{name}={value} must be < 2**31")


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """The env and the budget: how much experience, in how many parallel envs and seeds."""

    env: str = "nav2d"
    starts: str = "fresh"
    seed: int = 0
    seeds: int = 1
    env_steps: int = 1_000_000
    warmup_steps: int = 5_000
    num_envs: int = 16
    updates_per_env_step: float = 1.0
    batch_size: int = 32
    buffer_size: int = 1_000_000

    def __post_init__(self):
        _check_numbers(self, exempt=("seed",))
        if self.env not in envs.names():
            raise ValueError(f"env={self.env!r} is unknown; valid envs: {', '.join(envs.continuous_names())}")
        if envs.make(self.env).discrete_actions:
            raise ValueError(f"env={self.env!r} has discrete actions; SAC training needs a continuous-action env")
        if self.starts not in START_MODES:
            raise ValueError(f"starts={self.starts!r} is unknown; valid: {', '.join(START_MODES)}")
        if not 0 <= self.seed < 2**63:
            raise ValueError(f"seed={self.seed} must be in [0, 2**63)")
        for name in ("seeds", "env_steps", "num_envs", "batch_size", "buffer_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be a positive integer")
        if self.warmup_steps < 0:
            raise ValueError(f"warmup_steps={self.warmup_steps} must be >= 0")
        if not self.updates_per_env_step > 0:
            raise ValueError(f"updates_per_env_step={self.updates_per_env_step} must be > 0")
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


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """Deterministic evaluation: `episodes` prior tasks per seed every `every` env steps."""

    every: int = 25_000
    episodes: int = 20

    def __post_init__(self):
        for name, value in (("eval_every", self.every), ("eval_episodes", self.episodes)):
            if value < 1:
                raise ValueError(f"{name}={value} must be a positive integer")


PARTS = {"run": RunConfig, "relabel": RelabelSpec, "sac": SACConfig, "evaluation": EvalConfig}


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """A run: its parts, and a sweep of one sweepable option. Build it from the flat options with
    `from_options` / `preset`, change options with `replace`."""

    run: RunConfig = RunConfig()
    relabel: RelabelSpec = RelabelSpec()
    sac: SACConfig = SACConfig(hidden=(32, 32))
    evaluation: EvalConfig = EvalConfig()
    sweep: str = ""

    def __post_init__(self):
        _check_numbers(self, exempt=("seed",))
        try:
            self.relabel.check(envs.make(self.run.env).task_family, self.run.batch_size)
        except ValueError as e:
            raise ValueError(f"{e} (env={self.run.env!r})") from None
        if self.sweep:
            name, values = self.sweep_axis
            for value in values:  # each value must be a valid config on its own
                try:
                    self.replace(sweep="", **{name: value})
                except ValueError as e:
                    raise ValueError(f"sweep={self.sweep!r}: {e}") from None

    # ---- the flat options (the CLI's flags) -----------------------------------------------------------
    @classmethod
    def from_options(cls, **options) -> TrainConfig:
        """The config of these options (`OPTIONS`' names); the others keep their defaults. Bad values
        raise ValueError naming the option."""
        if unknown := [k for k in options if k not in OPTIONS]:
            raise ValueError(f"unknown option(s) {', '.join(map(repr, unknown))}; valid: {', '.join(OPTIONS)}")
        given: dict = {name: {} for name in PARTS}
        own = {}
        for name, value in options.items():
            part, field = OPTIONS[name]
            value = tuple(value) if isinstance(value, list) else value
            (given[part] if part else own)[field] = value
        defaults = {f.name: f.default for f in dataclasses.fields(cls)}
        return cls(**{part: dataclasses.replace(defaults[part], **fields) for part, fields in given.items()}, **own)

    def options(self) -> dict:
        """The flat options, in `OPTIONS`' order."""
        return {name: getattr(getattr(self, part), field) if part else getattr(self, field)
                for name, (part, field) in OPTIONS.items()}  # fmt: skip

    def replace(self, **options) -> TrainConfig:
        """This config with some options changed (`OPTIONS`' names)."""
        return TrainConfig.from_options(**{**self.options(), **options})

    @classmethod
    def preset(cls, env: str = "nav2d", **overrides) -> TrainConfig:
        """The config for `env`: the defaults, then the env's preset, then `overrides` (options)."""
        return cls.from_options(**{**ENV_PRESETS.get(env, {}), "env": env, **overrides})

    # ---- config.json -----------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"version": CONFIG_VERSION, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        """Inverse of `to_dict` after a JSON round trip; also reads 0.2's flat objects of options."""
        return cls.from_options(**flat_options(d))

    # ---- derived quantities (never stored) ------------------------------------------------------------
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
        return self.run.seeds * (len(self.sweep_axis[1]) if self.sweep else 1)

    def run_table(self) -> list[dict]:
        """One dict per run: its index `run`, `seed_index` (r % seeds) and, in a sweep, the swept value."""
        table = [{"run": r, "seed_index": r % self.run.seeds} for r in range(self.runs)]
        if self.sweep_axis is not None:
            name, values = self.sweep_axis
            for row in table:
                row[name] = values[row["run"] // self.run.seeds]
        return table

    @property
    def updates_per_iteration(self) -> int:
        """Gradient updates after each vector step of all `num_envs` envs."""
        return round(self.run.num_envs * self.run.updates_per_env_step)

    @property
    def iterations_per_chunk(self) -> int:
        """Vector steps per compiled chunk (between evaluations)."""
        return max(1, self.evaluation.every // self.run.num_envs)

    @property
    def warmup_iterations(self) -> int:
        return math.ceil(self.run.warmup_steps / self.run.num_envs)

    @property
    def num_chunks(self) -> int:
        steps_left = self.run.env_steps - self.warmup_iterations * self.run.num_envs
        return max(1, math.ceil(steps_left / (self.iterations_per_chunk * self.run.num_envs)))

    @property
    def total_env_steps(self) -> int:
        """Env steps each seed takes: warm-up, then whole chunks (`env_steps` rounded up)."""
        return (self.warmup_iterations + self.num_chunks * self.iterations_per_chunk) * self.run.num_envs

    @property
    def budget_text(self) -> str:
        """The resolved budget in words, as the CLI prints it."""
        warmup = self.warmup_iterations * self.run.num_envs
        chunk = self.iterations_per_chunk * self.run.num_envs
        updates = self.updates_per_iteration * self.num_chunks * self.iterations_per_chunk
        return (
            f"{self.total_env_steps:,} env steps per seed = {warmup:,} warm-up + {self.num_chunks} evaluation "
            f"chunk(s) x {chunk:,} (--env-steps {self.run.env_steps:,} rounded up to whole chunks of --num-envs x "
            f"(--eval-every // --num-envs) steps); {updates:,} updates per seed"
        )

    @property
    def capacity_per_env(self) -> int:
        return self.run.buffer_size // self.run.num_envs


DEFAULTS: dict = TrainConfig().options()


def flat_options(d: dict) -> dict:
    """The options (`OPTIONS`' names) in a config.json object: `to_dict`'s parts, or 0.2's flat object.
    Raises ValueError for another version or layout."""
    if "version" not in d:
        return dict(d)
    if d["version"] != CONFIG_VERSION:
        raise ValueError(f"config version {d['version']!r} is not one this hipi-jax reads ({CONFIG_VERSION})")
    by_field = {field_key: name for name, field_key in OPTIONS.items()}
    flat = {}
    for part, fields in d.items():
        if part == "version":
            continue
        if part not in PARTS:
            if ("", part) not in by_field:
                raise ValueError(f"config key {part!r} is unknown; valid: version, {', '.join(PARTS)}, sweep")
            flat[by_field[("", part)]] = fields  # TrainConfig's own fields (sweep)
            continue
        if not isinstance(fields, dict):
            raise ValueError(f"config part {part!r} holds {type(fields).__name__}, not an object")
        for field, value in fields.items():
            flat[by_field.get((part, field), f"{part}.{field}")] = value
    return flat
