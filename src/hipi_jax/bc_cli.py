"""`hipi-bc`: HIPI-BC (Alg. 3) from the command line.

    hipi-bc collect --env cheetah_velocity --out demos.npz      # train an expert, roll it out
    hipi-bc collect --env desk --scripted --episodes 900 --out desk.npz   # the desk's scripted demonstrations
    hipi-bc train --data demos.npz --out runs/bc                # relabel + clone + evaluate, per method

Bad input prints one line naming the value and what is allowed, exits with code 2 and creates or
overwrites nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from functools import partial
from pathlib import Path

from hipi_jax import __version__, console, envs, signals, stall
from hipi_jax.agents.bc import BC
from hipi_jax.bc import METHOD_HELP, METHODS, BCConfig
from hipi_jax.errors import no_backend, os_error, out_of_range
from hipi_jax.rundir import check_writable

TRAIN_FILES = ("config.json", "results.json", "metrics.jsonl", "bc.png")
LEARNER = {f.name for f in dataclasses.fields(BC)}  # the cloner's settings, flags like BCConfig's own


_fail = partial(console.fail, "hipi-bc")


def parser() -> argparse.ArgumentParser:
    p = console.OneLineParser(
        prog="hipi-bc",
        description="HIPI-BC (Alg. 3): relabel demonstrations with inverse RL, then clone. First 'collect' a "
        "dataset from a trained expert (or bring your own, schema in the README), then 'train' the cloners.",
    )
    p.add_argument("--version", action="version", version=f"hipi-jax {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=console.OneLineParser, metavar="{collect,train}")
    c = sub.add_parser(
        "collect",
        help="train a multi-task SAC expert and write its rollouts as a dataset",
        description="Train a multi-task SAC expert with hipi-train's preset for --env (inverse-RL relabeling), "
        "then roll its stochastic policy out for --episodes episodes on tasks from the prior and write them as "
        "an .npz dataset (observations, actions, features, tasks): Alg. 3's unlabeled trajectories.",
    )
    c.add_argument("--env", required=True, choices=envs.continuous_names(), metavar="ENV",
                   help=f"env: one of {', '.join(envs.continuous_names())}")  # fmt: skip
    c.add_argument("--out", type=Path, required=True, help="dataset file to write (.npz)")
    c.add_argument("--episodes", type=int, default=200, help="trajectories to collect (paper: 1000) (default: 200)")
    c.add_argument(
        "--expert-steps", type=int, default=None, help="expert SAC env steps (default: the env's hipi-train preset)"
    )
    c.add_argument(
        "--scripted",
        action="store_true",
        help="roll out the env's scripted demonstrator instead of training an expert, episode i commanding task i "
        f"mod K (envs with one: {', '.join(envs.scripted_names())}; the desk: 900 episodes = the paper's 100 per task)",
    )
    c.add_argument("--noise", type=float, default=None,
                   help="--scripted only: std of the Gaussian noise added to the demonstrator's actions in [-1, 1] "
                   "(default: the env's, 0.3 for the desk)")  # fmt: skip
    c.add_argument("--seed", type=int, default=0, help="seed of the expert and the rollouts (default: 0)")
    c.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    c.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    t = sub.add_parser(
        "train",
        help="relabel a dataset, clone it and evaluate, for each method",
        description="For each --methods entry: relabel every trajectory of --data with the tasks it was good for "
        "(hipi: the inverse-RL posterior of Alg. 3, with log Z; hipi_no_partition: without log Z; advantage and "
        "air: Generalized Hindsight's relabelers on the same returns; agnostic: no task input), train a "
        "task-conditioned behaviour-cloning policy over --seeds vmapped seeds with early stopping, and evaluate it "
        "on prior tasks. Writes config.json, results.json, metrics.jsonl and bc.png.",
    )
    t.add_argument("--data", type=Path, required=True, help="dataset file (schema: hipi_jax/dataset.py, README)")
    t.add_argument(
        "--out", type=Path, required=True, help="directory for config.json, results.json, metrics.jsonl, bc.png"
    )
    t.add_argument(
        "--methods",
        default="hipi,hipi_no_partition,agnostic",
        help="comma-separated; "
        + "; ".join(f"{m}: {h}" for m, h in METHOD_HELP.items())
        + " (default: hipi,hipi_no_partition,agnostic)",
    )
    t.add_argument("--seeds", type=int, default=5, help="seeds, run as one vmapped program per method (default: 5)")
    t.add_argument("--seed", type=int, default=0, help="base seed; seed i uses fold_in(seed, i) (default: 0)")
    defaults = BCConfig()
    for name, help in (
        ("candidates", "prior samples as candidate tasks of a continuous family"),
        ("reward_bias", "constant added to the first candidate task's per-step reward (Fig. 8)"),
        ("top_k", "advantage and air: each trajectory takes one of its top_k tasks, uniformly (1 = the best)"),
        ("max_epochs", "epoch limit; early stopping usually ends sooner"),
        ("patience", "stop when the validation loss rose this many epochs in a row"),
        ("batch_size", "minibatch size"),
        ("learning_rate", "Adam learning rate"),
        ("eval_episodes", "evaluation episodes per seed, tasks from the prior"),
        (
            "action_clip",
            "c > 0: the cloner's actions, standardised by the demonstrations' mean and std, are clipped "
            "to [-c, c] std, in training and when acting (App. C.11's desk: 1); 0: off",
        ),
    ):
        default = getattr(defaults.learner if name in LEARNER else defaults, name)
        t.add_argument(
            "--" + name.replace("_", "-"), type=type(default), default=default, help=f"{help} (default: {default})"
        )
    t.add_argument("--overwrite", action="store_true", help="replace the result files of an existing --out")
    t.add_argument(
        "--stall-timeout",
        type=float,
        default=None,
        help="seconds without a finished method after which the run counts as hung (XLA's CPU runtime can wait "
        "forever) and exits with code 75 and one line; 0 = never (default: 10 times the longest method so far, "
        "at least 120 s, and 1800 s until the first method has finished)",
    )
    return p


def _writable(path: Path) -> None:
    try:
        check_writable(path)
    except ValueError as e:
        _fail(str(e))


def _counts(args, names: tuple[str, ...]) -> None:
    if problem := out_of_range(args, names):
        _fail(problem)


def collect(args) -> int:
    from hipi_jax.config import TrainConfig

    if args.env not in envs.continuous_names():
        _fail(f"--env {args.env!r} is not one of {', '.join(envs.continuous_names())}")
    _counts(args, ("episodes", "expert_steps"))
    if args.episodes < 2:
        _fail(f"--episodes {args.episodes} must be >= 2")
    if args.out.exists() and not args.overwrite:
        _fail(f"--out {args.out} exists; pass --overwrite to replace it or choose another --out")
    if args.out.is_dir():
        _fail(f"--out {args.out} is a directory; give a file name")
    if args.scripted:
        if args.env not in envs.scripted_names():
            _fail(f"--scripted: env {args.env!r} has no scripted demonstrator; envs with one: "
                  f"{', '.join(envs.scripted_names())}")  # fmt: skip
        if args.expert_steps is not None:
            _fail("--expert-steps applies to a trained expert, not to --scripted")
        if args.noise is not None and not (math.isfinite(args.noise) and args.noise >= 0):
            _fail(f"--noise {args.noise} must be a finite number >= 0")
    elif args.noise is not None:
        _fail("--noise applies to --scripted demonstrations only")
    _writable(args.out)
    if args.scripted:
        return collect_scripted(args)
    config = TrainConfig.preset(args.env, seed=args.seed)
    if args.expert_steps is not None:
        if args.expert_steps <= config.run.warmup_steps:
            _fail(f"--expert-steps {args.expert_steps} must exceed the {args.env} preset's {config.run.warmup_steps} "
                  "warm-up steps")  # fmt: skip
        config = config.replace(env_steps=args.expert_steps)

    import jax

    from hipi_jax import bc, dataset, report

    print(f"hipi-bc: training the {args.env} expert ({config.run.env_steps} env steps), then {args.episodes} rollouts")
    from hipi_jax.errors import NonFiniteError

    try:
        data, summary = bc.demonstrations(
            config, args.episodes, jax.random.key(args.seed), progress=not args.no_progress
        )
    except NonFiniteError as e:
        print(f"hipi-bc: error: the expert's {e}", file=sys.stderr)
        return 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    dataset.save(args.out, data)
    signals.leaving(f"{args.out} was written, its .expert.json was not")
    report.write_json(args.out.with_suffix(".expert.json"), {"config": config.to_dict(), "summary": summary})
    print(f"hipi-bc: wrote {args.out} ({args.episodes} trajectories; expert eval_return {summary['eval_return']})")
    return 0


def collect_scripted(args) -> int:
    import jax
    import numpy as np

    from hipi_jax import bc, dataset, report

    env = envs.make(args.env)
    noise = env.scripted_noise if args.noise is None else args.noise
    print(f"hipi-bc: {args.episodes} scripted {args.env} demonstrations (action noise {noise})")
    data = bc.scripted_demonstrations(
        args.env, args.episodes, jax.random.key(args.seed), noise, progress=not args.no_progress
    )
    solved = np.asarray(data.features * data.mask[..., None]).max(axis=1)  # [N, K]: each task ever solved
    commanded = np.argmax(data.tasks, axis=1)
    k = data.tasks.shape[1]
    per_task = [float(solved[commanded == i, i].mean()) for i in range(k)]
    others = float((solved.sum(axis=1) - solved[np.arange(len(solved)), commanded]).mean() / (k - 1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    dataset.save(args.out, data)
    signals.leaving(f"{args.out} was written, its .scripted.json was not")
    summary = {"episodes": args.episodes, "noise": noise, "seed": args.seed, "success_per_task": per_task,
               "other_tasks_solved": others}  # fmt: skip
    report.write_json(args.out.with_suffix(".scripted.json"), summary)
    shares = ", ".join(f"{s:.2f}" for s in per_task)
    print(f"hipi-bc: wrote {args.out}; commanded task solved at some step: {shares}; another task solved: "
          f"{others:.3f} of (episode, task) pairs")  # fmt: skip
    return 0


def stopped_bc_run(out: Path) -> bool:
    """Whether `out` holds a `hipi-bc train` run stopped before its results.json: the same command (or
    any other) then replaces its files without --overwrite."""
    try:
        config = json.loads((out / "config.json").read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(config, dict) and {"methods", "data"} <= config.keys() and not (out / "results.json").exists()


def train(args) -> int:
    methods = [m for m in args.methods.split(",") if m]
    bad = [m for m in methods if m not in METHODS]
    if bad or not methods:
        _fail(f"--methods {args.methods!r}: each must be one of {', '.join(METHODS)}")
    if twice := sorted({m for m in methods if methods.count(m) > 1}):
        _fail(f"--methods {args.methods!r} names {', '.join(twice)} more than once; name each method once")
    _counts(args, ("seeds",))
    if args.seeds < 1:
        _fail(f"--seeds {args.seeds} must be >= 1")
    if args.stall_timeout is not None and not args.stall_timeout >= 0:
        _fail(f"--stall-timeout {args.stall_timeout:g} must be >= 0 seconds (0 = off)")
    if args.out.exists() and not args.out.is_dir():
        _fail(f"--out {args.out} exists and is not a directory")
    if any((args.out / f).exists() for f in TRAIN_FILES) and not args.overwrite and not stopped_bc_run(args.out):
        _fail(f"--out {args.out} already holds results; pass --overwrite to replace them or choose another --out")
    _writable(args.out)
    settings = {f.name for f in dataclasses.fields(BCConfig)} - {"method", "learner"} | LEARNER
    try:
        configs = {m: BCConfig.of(method=m, **{k: v for k, v in vars(args).items() if k in settings}) for m in methods}
    except ValueError as e:
        _fail(str(e))
    from hipi_jax import bc, dataset, report
    from hipi_jax.errors import NonFiniteError

    try:
        data = dataset.load(args.data)
    except dataset.DatasetError as e:
        _fail(str(e))
    if "true_task" in methods and data.tasks is None:
        _fail(f"--methods true_task needs the dataset's tasks array, which {args.data} lacks")
    try:
        for config in configs.values():
            bc.check_top_k(config, envs.make(data.env).task_family)
    except ValueError as e:
        _fail(f"--top-k: {e}")
    args.out.mkdir(parents=True, exist_ok=True)
    for f in TRAIN_FILES:
        (args.out / f).unlink(missing_ok=True)
    signals.leaving("results.json was not written; rerun the same command")
    report.write_json(
        args.out / "config.json",
        {"data": str(args.data), "env": data.env, "seed": args.seed, "seeds": args.seeds,
         "trajectories": data.num_trajectories, **dataclasses.asdict(configs[methods[0]]), "methods": methods},
    )  # fmt: skip
    results = {}

    def stalled(waited: float) -> str:
        return (f"hipi-bc: error: no progress for {waited:.0f} s in method {m} (the longest method so far took "
                f"{max(guard.gaps, default=0):.0f} s; --stall-timeout): the program is hung, as XLA's CPU runtime "
                f"can be (docs/reliability.md), and was stopped; {signals.leaves()}")  # fmt: skip

    with stall.StallGuard(stalled, args.stall_timeout) as guard:
        for m in methods:
            print(f"hipi-bc: {data.env} / {m}: {args.seeds} seed(s)", flush=True)
            out = bc.run(configs[m], data, args.seed, args.seeds)
            guard.beat()
            try:
                bc.check_finite(out, m)
            except NonFiniteError as e:
                print(f"hipi-bc: error: {e}", file=sys.stderr)
                return 1
            results[m] = bc.summarize(out)
            report.append_jsonl(args.out / "metrics.jsonl", {"method": m, **{k: v.tolist() for k, v in out.items()}})
            print(f"hipi-bc:   eval_return {results[m]['eval_return_mean']:.2f} ± {results[m]['eval_return_std']:.2f} "
                  f"(mean ± std over {args.seeds} seed(s))")  # fmt: skip
    report.write_json(args.out / "results.json", {"env": data.env, "methods": results})
    signals.leaving(f"{args.out / 'results.json'} was written, bc.png was not")
    report.plot_bars({data.env: results}, args.out / "bc.png")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if argv is None:  # the command itself (not a call from Python): Ctrl-C ends it at once, with one line
        signals.exit_at_once("hipi-bc")
    console.setup_logging("hipi-bc")  # the expert's training logs through the hipi_jax logger
    if problem := no_backend():
        _fail(problem)
    try:
        return collect(args) if args.command == "collect" else train(args)
    except OSError as e:  # a full or read-only disk: every file is written whole or not at all
        print(f"hipi-bc: error: {os_error(e)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
