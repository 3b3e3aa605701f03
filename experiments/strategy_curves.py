"""Learning curves of relabeling strategies on several envs, the machinery behind Fig. 5 and Fig. 6
(`fig5_goal_reaching.py`, `fig6_general_tasks.py`). Every (env, strategy) pair is one `hipi-train`
pipeline run with all its seeds as one vmapped program, under the same budget and evaluation tasks.

A pair whose run is complete in `--out` (same config) is not run again, so a long suite can be
stopped and restarted, and `--envs` can add envs to an existing results directory. results.json
holds, per env and strategy, the env-step grid and the per-seed curves of return and success.

A strategy is a `hipi-train --relabel` name, or STRATEGY@CANDIDATES for inverse RL with another
candidate set (`--candidates`), e.g. inverse_rl@tasks+achieved.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from hipi_jax import envs, report, train
from hipi_jax.config import TrainConfig
from hipi_jax.relabel import CANDIDATE_SOURCES, STRATEGIES


def parser(description: str, envs_default: str, strategies_default: str, out_default: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path(out_default), help="output directory")
    p.add_argument("--envs", default=envs_default, help="comma-separated envs")
    p.add_argument(
        "--strategies",
        default=strategies_default,
        help="comma-separated relabel strategies, each STRATEGY or STRATEGY@CANDIDATES, e.g. inverse_rl@achieved",
    )
    p.add_argument("--seed", type=int, default=0, help="base seed (seed i uses fold_in(seed, i))")
    p.add_argument("--seeds", type=int, default=3, help="seeds per (env, strategy), one vmapped program")
    p.add_argument("--env-steps", type=int, default=0, help="env steps per seed for every env (0 = the CPU budget)")
    p.add_argument("--paper-scale", action="store_true", help="the paper's budgets (GPU-sized: 1M+ steps per env)")
    p.add_argument("--replot", action="store_true", help="only redraw the figure and results.json from --out")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    return p


def check(p: argparse.ArgumentParser, args, budgets: dict) -> argparse.Namespace:
    name = p.prog
    args.envs, args.strategies = args.envs.split(","), args.strategies.split(",")
    for env in args.envs:
        if env not in envs.continuous_names():
            p.exit(2, f"{name}: error: unknown env {env!r}; valid: {', '.join(envs.continuous_names())}\n")
        if env not in budgets:
            p.exit(2, f"{name}: error: env {env!r} has no budget here; valid: {', '.join(budgets)}\n")
    for s in args.strategies:
        relabel, _, candidates = s.partition("@")
        if relabel not in STRATEGIES or (candidates and candidates not in CANDIDATE_SOURCES):
            p.exit(2, f"{name}: error: unknown strategy {s!r}; valid: {', '.join(STRATEGIES)}, each optionally "
                      f"@ one of {', '.join(CANDIDATE_SOURCES)}\n")  # fmt: skip
    if args.seeds < 1 or args.env_steps < 0:
        p.exit(2, f"{name}: error: --seeds must be >= 1 and --env-steps >= 0\n")
    return args


def config_for(args, env: str, strategy: str, budget: dict) -> TrainConfig:
    overrides = dict(budget)
    if args.env_steps:
        overrides["env_steps"] = args.env_steps
    relabel, _, candidates = strategy.partition("@")
    if candidates:
        overrides["candidates"] = candidates
    return TrainConfig.preset(env, relabel=relabel, seeds=args.seeds, seed=args.seed, **overrides)


def main(argv, prog: str, doc: str, envs: str, strategies: str, budgets: dict, paper: dict, title: str) -> int:
    """A figure script's entry point: parse `argv`, pick the CPU or `--paper-scale` budgets, run."""
    p = parser(doc.split("\n\n")[0], envs, strategies, f"runs/{prog.split('_')[0]}")
    p.prog = prog
    args = p.parse_args(argv)
    budgets = paper if args.paper_scale else budgets
    return run(check(p, args, budgets), budgets, title)


