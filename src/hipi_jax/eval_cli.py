"""`hipi-eval RUN_DIR`: evaluate a saved policy (docs/architecture.md "After training").

Loads one run's actor from `RUN_DIR/policies/` (no training program is built), runs whole episodes
on tasks from the prior, the discrete task set or a file, writes `eval.json` (return, success and
episode length: mean, std and a 95% bootstrap interval over episodes; per-task and per-episode
results) and prints a short table; `--video` renders episodes. Bad input prints one line and exits
with code 2 before anything is written.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from functools import partial
from pathlib import Path

import numpy as np

from hipi_jax import console, rundir, signals
from hipi_jax.errors import first_line, no_backend, os_error, out_of_range

DEFAULT_OUT = " (the default is RUN_DIR/eval.json)"

TASK_SOURCES = ("prior", "discrete")


def parser() -> argparse.ArgumentParser:
    from hipi_jax import __version__

    p = console.OneLineParser(
        prog="hipi-eval",
        description="Evaluate a policy saved by hipi-train: whole episodes with the deterministic policy (tanh of "
        "the mean, as training evaluates), written to eval.json with 95% intervals over episodes.",
    )
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a hipi-train --out directory")
    p.add_argument("--version", action="version", version=f"hipi-jax {__version__}")
    p.add_argument(
        "--episodes",
        type=int,
        default=20,
        help="episodes with --tasks prior; episodes per task with --tasks discrete or a file (default: 20)",
    )
    p.add_argument(
        "--tasks",
        default="prior",
        help="'prior' = a fresh draw from the env's task prior p(psi) per episode; 'discrete' = every task of a "
        "discrete task set (e.g. reacher_discrete); or a file of tasks, one per row: .npy [n, task_dim], .json "
        "(a list of lists) or text (whitespace or comma separated) (default: prior)",
    )
    p.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="MODULE",
        help="import MODULE (a module name, or a .py file) first: one that registers a custom env with "
        "hipi_jax.envs.register when imported, so that a run on it evaluates (repeatable)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of tasks, start states, --stochastic actions (default: 0)")
    p.add_argument("--step", type=int, default=None, help="the policy saved at this many env steps (default: newest)")
    p.add_argument("--run-index", type=int, default=0, help="which run of a multi-seed or swept run dir (default: 0)")
    p.add_argument("--stochastic", action="store_true", help="sample actions from the policy instead of tanh(mean)")
    p.add_argument("--out", type=Path, default=None, help="where to write the results (default: RUN_DIR/eval.json)")
    p.add_argument(
        "--video",
        type=Path,
        default=None,
        help="render episodes to FILE: .mp4 or .gif for the MuJoCo envs (offscreen; on a headless machine "
        "MUJOCO_GL=egl is used, which needs libEGL: Debian packages libegl1 and libegl-mesa0), .png (paths on "
        "the map) or .gif/.mp4 (animated) for nav2d and point_goal",
    )
    p.add_argument("--video-episodes", type=int, default=4, help="how many of the episodes to render (default: 4)")
    return p


_fail = partial(console.fail, "hipi-eval")


def read_tasks(source: str, family) -> np.ndarray | None:
    """The tasks of --tasks [n, task_dim], or None for prior draws. Raises ValueError on bad input."""
    if source == "prior":
        return None
    if source == "discrete":
        if getattr(family, "targets", None) is None:
            raise ValueError(f"--tasks discrete: this env's task family ({type(family).__name__}) has no discrete set")
        return np.eye(family.task_dim, dtype=np.float32)  # ψ is one-hot over the K targets
    path = Path(source)
    if not path.is_file():
        raise ValueError(f"--tasks {source!r} must be 'prior', 'discrete' or an existing file of tasks")
    try:
        if path.suffix == ".npy":
            tasks = np.load(path)
        elif path.suffix == ".json":
            tasks = np.asarray(json.loads(path.read_text()), np.float32)
        else:
            with warnings.catch_warnings():  # an empty file: refused below with the shape
                warnings.simplefilter("ignore", UserWarning)
                tasks = np.loadtxt(path, delimiter="," if "," in path.read_text() else None, ndmin=2)
    except (ValueError, TypeError, OSError) as e:  # TypeError: a JSON object, or strings in a list
        raise ValueError(f"--tasks {source}: cannot read tasks ({str(e).splitlines()[0][:120]})") from None
    tasks = np.asarray(tasks, np.float32)
    if tasks.ndim == 1:  # one task, or one number per task when tasks are scalars
        tasks = tasks.reshape(-1, 1) if family.task_dim == 1 else tasks.reshape(1, -1)
    if tasks.ndim != 2 or tasks.shape[1] != family.task_dim or len(tasks) == 0:
        raise ValueError(f"--tasks {source}: expected rows of {family.task_dim} numbers, got shape {tasks.shape}")
    if not np.isfinite(tasks).all():
        raise ValueError(f"--tasks {source}: tasks must be finite numbers")
    return tasks


def interval(x: np.ndarray, binary: bool = False) -> dict:
    """Mean, std and a 95% interval over episodes: Wilson's for a success rate, else the percentile
    bootstrap (None for fewer than 2 episodes)."""
    from hipi_jax.stats import bootstrap_ci, wilson_ci

    x = np.asarray(x, float)
    ci = wilson_ci(int(x.sum()), len(x)) if binary else (bootstrap_ci(x) if len(x) > 1 else None)
    return {"mean": float(x.mean()), "std": float(x.std()), "ci95": None if ci is None else list(ci)}


def summarize(tasks: np.ndarray, returns: np.ndarray, success: np.ndarray | None, length: np.ndarray) -> dict:
    """eval.json's numbers from per-episode arrays [n]."""
    per_episode = [
        {"task": t.tolist(), "return": float(r), "length": int(n)} | ({} if success is None else {"success": bool(s)})
        for t, r, n, s in zip(tasks, returns, length, success if success is not None else length, strict=True)
    ]
    result = {"return": interval(returns), "length": interval(length)}
    if success is not None:
        result["success"] = interval(success, binary=True)
    return result | {"per_episode": per_episode}


