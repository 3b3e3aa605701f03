"""Environment steps per second of every registered env at N parallel envs (uniform random actions,
auto-reset included), one jitted `lax.scan` per env, measured in one process.

    python benchmarks/env_steps.py                     # 64 envs, every env
    python benchmarks/env_steps.py --envs walker_linear,reacher_goal --num-envs 256

Prints a Markdown table and writes JSON (machine, versions, per-env figures) to --out.
"""

from __future__ import annotations

import argparse
import sys
from functools import partial
from pathlib import Path

import jax
import numpy as np
from common import timed

from hipi_jax import envs, report, stall
from hipi_jax.envs.base import auto_reset, reset_with_prior


def rollout_fn(env, num_envs: int, steps: int):
    def body(state, key):
        k_act, k_reset = jax.random.split(key)
        if env.discrete_actions:
            action = jax.random.randint(k_act, (num_envs,), 0, env.action_dim)
        else:
            action = jax.random.uniform(k_act, (num_envs, env.action_dim), minval=-1.0, maxval=1.0)
        state = jax.vmap(env.step)(state, action)
        return jax.vmap(partial(auto_reset, env))(state, jax.random.split(k_reset, num_envs)), None

    return jax.jit(
        lambda state, key: jax.lax.scan(body, state, jax.random.split(key, steps))[0],
        donate_argnums=0,
        compiler_options=env.compiler_options(),
    )


def first_rollout(env, num_envs: int, steps: int) -> tuple:
    """(the compiled rollout, the state after its first call, seconds of compiling and that call)."""
    state = jax.jit(jax.vmap(partial(reset_with_prior, env)), compiler_options=env.compiler_options())(
        jax.random.split(jax.random.key(0), num_envs)
    )
    roll = rollout_fn(env, num_envs, steps)
    return roll, *timed(roll, state, jax.random.key(1))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--envs", default=",".join(envs.names()), help="comma-separated env names")
    p.add_argument("--num-envs", type=int, default=64, help="parallel envs")
    p.add_argument("--steps", type=int, default=200, help="vector steps per timed call")
    p.add_argument("--repeats", type=int, default=3, help="timed calls per env (median reported)")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/env_steps.json"), help="JSON output")
    p.add_argument(
        "--hang-after",
        type=float,
        default=0.0,
        help="seconds one env may take (compiling included) before the run counts as hung and exits with code 75, "
        "its JSON holding the envs done so far (0 = wait forever)",
    )
    args = p.parse_args(argv)
    rows = []
    for name in args.envs.split(","):
        env = envs.make(name)
        message = lambda waited, name=name: f"env_steps: {name} hung: no result after {waited:.0f} s"  # noqa: E731
        with stall.StallGuard(message, args.hang_after):  # XLA's CPU runtime can deadlock (docs/reliability.md)
            roll, state, compile_s = first_rollout(env, args.num_envs, args.steps)
            times = []
            for i in range(args.repeats):
                state, sec = timed(roll, state, jax.random.key(2 + i))
                times.append(sec)
        sps = args.num_envs * args.steps / float(np.median(times))
        rows.append(
            {
                "env": name,
                "env_steps_per_s": sps,
                "first_call_s": compile_s,
                "times_s": times,
                "obs_dim": env.obs_dim,
                "action_dim": env.action_dim,
                "max_steps": env.max_steps,
            }
        )
        print(f"{name}: {sps:,.0f} env steps/s (first call {compile_s:.1f} s)", flush=True)
        report.write_benchmark(args.out, vars(args), rows)  # each env kept as it finishes
    print(f"\n| env | env steps/s at {args.num_envs} envs |\n|---|---:|")
    for r in rows:
        print(f"| `{r['env']}` | {r['env_steps_per_s']:,.0f} |")
    report.write_benchmark(args.out, vars(args), rows)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
