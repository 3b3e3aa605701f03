"""`hipi-train`: train one config over vmapped seeds and write the run directory of docs/architecture.md.

Flags are `TrainConfig` field names with hyphens. Bad input prints one line naming the value and
what is allowed, exits with code 2 and creates or overwrites nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import sys
from pathlib import Path

from hipi_jax.config import ENV_PRESETS, TrainConfig

RUN_FILES = ("config.json", "metrics.jsonl", "summary.json", "curves.png")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2 (argparse would also print the usage)
        self.exit(2, f"{self.prog}: error: {message}\n")


def _widths(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(w) for w in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid widths {text!r}: expected comma-separated integers, e.g. 64,64"
        ) from None


def parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="hipi-train",
        description="Train multi-task SAC with hindsight relabeling (HIPI-RL, Alg. 2) on one env; "
        "all seeds run as one vmapped, jitted program.",
    )
    for f in dataclasses.fields(TrainConfig):
        kind = {int: int, float: float, str: str}.get(type(f.default), _widths)
        presets = ", ".join(f"{env}: {_show(p[f.name])}" for env, p in ENV_PRESETS.items() if f.name in p)
        help = f"{f.metadata['help']} (default: {_show(f.default)}" + (f"; {presets})" if presets else ")")
        p.add_argument("--" + f.name.replace("_", "-"), type=kind, default=argparse.SUPPRESS, help=help, dest=f.name)
    p.add_argument(
        "--out", type=Path, default=argparse.SUPPRESS, help="run directory to write (default: runs/ENV-RELABEL-sSEED)"
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        default=argparse.SUPPRESS,
        help="replace the run files of an existing --out directory",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        default=argparse.SUPPRESS,
        help="continue the run in --out from its newest usable checkpoint; every option must match the saved "
        "config except --env-steps (the budget), and the resumed run ends bitwise as an uninterrupted one",
    )
    p.add_argument(
        "--ckpt-every",
        type=int,
        default=argparse.SUPPRESS,
        help="save a checkpoint (the whole training state, replay buffer included) every this many evaluation "
        "chunks and after the last; 0 = never (default: 1)",
    )
    p.add_argument("--keep", type=int, default=argparse.SUPPRESS, help="newest checkpoints to keep (default: 2)")
    p.add_argument("--no-progress", action="store_true", default=argparse.SUPPRESS, help="hide the progress bar")
    multi = p.add_argument_group(
        "multi-process runs (one process per host, all started with the same options; jax.distributed)"
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


def split_runs(records: list[dict], config: TrainConfig) -> dict[str, list[dict]]:
    """Learning-curve records per sweep value (label -> records over that value's seeds)."""
    label = f"{config.relabel} ({config.seeds} seed{'s' if config.seeds > 1 else ''})"
    if config.sweep_axis is None:
        return {label: records}
    name, values = config.sweep_axis
    s = config.seeds
    part = lambda r, i: {k: x[i * s : (i + 1) * s] if isinstance(x, list) else x for k, x in r.items()}
    return {f"{name}={v:g}": [part(r, i) for r in records] for i, v in enumerate(values)}


def _fail(message: str) -> None:
    print(f"hipi-train: error: {message}", file=sys.stderr)
    sys.exit(2)


def unwritable_dir(path: Path) -> Path | None:
    """The directory that would refuse writing `path` (itself if a directory, else its nearest existing
    ancestor), or None when it can be written."""
    parent = path if path.is_dir() else next(p for p in path.absolute().parents if p.exists())
    return None if os.access(parent, os.W_OK | os.X_OK) else parent


def _check_out_dir(out: Path, overwrite: bool) -> None:
    """Refuse an existing run directory without --overwrite, or one we cannot create or write."""
    if out.exists() and not out.is_dir():
        _fail(f"--out {out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        _fail(f"--out {out} already holds files; pass --overwrite to replace them or choose another --out")
    if (denied := unwritable_dir(out)) is not None:
        _fail(f"--out {out} is not writable ({denied} denies write access)")


def _check_resume(out: Path, config: TrainConfig) -> None:
    """Refuse --resume without a run in --out, or with options that differ from it beyond the budget."""
    import json

    if not (out / "config.json").is_file() or not (out / "checkpoints").is_dir():
        _fail(f"--resume: {out} holds no run to resume (config.json and checkpoints/ are missing)")
    saved = json.loads((out / "config.json").read_text())
    given = config.to_dict()
    differ = [k for k in given if k != "env_steps" and json.dumps(saved.get(k)) != json.dumps(given[k])]
    if differ:
        changes = ", ".join(f"{k}: saved {saved.get(k)!r}, given {given[k]!r}" for k in differ)
        _fail(f"--resume: the options differ from the run in {out} beyond --env-steps ({changes})")


def main(argv: list[str] | None = None) -> int:
    args = vars(parser().parse_args(argv))
    out, overwrite, progress = args.pop("out", None), args.pop("overwrite", False), not args.pop("no_progress", False)
    resume, ckpt_every, keep = args.pop("resume", False), args.pop("ckpt_every", 1), args.pop("keep", 2)
    if ckpt_every < 0:
        _fail(f"--ckpt-every {ckpt_every} must be >= 0")
    if keep < 1:
        _fail(f"--keep {keep} must be >= 1")
    _distributed(args.pop("coordinator", None), args.pop("num_processes", None), args.pop("process_id", None))
    try:
        config = TrainConfig.preset(**args)  # the env's preset fills the flags not given
    except ValueError as e:
        _fail(str(e))
    out = out or Path("runs") / f"{config.env}-{config.relabel}-s{config.seed}"
    if resume:
        _check_resume(out, config)
    else:
        _check_out_dir(out, overwrite)

    import jax

    from hipi_jax import checkpoint, report, train  # heavy imports only once the input is valid

    try:
        prog = train.programs(train.build(config))
    except ValueError as e:  # a multi-process run that cannot use every device
        _fail(str(e))
    need, have = train.state_bytes_per_device(prog.like), train.device_memory()
    if need > have:  # refuse before anything is allocated or written
        buffer = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(prog.like.buffer))
        _fail(
            f"the training state needs {need / 2**30:.2f} GiB per device (replay buffers: {buffer / 2**30:.2f} GiB "
            f"in all for buffer_size={config.buffer_size} x {config.runs} run(s)) but a "
            f"{jax.devices()[0].platform} device has {have / 2**30:.2f} GiB; lower --buffer-size, --seeds, "
            "--num-envs or the sweep"
        )
    lead = jax.process_index() == 0  # the one process that writes the run's files (checkpoints: all)
    barrier = _barrier if jax.process_count() > 1 else lambda name: None
    barrier("options checked")
    metrics_path = out / "metrics.jsonl"
    start = None
    if resume:
        mgr = checkpoint.manager(out / "checkpoints", keep)
        restored = checkpoint.restore_latest(mgr, prog.like)
        if restored is None:
            _fail(f"--resume: no usable checkpoint in {out / 'checkpoints'}")
        state, meta = restored
        done = meta["chunks_done"]
        if done >= config.num_chunks:
            _fail(f"--resume: the run in {out} already did its {done} chunks; raise --env-steps to train on")
        barrier("checkpoint restored")
        if lead:
            records = report.read_jsonl(metrics_path)[: done + 1] if metrics_path.exists() else []
            report.write_jsonl(metrics_path, records)  # drop what was logged after the checkpoint
        start = (state, done)
        steps = int(train.to_host(state.env_steps)[0])
        print(f"hipi-train: resuming {out} after chunk {done} ({steps} env steps)", flush=True)
    else:
        if lead:
            try:
                out.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                _fail(f"--out {out} cannot be created ({e.strerror})")
            for name in RUN_FILES:
                (out / name).unlink(missing_ok=True)
            shutil.rmtree(out / "checkpoints", ignore_errors=True)
        barrier("run directory cleared")
        mgr = checkpoint.manager(out / "checkpoints", keep) if ckpt_every else None
    if lead:
        report.write_json(out / "config.json", config.to_dict())

    def on_chunk(done: int, state) -> None:
        if ckpt_every and mgr is not None and (done % ckpt_every == 0 or done == config.num_chunks):
            checkpoint.save(mgr, done, state, config.to_dict())

    sweep = f", sweep {config.sweep}" if config.sweep else ""
    print(f"hipi-train: {config.env} / {config.relabel}, {config.seeds} seed(s){sweep}, writing {out}", flush=True)
    try:
        summary, _ = train.run(
            config,
            (lambda rec: report.append_jsonl(metrics_path, rec)) if lead else (lambda rec: None),
            progress=progress and lead,
            start=start,
            on_chunk=on_chunk,
        )
    except train.NonFiniteError as e:
        print(f"hipi-train: error: {e}", file=sys.stderr)
        return 1
    finally:
        if lead and metrics_path.exists():
            curves = split_runs(report.read_jsonl(metrics_path), config)
            report.plot_curves(curves, out / "curves.png", title=config.env)
    if config.sweep_axis is not None:
        name, values = config.sweep_axis
        summary["runs"] = [{name: v, "seed_index": s} for v in values for s in range(config.seeds)]
    if lead:
        report.write_json(out / "summary.json", summary)
    print(f"hipi-train: done in {summary['wall_s']:.0f} s; final eval_return per run {summary['eval_return']}")
    return 0


def _barrier(name: str) -> None:
    from jax.experimental import multihost_utils

    multihost_utils.sync_global_devices(name)


if __name__ == "__main__":
    sys.exit(main())
