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
from pathlib import Path

import numpy as np

TASK_SOURCES = ("prior", "discrete")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2
        self.exit(2, f"{self.prog}: error: {message}\n")


def parser() -> argparse.ArgumentParser:
    from hipi_jax import __version__

    p = _Parser(
        prog="hipi-eval",
        description="Evaluate a policy saved by hipi-train: whole episodes with the deterministic policy (tanh of "
        "the mean, as training evaluates), written to eval.json with 95%% bootstrap intervals over episodes.",
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
    p.add_argument("--seed", type=int, default=0, help="seed of the tasks, start states and --stochastic actions")
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


def _fail(message: str) -> None:
    print(f"hipi-eval: error: {message}", file=sys.stderr)
    sys.exit(2)


def read_tasks(source: str, family) -> np.ndarray | None:
    """The tasks of --tasks [n, task_dim], or None for prior draws. Raises ValueError on bad input."""
    if source == "prior":
        return None
    if source == "discrete":
        targets = getattr(family, "targets", None)
        if targets is None:
            raise ValueError(f"--tasks discrete: this env's task family ({type(family).__name__}) has no discrete set")
        return np.asarray(targets, np.float32)
    path = Path(source)
    if not path.is_file():
        raise ValueError(f"--tasks {source!r} must be 'prior', 'discrete' or an existing file of tasks")
    try:
        if path.suffix == ".npy":
            tasks = np.load(path)
        elif path.suffix == ".json":
            tasks = np.asarray(json.loads(path.read_text()), np.float32)
        else:
            tasks = np.loadtxt(path, delimiter="," if "," in path.read_text() else None, ndmin=2)
    except (ValueError, OSError) as e:
        raise ValueError(f"--tasks {source}: cannot read tasks ({str(e).splitlines()[0][:120]})") from None
    tasks = np.asarray(tasks, np.float32)
    tasks = tasks.reshape(1, -1) if tasks.ndim == 1 else tasks
    if tasks.ndim != 2 or tasks.shape[1] != family.task_dim or len(tasks) == 0:
        raise ValueError(f"--tasks {source}: expected rows of {family.task_dim} numbers, got shape {tasks.shape}")
    if not np.isfinite(tasks).all():
        raise ValueError(f"--tasks {source}: tasks must be finite numbers")
    return tasks


def interval(x: np.ndarray) -> dict:
    """Mean, std and 95% bootstrap interval over episodes."""
    from hipi_jax.stats import bootstrap_ci

    x = np.asarray(x, float)
    lo, hi = bootstrap_ci(x)
    return {"mean": float(x.mean()), "std": float(x.std()), "ci95": [lo, hi]}


def summarize(tasks: np.ndarray, returns: np.ndarray, success: np.ndarray | None, length: np.ndarray) -> dict:
    """eval.json's numbers from per-episode arrays [n]."""
    per_episode = [
        {"task": t.tolist(), "return": float(r), "length": int(n)} | ({} if success is None else {"success": bool(s)})
        for t, r, n, s in zip(tasks, returns, length, success if success is not None else length, strict=True)
    ]
    groups: dict[tuple, list[int]] = {}
    for i, t in enumerate(tasks):
        groups.setdefault(tuple(np.round(t, 6).tolist()), []).append(i)
    per_task = []
    for task, idx in groups.items():
        row = {"task": list(task), "episodes": len(idx), "return_mean": float(returns[idx].mean())}
        if success is not None:
            row["success_rate"] = float(success[idx].mean())
        row["length_mean"] = float(length[idx].mean())
        per_task.append(row)
    result = {"return": interval(returns), "length": interval(length)}
    if success is not None:
        result["success"] = interval(success)
    return result | {"per_task": per_task, "per_episode": per_episode}


def evaluate(policy, env, key, episodes: int, tasks: np.ndarray | None, deterministic: bool, record=None):
    """Episodes of `policy` (one jitted rollout): with `tasks`, each task `episodes` times; else `episodes`
    prior draws. Returns (Episodes, the tasks [n, task_dim])."""
    import jax

    from hipi_jax.episodes import rollout

    n = episodes if tasks is None else episodes * len(tasks)
    commanded = None if tasks is None else np.repeat(tasks, episodes, axis=0)
    run = jax.jit(lambda p, k, t: rollout(env, p.act_fn(deterministic), k, n, tasks=t, record=record))
    result = run(policy, key, commanded)
    return result, np.asarray(result.tasks)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.episodes < 1:
        _fail(f"--episodes {args.episodes} must be >= 1")
    if args.video_episodes < 1:
        _fail(f"--video-episodes {args.video_episodes} must be >= 1")
    from hipi_jax import render

    render.headless_gl()  # before mujoco is imported
    from hipi_jax import envs
    from hipi_jax.policy import load_policy

    try:
        policy = load_policy(args.run_dir, args.run_index, args.step)
    except (FileNotFoundError, ValueError) as e:
        _fail(str(e))
    try:
        env = envs.make(policy.env)
        tasks = read_tasks(args.tasks, env.task_family)
        if args.video is not None:
            render.check_video(env, args.video)
    except ValueError as e:
        _fail(str(e))
    out = args.out or args.run_dir / "eval.json"
    for path, flag in ((out, "--out"), (args.video, "--video")):
        if path is not None and (path.is_dir() or not path.parent.is_dir()):
            _fail(f"{flag} {path}: must be a file in an existing directory")

    import jax

    record = env.render_record if args.video is not None else None
    episodes, commanded = evaluate(
        policy, env, jax.random.PRNGKey(args.seed), args.episodes, tasks, not args.stochastic, record
    )
    mask = np.asarray(episodes.mask)
    has_success = env.task_family.has_success
    result = {
        "run_dir": str(args.run_dir),
        "env": policy.env,
        "env_steps": policy.env_steps,
        "run_index": args.run_index,
        "seed": args.seed,
        "tasks": args.tasks,
        "deterministic": not args.stochastic,
        "episodes": int(mask.shape[0]),
    } | summarize(
        commanded,
        np.asarray(episodes.returns),
        np.asarray(episodes.success, float) if has_success else None,
        mask.sum(axis=1),
    )
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(table(result))
    if args.video is not None:
        render.render_episodes(env, jax.device_get(episodes), args.video, max_episodes=args.video_episodes)
        print(f"hipi-eval: wrote {args.video}")
    print(f"hipi-eval: wrote {out}")
    return 0


def table(result: dict) -> str:
    """The short table hipi-eval prints."""
    mode = "deterministic" if result["deterministic"] else "stochastic"
    lines = [
        f"hipi-eval: {result['env']}, run {result['run_index']}, policy at {result['env_steps']:,} env steps: "
        f"{result['episodes']} episodes ({result['tasks']} tasks, {mode}, seed {result['seed']})",
        f"  {'':8} {'mean':>10} {'95% interval':>22}",
    ]
    for key in ("return", "success", "length"):
        if key in result:
            r = result[key]
            lines.append(f"  {key:8} {r['mean']:>10.3f}   [{r['ci95'][0]:9.3f}, {r['ci95'][1]:9.3f}]")
    if 1 < len(result["per_task"]) <= 40 and result["tasks"] != "prior":
        lines.append("  per task: " + ", ".join(_task_cell(row) for row in result["per_task"]))
    return "\n".join(lines)


def _task_cell(row: dict) -> str:
    task = "(" + ", ".join(f"{v:.2f}" for v in row["task"]) + ")"
    score = row.get("success_rate", row["return_mean"])
    return f"{task} {score:.2f}"


if __name__ == "__main__":
    sys.exit(main())
