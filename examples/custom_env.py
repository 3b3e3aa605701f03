"""Register your own goal-reaching env and train inverse-RL relabeling on it.

An env implements only its simulator (`init_sim`, `sim_step`) and its sizes; rewards and termination
come from its task family (here `GoalReach`: r = 1(‖φ(s) − ψ‖ ≤ margin) − 1, terminal on success).

    python examples/custom_env.py --out runs/example-line
    hipi-eval runs/example-line --import examples/custom_env.py   # the saved policy, on the registered env
"""

from __future__ import annotations

import argparse
import dataclasses

import jax
import jax.numpy as jnp

from hipi_jax import TrainConfig, envs, load_policy, rollout, train
from hipi_jax.tasks import GoalReach


@dataclasses.dataclass(frozen=True, eq=False)
class Line(envs.Env):
    """A point on [−1, 1] that moves by at most 0.1 per step; the task ψ is a goal position on the line."""

    task_family: GoalReach = dataclasses.field(default_factory=lambda: GoalReach(margin=0.05, low=[-1.0], high=[1.0]))
    max_steps: int = 40

    @property
    def obs_dim(self) -> int:
        return 1

    @property
    def action_dim(self) -> int:
        return 1

    def init_sim(self, key):  # -> (simulator state, observation, features φ(s))
        x = jax.random.uniform(key, (1,), minval=-1.0, maxval=1.0)
        return x, x, x

    def sim_step(self, sim, action, key):
        x = jnp.clip(sim + 0.1 * jnp.clip(action, -1.0, 1.0), -1.0, 1.0)
        return x, x, x


envs.register("line", Line, overwrite=True)  # on import: TrainConfig.preset("line") and hipi-eval --import accept it


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/example-line")
    p.add_argument("--env-steps", type=int, default=20_000)
    p.add_argument("--warmup-steps", type=int, default=2_000)
    p.add_argument("--hidden", default="32,32")
    args = p.parse_args(argv)

    config = TrainConfig.from_options(
        env="line",
        relabel="inverse_rl",
        env_steps=args.env_steps,
        warmup_steps=args.warmup_steps,
        eval_every=args.env_steps // 4,
        hidden=tuple(int(w) for w in args.hidden.split(",")),
    )
    summary = train(config, out=args.out, overwrite=True, progress=False)
    policy = load_policy(args.out)
    episodes = rollout(envs.make("line"), policy.act_fn(), jax.random.PRNGKey(0), 20)
    result = {"train_success": summary["eval_success"], "success": float(episodes.success.mean())}
    print(f"line: {result}")
    return result


if __name__ == "__main__":
    main()
