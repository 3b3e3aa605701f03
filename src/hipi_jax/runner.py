"""`train(config, out)`: one training run written to a run directory, the Python form of `hipi-train`.

The run directory (docs/architecture.md "Run directory"): config.json, metrics.jsonl, metrics.csv,
summary.json, curves.png, checkpoints/ (Orbax, the whole training state) and policies/ (the actor
alone, `hipi_jax.load_policy`). Bad input raises ValueError before anything is created or
overwritten; a NaN or inf stops training with `training.NonFiniteError`. Messages go through the
`hipi_jax` logger (`logging`), not print.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from hipi_jax.config import TrainConfig

log = logging.getLogger("hipi_jax")

RUN_FILES = ("config.json", "metrics.jsonl", "metrics.csv", "summary.json", "curves.png")
STALE_FILES = ("eval.json",)  # written by hipi-eval about an earlier run
RUN_DIRS = ("checkpoints", "checkpoints-unusable", "policies", "tensorboard", "wandb")
LOCK = ".hipi-train.lock"


class Interrupted(Exception):
    """SIGINT or SIGTERM stopped training at a chunk boundary, after a checkpoint (`signum`, `env_steps`)."""

    def __init__(self, signum: int, env_steps: int, resumable: bool):
        self.signum, self.env_steps, self.resumable = signum, env_steps, resumable
        how = "continue with --resume" if resumable else "no checkpoint was written (--ckpt-every 0)"
        super().__init__(f"interrupted at env step {env_steps}; {how}")


def lock_run_dir(out: Path) -> int:
    """Hold an exclusive OS lock on `out` for the life of this process (the kernel releases it on any exit,
    SIGKILL included). Raises ValueError naming the holder's PID when another process holds it."""
    import fcntl

    try:
        out.mkdir(parents=True, exist_ok=True)
        fd = os.open(out / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise ValueError(f"--out {out} cannot be created ({e.strerror})") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise ValueError(
            f"--out {out} is in use by another hipi-train (pid {holder}); wait for it or choose another --out"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def unwritable_dir(path: Path) -> Path | None:
    """The directory that would refuse writing `path` (itself if a directory, else its nearest existing
    ancestor; a read-only file system refuses too), or None when it can be written."""
    parent = path if path.is_dir() else next(p for p in path.absolute().parents if p.exists())
    return None if os.access(parent, os.W_OK | os.X_OK) else parent


def check_writable(out: Path) -> None:
    """Refuse an `out` that cannot be written: a name longer than the file system allows, or a directory
    (or its nearest existing ancestor) without write access or on a read-only file system."""
    limit = os.pathconf(next(p for p in out.absolute().parents if p.exists()), "PC_NAME_MAX")
    for part in out.absolute().parts:  # before any stat of `out`, which fails on such a name
        if (size := len(os.fsencode(part))) > limit:
            raise ValueError(f"--out: the name {part[:32]}... is {size} bytes; this file system allows {limit}")
    if (denied := unwritable_dir(out)) is not None:
        raise ValueError(f"--out {out} is not writable ({denied} denies write access or is read-only)")


def check_out_dir(out: Path, overwrite: bool, config: TrainConfig | None = None) -> None:
    """Refuse an existing run directory without `overwrite` (unless it holds only the start of this same
    `config`'s run, stopped before its first checkpoint), or one that cannot be created or written."""
    check_writable(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} exists and is not a directory")
    held = out.is_dir() and any(p.name != LOCK for p in out.iterdir())  # a lock alone: a run stopped at its start
    if held and not overwrite and not (config and unsaved_start(out, config)):
        raise ValueError(
            f"--out {out} already holds files; pass --overwrite (Python: overwrite=True) to replace them or choose "
            "another --out"
        )


def has_checkpoint(out: Path) -> bool:
    """Whether `out/checkpoints` holds a step directory."""
    ckpts = out / "checkpoints"
    return ckpts.is_dir() and any(d.name.isdigit() for d in ckpts.iterdir())


def unsaved_start(out: Path, config: TrainConfig) -> bool:
    """Whether `out` holds a run of this same `config` stopped before its first checkpoint (no step
    directory, no summary.json): rerunning the command then starts it afresh, without --overwrite."""
    try:
        saved = json.loads((out / "config.json").read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    if not isinstance(saved, dict) or differing_options(saved, config):
        return False
    return not (out / "summary.json").exists() and not has_checkpoint(out)


def check_resume(out: Path, config: TrainConfig) -> None:
    """Refuse resuming without a run in `out`, or with options that differ from its config.json beyond the
    budget (`check_same` then compares them with the config saved in the checkpoint itself)."""
    check_writable(out)
    missing = [name for name, there in (("config.json", (out / "config.json").is_file()),
                                        ("checkpoints/", (out / "checkpoints").is_dir())) if not there]  # fmt: skip
    if missing:
        raise ValueError(f"--resume: {out} holds no run to resume ({' and '.join(missing)} missing)")
    try:
        saved = json.loads((out / "config.json").read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"--resume: {out / 'config.json'} is unreadable ({e}); it is not changed") from None
    check_same(saved, config, out / "config.json")


def differing_options(saved: dict, config: TrainConfig, ignore: Sequence[str] = ()) -> list[str]:
    """The options whose value in a `saved` config dict differs from `config`'s, beyond `ignore`; an
    option added since the dict was saved counts as its default."""
    added = {f.name: f.default for f in dataclasses.fields(TrainConfig) if f.name not in saved}
    saved = json.loads(json.dumps({**added, **saved}))
    given = json.loads(json.dumps(config.to_dict()))
    return [k for k in dict.fromkeys([*given, *saved]) if k not in ignore and saved.get(k) != given.get(k)]


def check_same(saved, config: TrainConfig, source: Path | str) -> None:
    """Refuse (ValueError naming each differing option) when the `saved` config differs from `config`
    beyond `env_steps`, the budget a resume may raise."""
    if not isinstance(saved, dict):
        raise ValueError(f"--resume: {source} holds {type(saved).__name__}, not a config object")
    if differ := differing_options(saved, config, ignore=("env_steps",)):
        given = config.to_dict()
        changes = ", ".join(f"{k}: saved {saved.get(k)!r}, given {given.get(k)!r}" for k in differ)
        raise ValueError(f"--resume: the options differ from those in {source} beyond --env-steps ({changes})")


def policy_meta(config: TrainConfig, env) -> dict:
    """What `policy.save` stores beside the parameters."""
    return {
        "env": config.env,
        "obs_dim": env.obs_dim,
        "task_dim": env.task_family.task_dim,
        "action_dim": env.action_dim,
        "hidden": list(config.hidden),
        "runs": config.run_table(),
        "config": config.to_dict(),
    }


def train(
    config: TrainConfig,
    out: str | Path | None = None,
    *,
    overwrite: bool = False,
    resume: bool = False,
    ckpt_every: int = 1,
    keep: int = 2,
    progress: bool = True,
    loggers: Sequence[str] = (),
    stall_timeout: float | None = 0,
) -> dict:
    """Train `config.runs` runs (seeds x sweep values) as one vmapped program and write the run directory
    `out` (default runs/ENV-RELABEL-sSEED). `resume` continues `out` from its newest usable checkpoint
    (the options must match the saved ones except `env_steps`); `ckpt_every` chunks between checkpoints
    (0 = none; the last chunk always saves a policy); `loggers` adds "tensorboard" and/or "wandb";
    `stall_timeout` seconds without a finished chunk end the process with `stall.EXIT_STALLED` (None: the
    automatic limit of `stall.limit`, as hipi-train; 0, the default here: never). Returns the summary
    (also written to summary.json)."""
    import jax

    from hipi_jax import loggers as loggers_lib
    from hipi_jax import signals, training

    if ckpt_every < 0:
        raise ValueError(f"--ckpt-every {ckpt_every} must be >= 0")
    if keep < 1:
        raise ValueError(f"--keep {keep} must be >= 1")
    if stall_timeout is not None and not stall_timeout >= 0:
        raise ValueError(f"--stall-timeout {stall_timeout} must be >= 0 seconds (0 = off)")
    out = Path(out) if out is not None else Path("runs") / f"{config.env}-{config.relabel}-s{config.seed}"
    if resume:
        check_resume(out, config)
    else:
        check_out_dir(out, overwrite, config)
    loggers_lib.check(loggers)  # a missing package is bad input too
    resumable = f"continue with hipi-train --resume --out {out} and the same options"
    signals.leaving(resumable if resume else "nothing was saved; rerun the same command")
    tr = training.build(config)
    prog = training.programs(tr)
    have = training.device_memory()
    state = training.state_bytes_per_device(prog.like)
    if state > have:  # refuse before compiling, allocating or writing anything
        raise ValueError(memory_message(config, prog, state, have, "the training state"))
    log.info("compiling the training programs for %s (and checking their memory) ...", config.env)
    compiled = training.compile_programs(prog, warmup=not resume)
    if (need := compiled.peak_bytes(state)) > have:
        raise ValueError(memory_message(config, prog, need, have, "training (XLA's memory analysis)"))
    lead = jax.process_index() == 0  # the one process that writes the run's files (checkpoints: all)
    lock = lock_run_dir(out) if lead else None  # before anything in `out` is changed
    try:
        meta = policy_meta(config, tr.env)
        return _train(
            config, out, meta, prog, compiled, lead, resume, ckpt_every, keep, progress, loggers, stall_timeout
        )
    finally:
        if lock is not None:
            os.close(lock)  # the kernel also releases it if the process dies


def memory_message(config: TrainConfig, prog, need: int, have: int, what: str) -> str:
    """The refusal of a run that needs `need` bytes per device where a device has `have`."""
    import jax

    buffer = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(prog.like.buffer))
    return (
        f"{what} needs {need / 2**30:.2f} GiB per device (replay buffers: {buffer / 2**30:.2f} GiB in all for "
        f"buffer_size={config.buffer_size} x {config.runs} run(s)) but a {jax.devices()[0].platform} device has "
        f"{have / 2**30:.2f} GiB; lower --batch-size, --num-envs, --buffer-size, --eval-episodes, --seeds or the sweep"
    )


def _train(config, out, meta, prog, compiled, lead, resume, ckpt_every, keep, progress, loggers, stall_timeout) -> dict:
    """`train` once the input is checked and the run directory locked."""
    import jax

    from hipi_jax import checkpoint, errors, policy, report, signals, stall, training
    from hipi_jax import loggers as loggers_lib

    barrier = _barrier if jax.process_count() > 1 else lambda name: None
    barrier("options checked")
    metrics_path = out / "metrics.jsonl"
    start, resume_step = None, None
    if resume:
        mgr = checkpoint.manager(out / "checkpoints", keep)
        check = lambda saved: check_same(saved, config, "the newest checkpoint")  # noqa: E731
        restored = checkpoint.restore_latest(mgr, prog.like, check)
        if restored is None:
            raise ValueError(f"--resume: no usable checkpoint in {out / 'checkpoints'}")
        state, saved, unusable = restored
        if lead and (aside := checkpoint.move_aside(mgr, unusable)) is not None:
            log.warning("moved the unusable checkpoint(s) %s to %s", ", ".join(map(str, unusable)), aside)
        barrier("unusable checkpoints moved")
        mgr.reload()
        done = saved["chunks_done"]
        if done == config.num_chunks and not (out / "summary.json").exists():  # stopped before its last files
            return _finish(config, out, meta, state, lead)
        if done >= config.num_chunks:
            raise ValueError(f"--resume: the run in {out} already did its {done} chunks; raise --env-steps to train on")
        barrier("checkpoint restored")
        resume_step = int(training.to_host(state.env_steps)[0])  # the loggers drop what came after it
        start = (state, done)
        log.info("resuming %s after chunk %d (%d env steps)", out, done, resume_step)
    else:
        signals.leaving(
            "no checkpoint was written yet; rerun the same command"
            if ckpt_every
            else "no checkpoints are written with --ckpt-every 0; rerun the same command"
        )
        if lead:
            for name in RUN_FILES + STALE_FILES:
                (out / name).unlink(missing_ok=True)
            for name in RUN_DIRS:
                shutil.rmtree(out / name, ignore_errors=True)
        barrier("run directory cleared")
        mgr = checkpoint.manager(out / "checkpoints", keep) if ckpt_every else None
    if lead:
        report.write_json(out / "config.json", config.to_dict())
    # metrics.jsonl and metrics.csv, then --logger's choices; only process 0 logs
    logs = loggers_lib.open_loggers(("jsonl", "csv", *loggers), out, config, resume_step) if lead else None

    progress_at = {"env_steps": resume_step or 0}

    def on_record(rec: dict) -> None:
        progress_at["env_steps"] = rec["env_steps"]
        if logs is not None:
            logs.log(rec)

    def stalled(waited: float) -> str:
        return (
            f"hipi-train: error: no progress for {waited:.0f} s after env step {progress_at['env_steps']} (the "
            f"longest chunk so far took {max(guard.gaps, default=0):.0f} s; --stall-timeout): the program is hung, "
            f"as XLA's CPU runtime can be (docs/reliability.md), and was stopped; {signals.leaves()}"
        )

    guard = stall.StallGuard(stalled, stall_timeout)

    stop = signals.StopSignals() if jax.process_count() == 1 else contextlib.nullcontext(None)

    def on_chunk(done: int, state) -> None:
        last = done == config.num_chunks
        stopping = getattr(stop, "signum", None) is not None
        guard.beat()
        if ckpt_every and mgr is not None and (done % ckpt_every == 0 or last or stopping):
            checkpoint.save(mgr, done, state, config.to_dict())
            signals.leaving(f"continue with hipi-train --resume --out {out} and the same options")
            guard.beat()
        elif not (last or stopping):
            return
        # a policy beside every checkpoint and always at the end; to_host is a collective across processes
        steps, actor = int(training.to_host(state.env_steps)[0]), training.to_host(state.agent.actor_params)
        if lead:
            policy.save(out, actor, steps, meta)
        if stopping and not last:
            raise Interrupted(stop.signum, steps, resumable=bool(ckpt_every))

    sweep = f", sweep {config.sweep}" if config.sweep else ""
    log.info("%s / %s, %d seed(s)%s, writing %s", config.env, config.relabel, config.seeds, sweep, out)

    def close(failed: bool) -> None:
        """Close the loggers and plot the curves; after a failure, a failure here is one warning line."""
        try:
            if logs is not None:
                logs.close()
            if lead and metrics_path.exists():
                records = report.read_jsonl(metrics_path)
                report.plot_curves(split_runs(records, config), out / "curves.png", title=config.env)
        except Exception as e:
            if not failed:
                raise
            log.warning("also failed to close the logs or plot the curves (%s)", errors.first_line(e))

    try:
        with stop, guard:
            summary, _ = training.run(
                config, on_record, progress=progress and lead, start=start, on_chunk=on_chunk, compiled=compiled
            )
    except BaseException:
        close(failed=True)
        raise
    close(failed=False)
    if config.sweep_axis is not None:
        summary["runs"] = config.run_table()
    if lead:
        report.write_json(out / "summary.json", summary)
    log.info("done in %.0f s; final eval_return per run %s", summary["wall_s"], summary["eval_return"])
    return summary


def _finish(config: TrainConfig, out: Path, meta: dict, state, lead: bool) -> dict:
    """Write the last files of a run stopped between its final checkpoint and them (the final policy,
    curves.png, summary.json) from that checkpoint and metrics.jsonl; the summary's timings are the
    records' (`wall_s`), the throughput figures of the lost process are not known."""
    from hipi_jax import policy, report, training

    steps, actor = int(training.to_host(state.env_steps)[0]), training.to_host(state.agent.actor_params)
    path = out / "metrics.jsonl"
    records = report.read_jsonl(path) if path.exists() else []
    if not records or not isinstance(records[-1], dict) or records[-1].get("env_steps") != steps:
        raise ValueError(f"--resume: {path} does not end at the final checkpoint's env step {steps}; the run's "
                         "last files (summary.json, curves.png) cannot be written from it")  # fmt: skip
    log.info("the run in %s ended after its final checkpoint; writing its last files", out)
    summary = {k: v for k, v in records[-1].items() if k in ("env_steps", "updates", "eval_return", "eval_success")}
    summary.update(wall_s=records[-1]["wall_s"], finished_by_resume=True)
    if config.sweep_axis is not None:
        summary["runs"] = config.run_table()
    if lead:
        policy.save(out, actor, steps, meta)
        report.plot_curves(split_runs(records, config), out / "curves.png", title=config.env)
        report.write_json(out / "summary.json", summary)
    return summary


def split_runs(records: list[dict], config: TrainConfig) -> dict[str, list[dict]]:
    """Learning-curve records per sweep value (label -> records over that value's seeds)."""
    label = f"{config.relabel} ({config.seeds} seed{'s' if config.seeds > 1 else ''})"
    if config.sweep_axis is None:
        return {label: records}
    name, values = config.sweep_axis
    s = config.seeds
    part = lambda r, i: {k: x[i * s : (i + 1) * s] if isinstance(x, list) else x for k, x in r.items()}
    return {f"{name}={v:g}": [part(r, i) for r in records] for i, v in enumerate(values)}


def _barrier(name: str) -> None:
    from jax.experimental import multihost_utils

    multihost_utils.sync_global_devices(name)
