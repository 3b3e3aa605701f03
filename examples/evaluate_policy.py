"""Load a trained policy, act with it, and evaluate it on new tasks (no training program is built).

python examples/evaluate_policy.py runs/example-point_goal
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp

from hipi_jax import envs, load_policy, rollout


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", help="a hipi-train --out directory")
    p.add_argument("--episodes", type=int, default=10)
    args = p.parse_args(argv)

    policy = load_policy(args.run_dir)  # run 0, newest step
    env = envs.make(policy.env)

    # one action: deterministic (tanh of the mean) without a key, a sample with one
    obs, task = jnp.zeros(policy.obs_dim), jnp.zeros(policy.task_dim)
    print("action:", policy.act(obs, task), "sampled:", policy.act(obs, task, jax.random.PRNGKey(1)))

    # a batch of observations at once: act is jittable and vmappable
    batch = jax.jit(jax.vmap(policy.act))(jnp.zeros((8, policy.obs_dim)), jnp.zeros((8, policy.task_dim)))
    assert batch.shape == (8, policy.action_dim)

    # whole episodes on tasks from the env's prior (what hipi-eval does, without the statistics)
    episodes = jax.jit(lambda key: rollout(env, policy.act_fn(), key, args.episodes))(jax.random.PRNGKey(0))
    result = {"return": float(episodes.returns.mean()), "success": float(episodes.success.mean())}
    print(f"{policy.env} policy at {policy.env_steps} env steps over {args.episodes} episodes: {result}")
    return result


if __name__ == "__main__":
    main()
