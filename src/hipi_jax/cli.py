"""`hipi-train`: train one config over vmapped seeds and write the run directory of docs/architecture.md.

Flags are the option names of `config.OPTIONS` with hyphens. Bad input prints one line naming the value and
what is allowed, exits with code 2 and creates or overwrites nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
from functools import partial
from pathlib import Path

import yaml

from hipi_jax import __version__, console, envs, signals
from hipi_jax.config import DEFAULTS, ENV_PRESETS, HELP, OPTIONS, START_MODES, TrainConfig, flat_options
from hipi_jax.errors import NonFiniteError, first_line, no_backend, os_error
from hipi_jax.loggers import LOGGERS
from hipi_jax.relabel import EPISODE_ENDS, STRATEGIES, VALUE_ESTIMATORS


def _widths(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(w) for w in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid widths {text!r}: expected comma-separated integers, e.g. 64,64"
        ) from None


# --help groups: every option of config.OPTIONS is in exactly one (tests check it)
GROUPS = {
    "task and budget": ("env", "seed", "seeds", "env_steps", "warmup_steps", "num_envs", "starts", "sweep"),
    "relabeling (Alg. 1, 2)": (
        "relabel", "relabel_fraction", "relabel_values", "candidates", "prior_candidates", "num_candidates",
        "top_k", "episode_ends",
    ),
    "SAC (App. C.1)": (
        "updates_per_env_step", "batch_size", "hidden", "learning_rate", "gamma", "tau", "grad_clip", "critic_bound",
        "buffer_size",
    ),
    "evaluation": ("eval_every", "eval_episodes"),
}  # fmt: skip
CHOICES = {
    "env": envs.continuous_names(),
    "relabel": STRATEGIES,
    "relabel_values": VALUE_ESTIMATORS,
    "episode_ends": EPISODE_ENDS,
    "starts": START_MODES,
}


def parser() -> argparse.ArgumentParser:
    p = console.OneLineParser(
        prog="hipi-train",
        description="Train multi-task SAC with hindsight relabeling (HIPI-RL, Alg. 2) on one env; "
        "all seeds run as one vmapped, jitted program. Writes a run directory: config.json, metrics.jsonl, "
        "metrics.csv, summary.json, curves.png, checkpoints/ and policies/ (see hipi-eval).",
    )
    p.add_argument("--version", action="version", version=f"hipi-jax {__version__}")
    p.add_argument(
        "--config",
        type=Path,
        default=argparse.SUPPRESS,
        metavar="FILE",
        help="a JSON object (or a YAML mapping, in a .yaml or .yml file) of options named as in a run's "
        "config.json (a run's config.json reruns it); the flags given override it, and the env's preset fills the rest",
    )
    for title, names in GROUPS.items():
        group = p.add_argument_group(title)
        for name in names:
            default = DEFAULTS[name]
            kind = {int: int, float: float, str: str}.get(type(default), _widths)
            presets = _presets(name)
            help = f"{HELP[name]} (default: {_show(default)}" + (f"; presets: {presets})" if presets else ")")
            group.add_argument(
                "--" + name.replace("_", "-"),
                type=kind,
                default=argparse.SUPPRESS,
                help=help.replace("%", "%%"),
                dest=name,
                choices=CHOICES.get(name),
                metavar=name.upper(),
            )
    output = p.add_argument_group("output and checkpoints")
    output.add_argument(
        "--out", type=Path, default=argparse.SUPPRESS, help="run directory to write (default: runs/ENV-RELABEL-sSEED)"
    )
    output.add_argument(
        "--overwrite",
        action="store_true",
        default=argparse.SUPPRESS,
        help="replace the run files of an existing --out directory",
    )
    output.add_argument(
        "--resume",
        action="store_true",
        default=argparse.SUPPRESS,
        help="continue the run in --out from its newest usable checkpoint, with the options in its config.json and "
        "the loggers it used; an option given must match the saved one, except --env-steps (the budget), which may "
        "be raised to extend a run. The resumed run ends bitwise as an uninterrupted one",
    )
    output.add_argument(
        "--ckpt-every",
        type=int,
        default=argparse.SUPPRESS,
        help="save a checkpoint (the whole training state, replay buffer included) and the policy every this many "
        "evaluation chunks and after the last; 0 = no checkpoints, the policy is still saved at the end (default: 1)",
    )
    output.add_argument("--keep", type=int, default=argparse.SUPPRESS, help="newest checkpoints to keep (default: 2)")
    output.add_argument(
        "--logger",
        action="append",
        choices=LOGGERS,
        default=argparse.SUPPRESS,
        help="also log the metrics to TensorBoard (OUT/tensorboard/, one event directory per run) or to "
        "Weights & Biases in offline mode (OUT/wandb/; needs pip install 'hipi-jax[wandb]'); repeatable. "
        "metrics.jsonl and metrics.csv are always written",
    )
    output.add_argument(
        "--stall-timeout",
        type=float,
        default=argparse.SUPPRESS,
        help="seconds without a finished chunk (its evaluation and checkpoint included) after which the run counts "
        "as hung and exits with code 75 and one line naming --resume; 0 = never (default: 10 times the longest chunk "
        "so far, at least 120 s, and 1800 s until the first chunk has finished)",
    )
    output.add_argument("--no-progress", action="store_true", default=argparse.SUPPRESS, help="hide the progress bar")
    multi = p.add_argument_group(
        "multi-process runs", "one process per host, all started with the same options (jax.distributed)"
    )
    multi.add_argument(
        "--coordinator",
        default=argparse.SUPPRESS,
        help="HOST:PORT of process 0's coordinator, or 'auto' to let JAX read the cluster (SLURM, Open MPI, "
        "Kubernetes, Cloud TPU); the runs and envs are then split over the devices of all processes",
    )
    multi.add_argument(
        "--num-processes", type=int, default=argparse.SUPPRESS, help="number of processes (with --coordinator)"
    )
    multi.add_argument(
        "--process-id", type=int, default=argparse.SUPPRESS, help="this process's index in [0, --num-processes)"
    )
    return p


def _presets(name: str) -> str:
    """The env presets of one option, grouped by value: '64,64: walker_linear, reacher_goal, ...; 256,256: ...'."""
    by_value: dict[str, list[str]] = {}
    for env, preset in ENV_PRESETS.items():
        if name in preset:
            by_value.setdefault(_show(preset[name]), []).append(env)
    return "; ".join(f"{value} for {', '.join(envs)}" for value, envs in by_value.items())


def _show(value) -> str:
    return ",".join(map(str, value)) if isinstance(value, tuple) else str(value) if value != "" else "none"


def _distributed(coordinator: str | None, num_processes: int | None, process_id: int | None) -> None:
    """Join a multi-process run (`jax.distributed.initialize`) before anything touches a device."""
    given = {"--num-processes": num_processes, "--process-id": process_id}
    if coordinator is None:
        if any(v is not None for v in given.values()):
            _fail("--num-processes and --process-id need --coordinator HOST:PORT (or --coordinator auto)")
        return
    if coordinator != "auto":
        host, _, port = coordinator.rpartition(":")
        if not host or not port.isdigit():
            _fail(f"--coordinator {coordinator!r} must be HOST:PORT or 'auto'")
        missing = [k for k, v in given.items() if v is None]
        if missing:
            _fail(f"--coordinator {coordinator} needs {' and '.join(missing)}")
        if num_processes < 1 or not 0 <= process_id < num_processes:
            _fail(f"--process-id {process_id} must be in [0, --num-processes {num_processes}), with >= 1 process")
    import jax

    jax.distributed.initialize(None if coordinator == "auto" else coordinator, num_processes, process_id)


def saved_options(out: Path) -> dict | None:
    """The options in `out/config.json`, or None where it is missing, unreadable or not a config of this
    version (`--resume` then names the problem)."""
    try:
        saved = json.loads((out / "config.json").read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    try:
        options = flat_options(saved) if isinstance(saved, dict) else None
    except ValueError:
        return None
    return options if options is not None and set(options) <= set(OPTIONS) else None


def file_options(path: Path) -> dict:
    """The options in a `--config` file (YAML where it ends in .yaml or .yml, JSON otherwise), each of its
    field's type; bad input exits 2 with one line."""
    parse = yaml.safe_load if path.suffix.lower() in (".yaml", ".yml") else json.loads
    try:
        options = parse(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, yaml.YAMLError) as e:
        _fail(f"--config {path}: cannot read it ({first_line(e)})")
    if not isinstance(options, dict):
        _fail(f"--config {path} holds {type(options).__name__}, not an object of options")
    try:
        options = flat_options(options)  # a run's config.json holds the config's parts
    except ValueError as e:
        _fail(f"--config {path}: {e}")
    if unknown := [k for k in options if k not in DEFAULTS]:
        _fail(f"--config {path}: unknown option(s) {', '.join(map(repr, unknown))}; valid: {', '.join(DEFAULTS)}")
    for name, value in options.items():
        default = DEFAULTS[name]
        if isinstance(default, tuple):
            ok = isinstance(value, list) and all(type(v) is int for v in value)
            options[name] = tuple(value) if ok else value
        else:
            ok = type(value) is type(default) or (type(default) is float and type(value) is int)
        if not ok:
            _fail(
                f"--config {path}: {name} is {json.dumps(value)}; expected {_kind(default)}, e.g. {json.dumps(default)}"
            )
    return options


