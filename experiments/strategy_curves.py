"""Learning curves of relabeling strategies on several envs, the machinery behind Fig. 5 and Fig. 6
(`fig5_goal_reaching.py`, `fig6_general_tasks.py`). Every (env, strategy, updates per env step) triple
is one `hipi-train` pipeline run with all its seeds as one vmapped program, under the same budget and
evaluation tasks, in OUT/ENV/STRATEGY/utdU/.

The paper's protocol (App. C.1): each strategy runs with every `--updates-per-env-step` value and is
reported at the one with the largest area under its success curve (mean over evaluations and seeds;
return for families without success). The chosen run's final figure and area get 95% percentile-bootstrap
and Student-t intervals over seeds, and every pair of strategies of an env gets a paired verdict on the
per-seed difference of areas (seed i of both used the same evaluation tasks): both intervals and the
paired t-test, Holm-corrected over the env's pairs; "A faster than B" only where the corrected p < 0.05.
Picking the best of several values on the same seeds flatters every strategy a little, as it did in
the paper.

A triple whose run is complete in `--out` (same config) is not run again, so a long suite can be
stopped and restarted, and `--envs` can add envs to an existing results directory. Each run trains in
a child process under hipi-train's stall guard: a run that hangs (XLA's CPU runtime can,
docs/reliability.md) is stopped and resumed once from its newest checkpoint (`train_piece`). Run directories
are not kept in git, but OUT/results.json records every run's per-seed curves: copy a committed one
(docs/results/fig5_protocol/results.json) into a fresh OUT and new runs add to it (`collect`).

A strategy is a `hipi-train --relabel` name, or STRATEGY@CANDIDATES for inverse RL with another
candidate set (`--candidates`), e.g. inverse_rl@tasks+achieved.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import shutil
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from hipi_jax import console, envs, report, rundir, runner, signals, stall
from hipi_jax.config import TrainConfig
from hipi_jax.relabel import EPISODE_ENDS, RULES, RelabelSpec
from hipi_jax.stats import bootstrap_ci, holm, t_ci, t_test_p


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
    p.add_argument("--seeds", type=int, default=5, help="seeds per (env, strategy), one vmapped program")
    p.add_argument("--env-steps", type=int, default=0, help="env steps per seed for every env (0 = the CPU budget)")
    p.add_argument(
        "--updates-per-env-step",
        default="1",
        help="comma-separated values (App. C.1 tried 1,3,10,30); each strategy is reported at its best by area",
    )
    p.add_argument(
        "--episode-ends",
        choices=EPISODE_ENDS,
        default="stored",
        help="'released': the strategies with rewards on s (the *_released ones) emulate the released env's "
        "goal item (hipi-train --episode-ends); the others run as stored. Use its own --out",
    )
    p.add_argument("--paper-scale", action="store_true", help="the paper's budgets (GPU-sized: 1M+ steps per env)")
    p.add_argument("--replot", action="store_true", help="only redraw the figure and results.json from --out")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.add_argument(
        "--in-process",
        action="store_true",
        help="train every run in this process (a run that hangs then stops the script, exit 75, instead of "
        "being resumed once in a fresh process)",
    )
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
        try:
            RelabelSpec(relabel, candidates or "tasks")
        except ValueError as e:
            p.exit(2, f"{name}: error: strategy {s!r}: {e}\n")
    if args.seeds < 1 or args.env_steps < 0:
        p.exit(2, f"{name}: error: --seeds must be >= 1 and --env-steps >= 0\n")
    try:
        args.utds = [float(u) for u in args.updates_per_env_step.split(",")]
    except ValueError:
        args.utds = []
    if not args.utds or any(not u > 0 for u in args.utds) or len(set(args.utds)) != len(args.utds):
        p.exit(2, f"{name}: error: --updates-per-env-step {args.updates_per_env_step!r} must be distinct positive "
                  "numbers, e.g. 1,3,10\n")  # fmt: skip
    return args


def config_for(args, env: str, strategy: str, budget: dict, utd: float = 1.0) -> TrainConfig:
    overrides = dict(budget, updates_per_env_step=utd)
    if args.env_steps:
        overrides["env_steps"] = args.env_steps
    relabel, _, candidates = strategy.partition("@")
    if candidates:
        overrides["candidates"] = candidates
    if RULES[relabel].rewards_on_state:  # the released strategies' convention (--episode-ends)
        overrides["episode_ends"] = args.episode_ends
    return TrainConfig.preset(env, relabel=relabel, seeds=args.seeds, seed=args.seed, **overrides)


def main(argv, prog: str, doc: str, envs: str, strategies: str, budgets: dict, paper: dict, title: str) -> int:
    """A figure script's entry point: parse `argv`, pick the CPU or `--paper-scale` budgets, run."""
    console.setup_logging(prog)  # runner.loop reports its budget and buffer through logging
    p = parser(doc.split("\n\n")[0], envs, strategies, f"runs/{prog.split('_')[0]}")
    p.prog = prog
    args = p.parse_args(argv)
    budgets = paper if args.paper_scale else budgets
    return run(check(p, args, budgets), budgets, title)