def run(args, budgets: dict, title: str) -> int:
    """Train every (env, strategy) pair not yet complete in --out, then write results.json and the PNG."""
    args.out.mkdir(parents=True, exist_ok=True)
    for env in args.envs:
        for strategy in args.strategies:
            if args.replot:
                continue
            try:
                config = config_for(args, env, strategy, budgets[env])
            except ValueError as e:  # e.g. final/future on a non-goal env
                print(f"{env}/{strategy}: skipped ({e})", file=sys.stderr)
                continue
            run_dir = args.out / env / strategy
            done = run_dir / "summary.json"
            same = done.exists() and json.loads((run_dir / "config.json").read_text()) == json.loads(
                json.dumps(config.to_dict())
            )
            if same:
                print(f"{env}/{strategy}: complete in {run_dir}, not run again")
                continue
            run_dir.mkdir(parents=True, exist_ok=True)
            done.unlink(missing_ok=True)
            metrics = run_dir / "metrics.jsonl"
            metrics.unlink(missing_ok=True)
            report.write_json(run_dir / "config.json", config.to_dict())
            summary, _ = train.run(config, lambda rec, m=metrics: report.append_jsonl(m, rec), not args.no_progress)
            report.write_json(done, summary)
            print(f"{env}/{strategy}: final success {np.mean(summary.get('eval_success', [np.nan])):.2f}, "
                  f"return {np.mean(summary['eval_return']):.1f} ({summary['wall_s']:.0f} s)", flush=True)  # fmt: skip
    results, saved = collect(args.out), args.out / "results.json"
    command = json.loads(saved.read_text())["command"] if args.replot and saved.exists() else " ".join(sys.argv)
    report.write_json(saved, {"command": command, "results": results})
    plot(results, args.out / f"{args.out.name}.png", title)
    (args.out / "table.md").write_text(table(results))
    print(f"wrote {args.out / 'results.json'}, {args.out / 'table.md'} and {args.out / (args.out.name + '.png')}")
    return 0


def collect(out: Path) -> dict:
    """Per env and strategy: the env-step grid, per-seed curves and the final figures (mean ± std)."""
    results = {}
    for summary_path in sorted(out.glob("*/*/summary.json")):
        env, strategy = summary_path.parent.parent.name, summary_path.parent.name
        records = report.read_jsonl(summary_path.parent / "metrics.jsonl")
        entry = {"env_steps": [r["env_steps"] for r in records]}
        for key in ("eval_return", "eval_success"):
            if key in records[0]:
                per_seed = np.asarray([r[key] for r in records]).T  # [seeds, points]
                entry[key] = per_seed.tolist()
                final, area = per_seed[:, -1], per_seed.mean(1)  # area: the curve's mean, i.e. learning speed
                entry[f"final_{key}_mean"], entry[f"final_{key}_std"] = float(final.mean()), float(final.std())
                entry[f"area_{key}_mean"], entry[f"area_{key}_std"] = float(area.mean()), float(area.std())
        entry["wall_s"] = json.loads(summary_path.read_text())["wall_s"]
        results.setdefault(env, {})[strategy] = entry
    return results


def table(results: dict) -> str:
    """The final figures as a markdown table: per env and strategy, mean ± std over seeds of the last evaluation
    and of the mean over all evaluations (the area under the learning curve: how fast it learnt)."""
    rows = ["| env | strategy | seeds | env steps | final success | mean success over the curve | final return | "
            "mean return over the curve | wall time |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for env, strategies in results.items():
        for strategy, e in strategies.items():
            cells = [_mean_std(e, f"{w}_{k}") for k in ("eval_success", "eval_return") for w in ("final", "area")]
            rows.append(f"| {env} | `{strategy}` | {len(e['eval_return'])} | {e['env_steps'][-1]:,} | "
                        f"{' | '.join(cells)} | {e['wall_s']:.0f} s |")  # fmt: skip
    return "\n".join(rows) + "\n"


def _mean_std(entry: dict, key: str) -> str:
    return f"{entry[f'{key}_mean']:.2f} ± {entry[f'{key}_std']:.2f}" if f"{key}_mean" in entry else "–"


def plot(results: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    if not names:
        return
    strategies = sorted({strategy for env in names for strategy in results[env]})
    color = {strategy: f"C{i % 10}" for i, strategy in enumerate(strategies)}  # one colour per strategy everywhere
    key = lambda env: "eval_success" if any("eval_success" in e for e in results[env].values()) else "eval_return"
    cols = min(len(names), 4)
    rows = -(-len(names) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows + 0.6), squeeze=False)
    for ax in axes.flat[len(names) :]:
        ax.axis("off")
    for ax, env in zip(axes.flat, names, strict=False):  # the grid may have spare panels
        for strategy, e in results[env].items():
            k = key(env)
            curves = np.asarray(e[k])
            mean, std, steps = curves.mean(0), curves.std(0), np.asarray(e["env_steps"])
            ax.plot(steps, mean, color=color[strategy])
            ax.fill_between(steps, mean - std, mean + std, alpha=0.2, color=color[strategy])
            ax.set_ylabel(k.replace("_", " "))
        ax.set_title(env)
        ax.set_xlabel("env steps per seed")
        ax.xaxis.set_major_formatter(lambda x, _: f"{x / 1e3:g}k")
    handles = [plt.Line2D([], [], color=color[s]) for s in strategies]
    fig.legend(handles, strategies, loc="lower center", ncol=len(strategies), fontsize=8, frameon=False)
    fig.suptitle(f"{title} (mean ± std over seeds)")
    fig.tight_layout(rect=(0, 0.06 / rows, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