def per_task(tasks: np.ndarray, returns: np.ndarray, success: np.ndarray | None, length: np.ndarray) -> list[dict]:
    """Means per distinct task, in order of first appearance."""
    groups: dict[tuple, list[int]] = {}
    for i, t in enumerate(tasks):
        groups.setdefault(tuple(t.tolist()), []).append(i)
    rows = []
    for index, (task, idx) in enumerate(groups.items()):
        row = {"index": index, "task": list(task), "episodes": len(idx), "return_mean": float(returns[idx].mean())}
        if success is not None:
            row["success_rate"] = float(success[idx].mean())
        rows.append(row | {"length_mean": float(length[idx].mean())})
    return rows


def evaluate(policy, env, key, episodes: int, tasks: np.ndarray | None, deterministic: bool, record=None):
    """Episodes of `policy` (one jitted rollout): with `tasks`, each task `episodes` times; else `episodes`
    prior draws. Returns (Episodes, the tasks [n, task_dim])."""
    import jax

    from hipi_jax.episodes import rollout

    n = episodes if tasks is None else episodes * len(tasks)
    commanded = None if tasks is None else np.repeat(tasks, episodes, axis=0)
    run = jax.jit(
        lambda p, k, t: rollout(env, p.act_fn(deterministic), k, n, tasks=t, record=record),
        compiler_options=env.compiler_options(),
    )
    result = run(policy, key, commanded)
    return result, np.asarray(result.tasks)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if argv is None:  # the command itself (not a call from Python): Ctrl-C ends it at once, with one line
        signals.exit_at_once("hipi-eval")
    try:
        return _main(args)
    except OSError as e:  # a full or read-only disk: eval.json and videos are written whole or not at all
        print(f"hipi-eval: error: {os_error(e)}", file=sys.stderr)
        return 1


def import_module(module: str) -> str | None:
    """Import `module` (a name, or the path of a .py file, run as a module of its stem's name); the one-line
    problem when that fails, else None."""
    import importlib
    import importlib.util

    name = Path(module).stem if module.endswith(".py") else module
    try:
        if name == module:
            importlib.import_module(module)
        else:
            spec = importlib.util.spec_from_file_location(name, module)
            sys.modules[name] = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(sys.modules[name])
    except Exception as e:  # noqa: BLE001 - whatever the module raises is the user's to see, in one line
        if name != module:
            sys.modules.pop(name, None)
        return f"--import {module}: {type(e).__name__}: {first_line(e)}"
    return None