def run(args, budgets: dict, title: str) -> int:
    """Train every (env, strategy) pair not yet complete in --out, then write results.json and the PNG."""
    args.out.mkdir(parents=True, exist_ok=True)
    triples = [(e, s, u) for e in args.envs for s in args.strategies for u in args.utds]
    for env, strategy, utd in [] if args.replot else triples:
        try:
            config = config_for(args, env, strategy, budgets[env], utd)
        except ValueError as e:  # e.g. final/future on a non-goal env
            print(f"{env}/{strategy}: skipped ({e})", file=sys.stderr)
            continue
        run_dir = args.out / env / strategy / f"utd{utd:g}"
        saved = run_dir / "config.json"
        same = saved.exists() and not rundir.differing_options(json.loads(saved.read_text()), config)
        if same and (run_dir / "summary.json").exists():
            print(f"{env}/{strategy}/utd{utd:g}: complete in {run_dir}, not run again")
            continue
        resume = same and rundir.has_checkpoint(run_dir)  # stopped part-way: continue from its checkpoint
        print(f"{env}/{strategy}/utd{utd:g}: {'resuming' if resume else 'training'} in {run_dir}", flush=True)
        if args.in_process:
            summary = runner.train(config, run_dir, overwrite=not resume, resume=resume, progress=not args.no_progress)
        else:
            summary = train_piece(config, run_dir, resume, not args.no_progress)
        shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)  # the replay buffers; policies/ stays
        print(f"{env}/{strategy}/utd{utd:g}: final success {np.mean(summary.get('eval_success', [np.nan])):.2f}, "
              f"return {np.mean(summary['eval_return']):.1f} ({summary['wall_s']:.0f} s)", flush=True)  # fmt: skip
    results, saved = collect(args.out), args.out / "results.json"
    report.write_json(
        saved, {"commands": commands(saved, None if args.replot else " ".join(sys.argv)), "results": results}
    )
    plot(results, args.out / f"{args.out.name}.png", title)
    (args.out / "table.md").write_text(table(results) + "\n" + verdicts(results))
    for env, strategies in results.items():  # learning curves and relabeling diagnostics, best runs
        paths = {s: args.out / env / s / f"utd{e['utd']}" / "metrics.jsonl" for s, e in strategies.items()}
        if missing := [s for s, path in paths.items() if not path.exists()]:  # recorded only: no diagnostics
            print(f"{env}: {env}_diagnostics.png not redrawn, no metrics.jsonl for {', '.join(missing)}")
            continue
        runs = {s: rundir.read_jsonl(path) for s, path in paths.items()}
        report.plot_curves(
            runs, args.out / f"{env}_diagnostics.png", f"{env}: each strategy at its best updates/env step"
        )
    print(f"wrote {args.out / 'results.json'}, {args.out / 'table.md'} and {args.out / (args.out.name + '.png')}")
    return 0


def train_child(config: dict, run_dir: str, resume: bool, progress: bool) -> None:
    """One run in a child process: `runner.train` under its stall guard (a hang exits with EXIT_STALLED)."""
    signals.exit_at_once("hipi-train")  # Ctrl-C while compiling: at once (the first one in training: at a chunk)
    console.setup_logging("hipi-train")
    config = TrainConfig.from_dict(config)
    try:
        runner.train(config, Path(run_dir), overwrite=not resume, resume=resume, progress=progress, stall_timeout=None)
    except runner.Interrupted as e:  # Ctrl-C reaches the child too: it stopped after a checkpoint
        print(f"hipi-train: {e}", file=sys.stderr)
        sys.exit(128 + e.signum)


def train_piece(config, run_dir: Path, resume: bool, progress: bool, target: Callable = train_child) -> dict:
    """Train one run in a fresh (spawned) process, since a hung XLA runtime cannot be stopped from inside;
    a run that stalls is resumed once from its newest checkpoint (trained afresh without one). Returns its
    summary; a second stall, or any other failure, exits with the child's code."""
    spawn = multiprocessing.get_context("spawn")
    for attempt in (1, 2):
        child = spawn.Process(target=target, args=(config.to_dict(), str(run_dir), resume, progress))
        child.start()
        # SIGTERM to this script reaches only it: pass it on (a Ctrl-C reaches the whole process group)
        forward = signal.signal(signal.SIGTERM, lambda signum, frame, child=child: child.terminate())
        try:
            child.join()
        except KeyboardInterrupt:  # the child got the same Ctrl-C and stops after its checkpoint
            child.join()
            sys.exit(130)
        finally:
            signal.signal(signal.SIGTERM, forward)
        if child.exitcode in (130, 143):
            sys.exit(child.exitcode)
        if child.exitcode == 0:
            return json.loads((run_dir / "summary.json").read_text())
        if child.exitcode != stall.EXIT_STALLED or attempt == 2:
            print(f"{run_dir}: training failed (exit {child.exitcode}); rerun the script to resume", file=sys.stderr)
            sys.exit(child.exitcode if child.exitcode and child.exitcode > 0 else 1)
        resume = rundir.has_checkpoint(run_dir)
        print(f"{run_dir}: hung and stopped; {'resuming' if resume else 'training afresh'} once", flush=True)
    raise AssertionError("unreachable")