def _kind(default) -> str:
    return {str: "a string", int: "an integer", float: "a number", tuple: "a list of integers"}[type(default)]


def logged_to(out: Path) -> tuple[str, ...]:
    """The loggers a run in `out` wrote to, found by their directories: a resumed run goes on logging there."""
    return tuple(name for name in LOGGERS if (out / name).is_dir())


_fail = partial(console.fail, "hipi-train")


def main(argv: list[str] | None = None) -> int:
    args = vars(parser().parse_args(argv))
    if argv is None:  # the command itself (not a call from Python): Ctrl-C while compiling ends it at once
        signals.exit_at_once("hipi-train")
    out, overwrite, progress = args.pop("out", None), args.pop("overwrite", False), not args.pop("no_progress", False)
    resume, ckpt_every, keep = args.pop("resume", False), args.pop("ckpt_every", 1), args.pop("keep", 2)
    loggers = tuple(dict.fromkeys(args.pop("logger", [])))
    stall_timeout = args.pop("stall_timeout", None)
    if stall_timeout is not None and not stall_timeout >= 0:
        _fail(f"--stall-timeout {stall_timeout:g} must be >= 0 seconds (0 = off)")
    if ckpt_every < 0:
        _fail(f"--ckpt-every {ckpt_every} must be >= 0")
    if keep < 1:
        _fail(f"--keep {keep} must be >= 1")
    _distributed(args.pop("coordinator", None), args.pop("num_processes", None), args.pop("process_id", None))
    if "config" in args:
        args = {**file_options(args.pop("config")), **args}  # the flags given override the file
    saved = saved_options(out) if resume and out is not None else None
    try:  # on --resume the run's config.json fills the flags not given, otherwise the env's preset
        config = TrainConfig.preset(**args) if saved is None else TrainConfig.from_options(**{**saved, **args})
    except ValueError as e:
        _fail(str(e))
    if resume and out is not None and not loggers:
        loggers = logged_to(out)
    if problem := no_backend():
        _fail(problem)
    console.setup_logging("hipi-train")

    from hipi_jax import runner  # heavy imports only once the input is valid

    try:
        runner.train(
            config, out, overwrite=overwrite, resume=resume, ckpt_every=ckpt_every, keep=keep, progress=progress,
            loggers=loggers, stall_timeout=stall_timeout,
        )  # fmt: skip
    except ValueError as e:  # bad input found before anything was written
        _fail(str(e))
    except NonFiniteError as e:
        print(f"hipi-train: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:  # a full or read-only disk at run time; complete checkpoints and files stay as they were
        print(f"hipi-train: error: {os_error(e)}; the newest complete checkpoint is kept (--resume)", file=sys.stderr)
        return 1
    except runner.Interrupted as e:  # SIGINT / SIGTERM, after a checkpoint
        print(f"hipi-train: {e}", file=sys.stderr)
        return 128 + e.signum
    except Exception as e:
        if "RESOURCE_EXHAUSTED" not in str(e):
            raise
        print(f"hipi-train: error: out of device memory ({first_line(e)}); lower --batch-size, --num-envs, "
              "--buffer-size or --seeds", file=sys.stderr)  # fmt: skip
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