def _main(args) -> int:
    if problem := out_of_range(args, ("episodes", "video_episodes", "run_index", "step")):
        _fail(problem)
    if args.episodes < 1:
        _fail(f"--episodes {args.episodes} must be >= 1")
    if args.video_episodes < 1:
        _fail(f"--video-episodes {args.video_episodes} must be >= 1")
    if problem := no_backend():
        _fail(problem)
    from hipi_jax import render

    if args.video is not None:
        render.headless_gl()  # before mujoco is imported
    from hipi_jax import envs, report
    from hipi_jax.policy import load_policy

    for module in args.imports:
        if problem := import_module(module):
            _fail(problem)

    try:
        policy = load_policy(args.run_dir, args.run_index, args.step)
    except (FileNotFoundError, ValueError) as e:
        _fail(str(e))
    if policy.env not in envs.names():
        _fail(f"the run's env {policy.env!r} is not registered here; a custom env's module: --import MODULE")
    try:
        env = envs.make(policy.env)
        tasks = read_tasks(args.tasks, env.task_family)
        if args.video is not None:
            render.check_video(policy.env, args.video)
    except ValueError as e:
        _fail(str(e))
    out = args.out or args.run_dir / "eval.json"
    for path, flag in ((out, "--out"), (args.video, "--video")):
        if path is not None and (problem := rundir.output_file(flag, path, [args.run_dir], DEFAULT_OUT)):
            _fail(problem)

    import jax

    record = env.render_record if args.video is not None else None
    print(f"hipi-eval: {args.episodes} episode(s) of {policy.env} (compiling, then rolling out) ...", flush=True)
    episodes, commanded = evaluate(
        policy, env, jax.random.PRNGKey(args.seed), args.episodes, tasks, not args.stochastic, record
    )
    mask = np.asarray(episodes.mask)
    returns, length = np.asarray(episodes.returns), mask.sum(axis=1)
    success = np.asarray(episodes.success, float) if env.task_family.has_success else None
    result = {
        "run_dir": str(args.run_dir),
        "env": policy.env,
        "env_steps": policy.env_steps,
        "run": policy.run,  # its index, seed index and swept value
        "seed": args.seed,
        "tasks": args.tasks,
        "deterministic": not args.stochastic,
        "episodes": int(mask.shape[0]),
    } | summarize(commanded, returns, success, length)
    if tasks is not None:
        result["per_task"] = per_task(commanded, returns, success, length)
    rundir.write_text(out, report.dumps(result, indent=1) + "\n")
    signals.leaving(f"{out} was written" + (f", {args.video} was not" if args.video is not None else ""))
    print(table(result))
    if args.video is not None:
        try:
            render.render_episodes(env, jax.device_get(episodes), args.video, max_episodes=args.video_episodes)
        except (OSError, RuntimeError, ValueError) as e:
            print(f"hipi-eval: error: rendering {args.video} failed: {first_line(e)}", file=sys.stderr)
            return 1
        print(f"hipi-eval: wrote {args.video}")
    print(f"hipi-eval: wrote {out}")
    return 0


def table(result: dict) -> str:
    """The short table hipi-eval prints."""
    mode = "deterministic" if result["deterministic"] else "stochastic"
    lines = [
        f"hipi-eval: {result['env']}, run {result['run']['run']}, policy at {result['env_steps']:,} env steps: "
        f"{result['episodes']} episodes ({result['tasks']} tasks, {mode}, seed {result['seed']})",
        f"  {'':8} {'mean':>10} {'95% interval':>22}  (over episodes: percentile bootstrap; success: Wilson)",
    ]
    for key in ("return", "success", "length"):
        if key in result:
            r, ci = result[key], result[key]["ci95"]
            shown = f"[{ci[0]:9.3f}, {ci[1]:9.3f}]" if ci is not None else "(one episode)"
            lines.append(f"  {key:8} {r['mean']:>10.3f}   {shown}")
    rows = result.get("per_task", [])
    if 1 < len(rows) <= 64:
        what = "success" if "success_rate" in rows[0] else "return"
        cells = [f"{row['index']}: {row.get('success_rate', row['return_mean']):.2f}" for row in rows]
        lines.append(f"  {what} per task (index: mean; tasks in eval.json): " + ", ".join(cells))
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
