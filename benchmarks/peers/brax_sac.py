"""Brax's SAC trainer (`brax.training.agents.sac.train`) on a MuJoCo Playground env, timed the way
Brax times itself. Runs in its own venv (`make peers`: brax 0.14.2's trainer needs jax < 0.8) and
prints one JSON line; `benchmarks/vs_brax.py` starts it as a subprocess.

Brax runs `num_evals - 1` training epochs; each reports `training/sps` (env steps of that epoch / its
wall time, evaluation excluded). The first epoch includes compilation; the others are steady state.
"""

from __future__ import annotations

import argparse
import functools
import json
import time


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--env", default="ReacherEasy", help="Playground registry name")
    p.add_argument("--num-envs", type=int, default=16, help="parallel envs")
    p.add_argument("--batch-size", type=int, default=32, help="SGD batch size")
    p.add_argument("--hidden", default="64,64", help="hidden widths of policy and Q networks")
    p.add_argument("--grad-updates-per-step", type=int, default=1, help="updates per vector step of all envs")
    p.add_argument("--epoch-steps", type=int, default=20_000, help="env steps per training epoch")
    p.add_argument("--epochs", type=int, default=3, help="training epochs (the first includes compilation)")
    p.add_argument("--min-replay-size", type=int, default=1_000, help="prefill env steps")
    p.add_argument("--max-replay-size", type=int, default=100_000, help="replay capacity in transitions")
    p.add_argument("--episode-length", type=int, default=1000, help="episode length")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    args = p.parse_args()

    import jax
    from brax.training.agents.sac import networks as sac_networks
    from brax.training.agents.sac import train as sac
    from mujoco_playground import registry, wrapper

    env = registry.load(args.env, config_overrides={"impl": "jax"})
    epochs = []
    t_start = time.perf_counter()

    def progress(step, metrics):
        if "training/sps" in metrics:
            epochs.append({"env_steps": int(step), "sps": float(metrics["training/sps"]),
                           "wall_s": time.perf_counter() - t_start})  # fmt: skip

    hidden = tuple(int(w) for w in args.hidden.split(","))
    sac.train(
        environment=env,
        wrap_env_fn=wrapper.wrap_for_brax_training,
        num_timesteps=args.min_replay_size + args.epochs * args.epoch_steps,
        episode_length=args.episode_length,
        num_envs=args.num_envs,
        num_eval_envs=args.num_envs,
        batch_size=args.batch_size,
        num_evals=args.epochs + 1,
        min_replay_size=args.min_replay_size,
        max_replay_size=args.max_replay_size,
        grad_updates_per_step=args.grad_updates_per_step,
        learning_rate=3e-4,
        discounting=0.99,
        seed=args.seed,
        network_factory=functools.partial(sac_networks.make_sac_networks, hidden_layer_sizes=hidden),
        progress_fn=progress,
    )
    steady = epochs[1:]
    sps = sum(e["sps"] for e in steady) / len(steady)
    epoch_steps = epochs[0]["env_steps"] - args.min_replay_size
    print(json.dumps({
        "peer": f"brax {__import__('brax').__version__} sac.train", "jax": jax.__version__,
        "env_steps_per_s": sps,
        "updates_per_s": sps / args.num_envs * args.grad_updates_per_step,
        "first_epoch_s": epoch_steps / epochs[0]["sps"],
        "compile_s": epoch_steps / epochs[0]["sps"] - epoch_steps / sps,
        "epochs": epochs,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