def score_key(entry: dict) -> str:
    return "eval_success" if "eval_success" in entry else "eval_return"


def _entry(run_dir: Path) -> dict:
    """One run's curves and figures: per-seed curves, final and area (the curve's mean: learning speed),
    each as mean, std and 95% bootstrap interval over seeds."""
    records = rundir.read_jsonl(run_dir / "metrics.jsonl")
    entry = {"env_steps": [r["env_steps"] for r in records]}
    for key in ("eval_return", "eval_success"):
        if key in records[0]:
            per_seed = np.asarray([r[key] for r in records]).T  # [seeds, points]
            entry[key] = per_seed.tolist()
            for what, x in (("final", per_seed[:, -1]), ("area", per_seed.mean(1))):
                entry[f"{what}_{key}_mean"], entry[f"{what}_{key}_std"] = float(x.mean()), float(x.std())
                entry[f"{what}_{key}_ci"] = bootstrap_ci(x)
    entry["wall_s"] = json.loads((run_dir / "summary.json").read_text())["wall_s"]
    return entry


def commands(saved: Path, command: str | None) -> list[str]:
    """The commands that made the record in `saved` (results.json; an older one names one "command"),
    then `command` if it is new."""
    record = json.loads(saved.read_text()) if saved.exists() else {}
    made = record.get("commands", [record["command"]] if "command" in record else [])
    return made + [command] if command is not None and command not in made else made


def recorded(out: Path) -> dict:
    """The `by_utd` entries of OUT/results.json, {env: {strategy: {utd: entry}}} ({} without one): the
    record of runs whose directories are gone (another machine, a fresh clone given docs/results/...)."""
    saved = out / "results.json"
    if not saved.exists():
        return {}
    results = json.loads(saved.read_text())["results"]
    record = {
        env: {s: dict(e["by_utd"]) for s, e in strategies.items() if "by_utd" in e}
        for env, strategies in results.items()
    }
    return {env: strategies for env, strategies in record.items() if strategies}  # the layout before by_utd: none


def collect(out: Path) -> dict:
    """Per env and strategy: every updates-per-env-step value's run (`by_utd`), and the best by area
    flattened into the entry itself with `utd` naming it (App. C.1's protocol). A run directory in OUT
    gives its entry; a triple with no directory keeps the entry OUT/results.json recorded for it, so
    new runs add to a record whose runs were made elsewhere."""
    results = {
        env: {s: {"by_utd": by_utd} for s, by_utd in strategies.items()} for env, strategies in recorded(out).items()
    }
    for summary_path in sorted(out.glob("*/*/utd*/summary.json")):
        run_dir = summary_path.parent
        env, strategy, utd = run_dir.parent.parent.name, run_dir.parent.name, float(run_dir.name[3:])
        results.setdefault(env, {}).setdefault(strategy, {"by_utd": {}})["by_utd"][f"{utd:g}"] = _entry(run_dir)
    for strategies in results.values():
        for strategy, e in strategies.items():
            k = score_key(next(iter(e["by_utd"].values())))
            utd, best = max(e["by_utd"].items(), key=lambda item: item[1][f"area_{k}_mean"])
            strategies[strategy] = {"utd": utd, **best, "by_utd": e["by_utd"]}
    return results


def paired(a: dict, b: dict) -> dict | None:
    """The per-seed difference of areas a − b (seed i of both saw the same evaluation tasks): mean, 95%
    percentile-bootstrap and Student-t intervals, and the paired t-test's p-value; None when the runs
    have different seeds or evaluation points, or only one seed."""
    k = score_key(a)
    if k not in b or a["env_steps"] != b["env_steps"] or len(a[k]) != len(b[k]) or len(a[k]) < 2:
        return None
    diff = np.asarray(a[k]).mean(1) - np.asarray(b[k]).mean(1)
    return {"mean": float(diff.mean()), "ci": bootstrap_ci(diff), "t_ci": t_ci(diff), "p": t_test_p(diff)}


