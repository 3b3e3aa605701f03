"""Relabeling strategies on nav2d (Fig. 5's 2D navigation panel): none / random / final / future /
inverse_rl, every strategy with the same budget and its seeds trained as one vmapped program.

    python experiments/nav2d_relabel.py --out runs/nav2d_relabel            # CPU budget (README)
    python experiments/nav2d_relabel.py --env-steps 2000000 --seeds 5       # longer, e.g. on a GPU

Writes OUT/<strategy>/metrics.jsonl, OUT/results.json (config, final success and return per seed,
mean ± std, throughput) and OUT/curves.png (mean ± std over seeds). Evaluation tasks are the same for
every strategy (they depend only on the seed and the log point).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np

from hipi_jax import report, train
from hipi_jax.config import TrainConfig
from hipi_jax.relabel import STRATEGIES

# STRATEGY or STRATEGY@CANDIDATES (the inverse-RL candidate source, see `hipi-train --help`)
DEFAULT_STRATEGIES = ("none", "random", "final", "future", "inverse_rl", "inverse_rl@tasks+achieved")


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("runs/nav2d_relabel"), help="output directory")
    p.add_argument(
        "--strategies",
        default=",".join(DEFAULT_STRATEGIES),
        help="comma-separated relabel strategies, each STRATEGY or STRATEGY@CANDIDATES",
    )
    p.add_argument("--seeds", type=int, default=3, help="seeds per strategy (one vmapped program)")
    p.add_argument("--env-steps", type=int, default=300_000, help="environment steps per seed")
    p.add_argument("--updates-per-env-step", type=float, default=1.0, help="gradient updates per env step")
    p.add_argument("--eval-every", type=int, default=25_000, help="environment steps between evaluations")
    p.add_argument("--seed", type=int, default=0, help="base seed (seed i uses fold_in(seed, i))")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    args = p.parse_args(argv)
    strategies = args.strategies.split(",")
    bad = [s for s in strategies if s.split("@")[0] not in STRATEGIES]
    if bad:
        p.exit(2, f"nav2d_relabel: error: unknown strategy {bad[0]!r}; valid: {', '.join(STRATEGIES)}\n")
    if args.out.exists() and any(args.out.iterdir()) and not args.overwrite:
        p.exit(2, f"nav2d_relabel: error: --out {args.out} already holds files; pass --overwrite\n")
    args.strategies = strategies
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    configs = {}
    try:
        for strategy in args.strategies:
            relabel, _, candidates = strategy.partition("@")
            configs[strategy] = TrainConfig(
                env="nav2d",
                relabel=relabel,
                candidates=candidates or "tasks",
                seeds=args.seeds,
                seed=args.seed,
                env_steps=args.env_steps,
                updates_per_env_step=args.updates_per_env_step,
                eval_every=args.eval_every,
            )
    except ValueError as e:
        print(f"nav2d_relabel: error: {e}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    curves, results = {}, {}
    for strategy, config in configs.items():
        run_dir = args.out / strategy
        run_dir.mkdir(exist_ok=True)
        metrics = run_dir / "metrics.jsonl"
        metrics.unlink(missing_ok=True)
        report.write_json(run_dir / "config.json", config.to_dict())
        summary, _ = train.run(config, lambda rec, m=metrics: report.append_jsonl(m, rec), not args.no_progress)
        report.write_json(run_dir / "summary.json", summary)
        curves[strategy] = report.read_jsonl(metrics)
        success, ret = np.array(summary["eval_success"]), np.array(summary["eval_return"])
        results[strategy] = {
            "final_success": summary["eval_success"],
            "final_success_mean": float(success.mean()),
            "final_success_std": float(success.std()),
            "final_return_mean": float(ret.mean()),
            "final_return_std": float(ret.std()),
            # the mean over the last 3 evaluations is less noisy than the last one alone
            "last3_success_mean": float(np.mean([r["eval_success"] for r in curves[strategy][-3:]])),
            "env_steps_per_s": summary["env_steps_per_s"],
            "updates_per_s": summary["updates_per_s"],
            "wall_s": summary["wall_s"],
        }
        print(f"{strategy}: final success {success.mean():.2f} ± {success.std():.2f} over {args.seeds} seeds")
    common = {
        k: v for k, v in dataclasses.asdict(configs[args.strategies[0]]).items() if k not in ("relabel", "candidates")
    }
    report.write_json(args.out / "results.json", {"command": " ".join(sys.argv), "config": common, "results": results})
    report.plot_curves(curves, args.out / "curves.png", title=f"nav2d, {args.seeds} seeds, mean ± std")
    print(f"wrote {args.out}/results.json and {args.out}/curves.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
