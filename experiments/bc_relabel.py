"""HIPI-BC vs task-agnostic BC (Fig. 7) and the partition-function ablation (Fig. 8), per domain.

For each domain: train a multi-task SAC expert with the env's `hipi-train` preset (the quadruped's
budget is cut to 10k env steps on the CPU: see CPU_BUDGET), roll it out for
--episodes trajectories on prior tasks, then clone with every method over --seeds vmapped seeds and
evaluate each on --eval-episodes prior tasks. Fig. 8: `hipi` and `hipi_no_partition` again with
--reward-bias added to the first candidate task's per-step reward.

    python experiments/bc_relabel.py --out runs/bc_relabel              # CPU budget (see --help)
    python experiments/bc_relabel.py --out runs/bc_paper --paper-scale  # 1000 trajectories, 1M-step experts

Writes results.json, bc_relabel.png (Fig. 7) and fig8_partition.png into --out after every domain,
and each domain's dataset as --out/ENV/demos.npz.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import jax

from hipi_jax import bc, dataset, report
from hipi_jax.config import TrainConfig

DOMAINS = ("cheetah_velocity", "reacher_discrete", "quadruped_linear")
METHODS = ("hipi", "hipi_no_partition", "agnostic", "true_task")
# CPU budget per domain: (trajectories, evaluation episodes per seed, expert env steps; None = the env's
# hipi-train preset). The quadruped trains at ~45 env steps/s on a 2-core CPU, so it gets less of all.
CPU_BUDGET = {
    "cheetah_velocity": (200, 200, None),
    "reacher_discrete": (200, 200, None),
    "quadruped_linear": (32, 10, 10_000),
}


def plot(results: dict, out: Path) -> None:
    """Fig. 7 (every method per domain) and Fig. 8 (with and without the reward bias) bar charts."""
    report.plot_bars({env: r["methods"] for env, r in results.items()}, out / "bc_relabel.png",
                     title="HIPI-BC vs task-agnostic BC (Fig. 7)")  # fmt: skip
    fig8 = {
        env: {
            **{m: r["methods"][m] for m in ("hipi", "hipi_no_partition")},
            **{f"{m} + bias": r["fig8"][m] for m in ("hipi", "hipi_no_partition")},
        }
        for env, r in results.items()
    }
    bias = next(iter(results.values()))["fig8_reward_bias"]
    report.plot_bars(fig8, out / "fig8_partition.png", title=f"reward bias {bias} on one task (Fig. 8)")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True, help="output directory")
    p.add_argument("--domains", default=",".join(DOMAINS), help=f"comma-separated (default: {','.join(DOMAINS)})")
    p.add_argument("--seed", type=int, default=0, help="base seed (default: 0)")
    p.add_argument("--seeds", type=int, default=5, help="BC seeds per method, vmapped (default: 5)")
    p.add_argument("--episodes", type=int, default=None, help="trajectories per domain (default: CPU_BUDGET)")
    p.add_argument("--eval-episodes", type=int, default=None, help="evaluation episodes per seed (default: CPU_BUDGET)")
    p.add_argument(
        "--expert-steps",
        type=int,
        default=None,
        help="expert SAC env steps (default: CPU_BUDGET, else the env's preset)",
    )
    p.add_argument("--reward-bias", type=float, default=1.0, help="Fig. 8 per-step bias on one task (default: 1.0)")
    p.add_argument("--paper-scale", action="store_true", help="1000 trajectories, 200 eval episodes, 1M-step experts")
    p.add_argument("--replot", action="store_true", help="only redraw the plots from --out/results.json")
    args = p.parse_args(argv)
    if args.replot:
        saved = json.loads((args.out / "results.json").read_text())
        plot({k: v for k, v in saved.items() if k != "args"}, args.out)
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    results = {}
    for env in args.domains.split(","):
        t0 = time.perf_counter()
        budget = (1000, 200, 1_000_000) if args.paper_scale else CPU_BUDGET.get(env, (200, 200, None))
        episodes, eval_episodes = args.episodes or budget[0], args.eval_episodes or budget[1]
        expert_steps = args.expert_steps or budget[2]
        config = TrainConfig.preset(env, seed=args.seed, **({"env_steps": expert_steps} if expert_steps else {}))
        print(f"{env}: expert {config.env_steps} env steps, {episodes} trajectories", flush=True)
        data, expert = bc.demonstrations(config, episodes, jax.random.key(args.seed))
        (args.out / env).mkdir(exist_ok=True)
        dataset.save(args.out / env / "demos.npz", data)
        base = bc.BCConfig(eval_episodes=eval_episodes)
        methods, fig8 = {}, {}
        for method in METHODS:
            methods[method] = bc.summarize(
                bc.run(dataclasses.replace(base, method=method), data, args.seed, args.seeds)
            )
            print(f"  {method}: {methods[method]['eval_return_mean']:.2f} ± {methods[method]['eval_return_std']:.2f}")
        for method in ("hipi", "hipi_no_partition"):
            cfg = dataclasses.replace(base, method=method, reward_bias=args.reward_bias)
            fig8[method] = bc.summarize(bc.run(cfg, data, args.seed, args.seeds))
            print(f"  {method} + bias: {fig8[method]['eval_return_mean']:.2f} ± {fig8[method]['eval_return_std']:.2f}")
        results[env] = {
            "expert": expert,
            "trajectories": episodes,
            "eval_episodes": eval_episodes,
            "methods": methods,
            "fig8_reward_bias": args.reward_bias,
            "fig8": fig8,
            "wall_s": round(time.perf_counter() - t0, 1),
        }
        report.write_json(args.out / "results.json", {"args": {k: str(v) for k, v in vars(args).items()}, **results})
        plot(results, args.out)
    print(f"wrote {args.out}/results.json, bc_relabel.png, fig8_partition.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