def verdicts(results: dict) -> str:
    """Per env, every pair of strategies at their best updates per env step: the paired difference of
    areas with both intervals, and "faster" only where the paired t-test rejects equal areas after
    Holm's correction over the env's family of pairs (family-wise α = 0.05); where the percentile
    bootstrap interval alone would have said "faster", the line says so."""
    lines = ["Paired verdicts (area under the curve at each strategy's best updates per env step; per-seed "
             "difference of areas: mean, 95% percentile-bootstrap and Student-t intervals over seeds, and the "
             "paired t-test's p-value Holm-corrected over each env's pairs; \"faster\" where that p < 0.05):",
             ""]  # fmt: skip
    for env, strategies in results.items():
        names = sorted(strategies, key=lambda s: -strategies[s][f"area_{score_key(strategies[s])}_mean"])
        pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1 :]]
        pairs = [(a, b, d) for a, b in pairs if (d := paired(strategies[a], strategies[b])) is not None]
        adjusted = holm([d["p"] for _, _, d in pairs]) if pairs else []
        lines.append(f"- **{env}** (best first: {', '.join(f'`{n}`' for n in names)}; {len(pairs)} pairs)")
        for (a, b, d), p in zip(pairs, adjusted, strict=True):
            (lo, hi), (t_lo, t_hi) = d["ci"], d["t_ci"]
            word = "faster than" if p < 0.05 and d["mean"] > 0 else "not distinguishable from"
            note = " (the bootstrap interval alone: faster)" if lo > 0 and word != "faster than" else ""
            lines.append(f"  - `{a}` {word} `{b}`: {d['mean']:+.3f}, bootstrap [{lo:+.3f}, {hi:+.3f}], "
                         f"t [{t_lo:+.3f}, {t_hi:+.3f}], Holm p = {p:.3g}{note}")  # fmt: skip
    return "\n".join(lines) + "\n"


def table(results: dict) -> str:
    """The figures as a markdown table: per env and strategy at its best updates per env step, the mean
    over seeds of the last evaluation and of the mean over all evaluations (the area under the learning
    curve: how fast it learnt) with 95% percentile-bootstrap and Student-t intervals over seeds, and
    which values were tried."""
    rows = ["| env | strategy | best updates/env step (tried) | seeds | env steps | final success | "
            "success area | final return | return area | wall time |",
            "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for env, strategies in results.items():
        for strategy, e in strategies.items():
            cells = [_mean_ci(e, k, w) for k in ("eval_success", "eval_return") for w in ("final", "area")]
            tried = ",".join(sorted(e["by_utd"], key=float))
            rows.append(f"| {env} | `{strategy}` | {e['utd']} ({tried}) | {len(e['eval_return'])} | "
                        f"{e['env_steps'][-1]:,} | {' | '.join(cells)} | {e['wall_s']:.0f} s |")  # fmt: skip
    note = ("\nEach cell: mean over seeds, 95% percentile-bootstrap interval [ ], then the Student-t interval "
            "t[ ] (wider at a handful of seeds).\n")  # fmt: skip
    return "\n".join(rows) + "\n" + note


def _mean_ci(entry: dict, key: str, what: str) -> str:
    """`what` ("final" or "area") of the per-seed curves `entry[key]`: mean [bootstrap] t[Student t]."""
    if key not in entry:
        return "–"
    per_seed = np.asarray(entry[key], float)
    x = per_seed[:, -1] if what == "final" else per_seed.mean(1)
    (lo, hi), t = bootstrap_ci(x), t_ci(x)
    return f"{x.mean():.2f} [{lo:.2f}, {hi:.2f}]" + (f" t[{t[0]:.2f}, {t[1]:.2f}]" if t else "")


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
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 4.0 * rows + 0.4), squeeze=False)
    for ax in axes.flat[len(names) :]:
        ax.axis("off")
    for ax, env in zip(axes.flat, names, strict=False):  # the grid may have spare panels
        for strategy, e in results[env].items():
            k = key(env)
            curves = np.asarray(e[k])
            mean, std, steps = curves.mean(0), curves.std(0), np.asarray(e["env_steps"])
            style = "--" if "released" in strategy else "-"  # the released code's emulations dashed
            ax.plot(steps, mean, style, color=color[strategy], label=f"{strategy} (utd {e['utd']})")
            ax.fill_between(steps, mean - std, mean + std, alpha=0.08, color=color[strategy])
            ax.set_ylabel(k.replace("_", " "))
        ax.set_title(env)
        ax.legend(fontsize=6, frameon=False)
        ax.set_xlabel("env steps per seed")
        ax.xaxis.set_major_formatter(lambda x, _: f"{x / 1e3:g}k")
    fig.suptitle(f"{title}\n(mean ± std over seeds, each strategy at its best updates per env step)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
