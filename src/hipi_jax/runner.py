"""`train(config, out)`: one training run written to a run directory, the Python form of `hipi-train`.

The run directory (docs/architecture.md "Run directory"): config.json, metrics.jsonl, metrics.csv,
summary.json, curves.png, checkpoints/ (Orbax, the whole training state) and policies/ (the actor
alone, `hipi_jax.load_policy`). Bad input raises ValueError before anything is created or
overwritten; a NaN or inf stops training with `errors.NonFiniteError`. Messages go through the
`hipi_jax` logger (`logging`), not print.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

from hipi_jax import rundir
from hipi_jax.config import TrainConfig
from hipi_jax.rundir import RUN_DIRS, RUN_FILES, STALE_FILES, check_out_dir, check_resume, check_same, lock_run_dir

log = logging.getLogger("hipi_jax")


class Interrupted(Exception):
    """SIGINT or SIGTERM stopped training at a chunk boundary, after a checkpoint (`signum`, `env_steps`)."""

    def __init__(self, signum: int, env_steps: int, resumable: bool):
        self.signum, self.env_steps, self.resumable = signum, env_steps, resumable
        how = "continue with --resume" if resumable else "no checkpoint was written (--ckpt-every 0)"
        super().__init__(f"interrupted at env step {env_steps}; {how}")


def policy_meta(config: TrainConfig, env) -> dict:
    """What `policy.save` stores beside the parameters."""
    return {
        "env": config.run.env,
        "obs_dim": env.obs_dim,
        "task_dim": env.task_family.task_dim,
        "action_dim": env.action_dim,
        "hidden": list(config.sac.hidden),
        "runs": config.run_table(),
        "config": config.to_dict(),
    }


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """How `train` runs and writes a config (the options of hipi-train beside the config's own)."""

    overwrite: bool = False
    resume: bool = False
    ckpt_every: int = 1
    keep: int = 2
    progress: bool = True
    loggers: tuple[str, ...] = ()
    stall_timeout: float | None = 0

    def __post_init__(self):
        if self.ckpt_every < 0:
            raise ValueError(f"--ckpt-every {self.ckpt_every} must be >= 0")
        if self.keep < 1:
            raise ValueError(f"--keep {self.keep} must be >= 1")
        if self.stall_timeout is not None and not self.stall_timeout >= 0:
            raise ValueError(f"--stall-timeout {self.stall_timeout} must be >= 0 seconds (0 = off)")


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
    from hipi_jax import programs, signals

    options = RunOptions(overwrite, resume, ckpt_every, keep, progress, tuple(loggers), stall_timeout)
    out = (
        Path(out)
        if out is not None
        else Path("runs") / f"{config.run.env}-{config.relabel.strategy}-s{config.run.seed}"
    )
    if resume:
        check_resume(out, config)
    else:
        check_out_dir(out, overwrite, config)
    loggers_lib.check(loggers)  # a missing package is bad input too
    resumable = f"continue with hipi-train --resume --out {out} and the same options"
    signals.leaving(resumable if resume else "nothing was saved; rerun the same command")
    built = programs.build(config, warmup=not resume)  # refuses a run the device's memory cannot hold
    lead = jax.process_index() == 0  # the one process that writes the run's files (checkpoints: all)
    lock = lock_run_dir(out) if lead else None  # before anything in `out` is changed
    try:
        return _Run(built, out, options, lead).train()
    finally:
        if lock is not None:
            os.close(lock)  # the kernel also releases it if the process dies


class _Run:
    """One `train` call once its input is checked and its run directory locked: the host side around
    `loop` (the run directory, checkpoints, loggers, signals, the stall guard)."""

    def __init__(self, built, out: Path, options: RunOptions, lead: bool):
        import jax

        from hipi_jax import signals, stall

        self.built, self.config, self.out, self.options, self.lead = built, built.config, out, options, lead
        self.barrier = _barrier if jax.process_count() > 1 else lambda name: None
        self.meta = policy_meta(self.config, built.trainer.env)
        self.mgr, self.logs, self.interrupted = None, None, None
        self.env_steps = 0  # of the newest record
        self.guard = stall.StallGuard(self.stalled, options.stall_timeout)
        self.stop = signals.StopSignals() if jax.process_count() == 1 else contextlib.nullcontext(None)

    def train(self) -> dict:
        from hipi_jax import loggers as loggers_lib
        from hipi_jax import report

        config, out = self.config, self.out
        self.barrier("options checked")
        if self.options.resume:
            start = self.restore()
            if start[1] == config.num_chunks:  # stopped between its final checkpoint and its last files
                return _finish(config, out, self.meta, start[0], self.lead)
        else:
            start = self.clear()
        if self.lead:
            report.write_json(out / "config.json", config.to_dict())
            # metrics.jsonl and metrics.csv, then --logger's choices; only process 0 logs
            resume_step = self.env_steps if start is not None else None
            self.logs = loggers_lib.open_loggers(("jsonl", "csv", *self.options.loggers), out, config, resume_step)
        sweep = f", sweep {config.sweep}" if config.sweep else ""
        log.info(
            "%s / %s, %d seed(s)%s, writing %s", config.run.env, config.relabel.strategy, config.run.seeds, sweep, out
        )
        progress = self.options.progress and self.lead
        try:
            with self.stop, self.guard:
                summary, _ = loop(self.built, self.record, start=start, progress=progress, after_chunk=self.after)
        except BaseException:
            self.close(failed=True)
            raise
        if self.interrupted is not None:
            self.close(failed=True)
            raise self.interrupted
        self.close(failed=False)
        if config.sweep_axis is not None:
            summary["runs"] = config.run_table()
        if self.lead:
            report.write_json(out / "summary.json", summary)
        log.info("done in %.0f s; final eval_return per run %s", summary["wall_s"], summary["eval_return"])
        return summary

    def restore(self) -> tuple:
        """(state, chunks done) of the newest usable checkpoint, unusable ones moved aside; ValueError when
        there is none, or when the run is complete (its final checkpoint and summary.json written)."""
        from hipi_jax import checkpoint, programs

        config, out = self.config, self.out
        self.mgr = checkpoint.manager(out / "checkpoints", self.options.keep)
        check = lambda saved: check_same(saved, config, "the newest checkpoint")  # noqa: E731
        restored = checkpoint.restore_latest(self.mgr, self.built.programs.like, check)
        if restored is None:
            raise ValueError(f"--resume: no usable checkpoint in {out / 'checkpoints'}")
        state, saved, unusable = restored
        if self.lead and (aside := checkpoint.move_aside(self.mgr, unusable)) is not None:
            log.warning("moved the unusable checkpoint(s) %s to %s", ", ".join(map(str, unusable)), aside)
        self.barrier("unusable checkpoints moved")
        self.mgr.reload()
        done = saved["chunks_done"]
        if done == config.num_chunks and not (out / "summary.json").exists():  # stopped before its last files
            return state, done
        if done >= config.num_chunks:
            raise ValueError(f"--resume: the run in {out} already did its {done} chunks; raise --env-steps to train on")
        self.barrier("checkpoint restored")
        self.env_steps = int(programs.to_host(state.env_steps)[0])  # the loggers drop what came after it
        log.info("resuming %s after chunk %d (%d env steps)", out, done, self.env_steps)
        return state, done

    def clear(self) -> None:
        """Start afresh: the run directory's files of an earlier run removed, a checkpoint manager opened."""
        from hipi_jax import checkpoint, signals

        signals.leaving(
            "no checkpoint was written yet; rerun the same command"
            if self.options.ckpt_every
            else "no checkpoints are written with --ckpt-every 0; rerun the same command"
        )
        if self.lead:
            for name in RUN_FILES + STALE_FILES:
                (self.out / name).unlink(missing_ok=True)
            for name in RUN_DIRS:
                shutil.rmtree(self.out / name, ignore_errors=True)
        self.barrier("run directory cleared")
        if self.options.ckpt_every:
            self.mgr = checkpoint.manager(self.out / "checkpoints", self.options.keep)

    def record(self, rec: dict) -> None:
        self.env_steps = rec["env_steps"]
        if self.logs is not None:
            self.logs.log(rec)

    def stalled(self, waited: float) -> str:
        from hipi_jax import signals

        return (
            f"hipi-train: error: no progress for {waited:.0f} s after env step {self.env_steps} (the longest chunk "
            f"so far took {max(self.guard.gaps, default=0):.0f} s; --stall-timeout): the program is hung, as XLA's "
            f"CPU runtime can be (docs/reliability.md), and was stopped; {signals.leaves()}"
        )

    def after(self, done: int, state) -> bool:
        """After chunk `done`: the stall guard's beat, a checkpoint and policy when due; True (stop the loop)
        when a signal asked to stop before the last chunk."""
        from hipi_jax import checkpoint, policy, programs, signals

        every, last = self.options.ckpt_every, done == self.config.num_chunks
        stopping = getattr(self.stop, "signum", None) is not None
        self.guard.beat()
        if every and self.mgr is not None and (done % every == 0 or last or stopping):
            checkpoint.save(self.mgr, done, state, self.config.to_dict())
            signals.leaving(f"continue with hipi-train --resume --out {self.out} and the same options")
            self.guard.beat()
        elif not (last or stopping):
            return False
        # a policy beside every checkpoint and always at the end; to_host is a collective across processes
        steps, actor = int(programs.to_host(state.env_steps)[0]), programs.to_host(state.agent.actor_params)
        if self.lead:
            policy.save(self.out, actor, steps, self.meta)
        if stopping and not last:
            self.interrupted = Interrupted(self.stop.signum, steps, resumable=bool(every))
            return True
        return False

    def close(self, failed: bool) -> None:
        """Close the loggers and plot the curves; after a failure, a failure here is one warning line."""
        from hipi_jax import errors, report

        metrics = self.out / "metrics.jsonl"
        try:
            if self.logs is not None:
                self.logs.close()
            if self.lead and metrics.exists():
                records = rundir.read_jsonl(metrics)
                report.plot_curves(split_runs(records, self.config), self.out / "curves.png", title=self.config.run.env)
        except Exception as e:
            if not failed:
                raise
            log.warning("also failed to close the logs or plot the curves (%s)", errors.first_line(e))


def loop(built, log_record, *, start: tuple | None = None, progress: bool = True, after_chunk=None) -> tuple:
    """The host loop of a built run (`programs.build`): warm-up and a first evaluation record (unless
    resuming from `start` = (state, chunks done)), then every remaining chunk, its metrics checked for
    NaN or inf (`check_finite`) and its evaluation record passed to `log_record` (per-run lists, run r =
    value r // seeds, seed index r % seeds). `after_chunk(chunks_done, state)` runs after each chunk;
    True stops the loop there. Returns the summary and the final (run-batched) state."""
    import jax
    from tqdm.auto import tqdm

    from hipi_jax import programs, training

    config, place, compiled = built.config, built.placement, built.compiled
    done = 0 if start is None else start[1]
    if done >= config.num_chunks:
        raise ValueError(f"the run has done {done} of {config.num_chunks} chunks: nothing left to train")
    if start is None and compiled.warmup is None:
        raise ValueError("a fresh run needs the warm-up program: programs.build(config, warmup=True)")
    t_start = time.perf_counter()
    if start is None:
        state = built.programs.init(place.put_runs(training.run_keys(config)))
    else:
        state = jax.device_put(start[0], jax.tree.map(lambda x: x.sharding, built.programs.like))
    _log_layout(config, state, place)
    per_chunk = config.iterations_per_chunk * config.run.num_envs
    warmup_steps = config.warmup_iterations * config.run.num_envs
    bar = tqdm(total=config.total_env_steps, initial=warmup_steps + done * per_chunk if start is not None else 0,
               unit="step", disable=not progress, desc=f"{config.run.env}/{config.relabel.strategy}")  # fmt: skip
    if start is None:
        state = jax.block_until_ready(compiled.warmup(state))
        bar.update(warmup_steps)
        log_record(_record(built, state, 0, {}, t_start, _counts(state)))
    train_s, chunks_run, rec = 0.0, 0, None
    for i in range(done, config.num_chunks):
        t0 = time.perf_counter()
        state, metrics = compiled.chunk(state)
        metrics, counts = programs.to_host(metrics), _counts(state)
        train_s += time.perf_counter() - t0
        chunks_run += 1
        check_finite(metrics, counts["env_steps"])
        rec = _record(built, state, i + 1, metrics, t_start, counts)
        log_record(rec)
        stop = after_chunk is not None and after_chunk(i + 1, state)
        bar.update(per_chunk)
        bar.set_postfix(_shown(rec))
        if stop:
            break
    bar.close()
    return _summary(built, rec, t_start, train_s, chunks_run), state


def _counts(state) -> dict[str, int]:
    """The run's env steps and updates (the same in every run), on the host."""
    from hipi_jax import programs

    counts = programs.to_host({"env_steps": state.env_steps, "updates": state.updates})
    return {k: int(v[0]) for k, v in counts.items()}


def _log_layout(config: TrainConfig, state, place) -> None:
    import jax

    from hipi_jax import buffer

    mesh = dict(place.mesh.shape)
    log.info(
        "replay buffer: %d run(s) x %d envs x %d steps = %.1f MiB on %d %s device(s) (%d for runs x %d for envs)",
        config.runs, config.run.num_envs, config.capacity_per_env, buffer.nbytes(state.buffer) / 2**20, place.devices,
        jax.devices()[0].platform, mesh["runs"], mesh["envs"],
    )  # fmt: skip
    log.info("budget: %s", config.budget_text)


def _record(built, state, log_index: int, train_metrics: dict, t_start: float, counts: dict[str, int]) -> dict:
    """The evaluation record at log point `log_index` (0: after the warm-up), at `counts` (`_counts`)."""
    from hipi_jax import programs, training

    config, place = built.config, built.placement
    keys = training.per_run(config, training.eval_keys(config.run.seed, config.run.seeds, log_index))
    ev = programs.to_host(built.compiled.evaluate(state.agent.actor_params, place.put_runs(keys)))
    rec = {
        **counts,
        "wall_s": round(time.perf_counter() - t_start, 3),
        "eval_return": ev["eval_return"].tolist(),
    }
    if built.trainer.env.task_family.has_success:
        rec["eval_success"] = ev["eval_success"].tolist()
    rec.update({k: v.tolist() for k, v in train_metrics.items()})
    return rec


def _shown(rec: dict) -> dict:
    import numpy as np

    shown = {"return": f"{np.mean(rec['eval_return']):.1f}"}
    if "eval_success" in rec:
        shown["success"] = f"{np.mean(rec['eval_success']):.2f}"
    return shown


def _summary(built, rec: dict, t_start: float, train_s: float, chunks_run: int) -> dict:
    """The run's final figures and the throughput of its compiled chunks (all runs together, warm-up and
    evaluation excluded)."""
    config = built.config
    per_chunk = config.iterations_per_chunk * config.run.num_envs
    updates = config.iterations_per_chunk * config.updates_per_iteration
    summary = {k: v for k, v in rec.items() if k in ("env_steps", "updates", "eval_return", "eval_success")}
    summary.update(
        wall_s=round(time.perf_counter() - t_start, 3),
        compile_s=round(built.compiled.seconds, 3),
        train_s=round(train_s, 3),
        env_steps_per_s=round(config.runs * chunks_run * per_chunk / train_s, 1),
        updates_per_s=round(config.runs * chunks_run * updates / train_s, 1),
    )
    return summary


def check_finite(metrics: dict, env_steps: int) -> None:
    """Raise errors.NonFiniteError for the first metric (host arrays, one value per run) that is NaN or inf."""
    import numpy as np

    from hipi_jax.errors import NonFiniteError

    for name, values in metrics.items():
        finite = np.isfinite(np.asarray(values))
        if not finite.all():
            run = int(np.argmin(finite.reshape(-1)))
            raise NonFiniteError(f"non-finite {name} at env step {env_steps} (run index {run}); training stopped")


def _finish(config: TrainConfig, out: Path, meta: dict, state, lead: bool) -> dict:
    """Write the last files of a run stopped between its final checkpoint and them (the final policy,
    curves.png, summary.json) from that checkpoint and metrics.jsonl; the summary's timings are the
    records' (`wall_s`), the throughput figures of the lost process are not known."""
    from hipi_jax import policy, programs, report

    steps, actor = int(programs.to_host(state.env_steps)[0]), programs.to_host(state.agent.actor_params)
    path = out / "metrics.jsonl"
    records = rundir.read_jsonl(path) if path.exists() else []
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
        report.plot_curves(split_runs(records, config), out / "curves.png", title=config.run.env)
        report.write_json(out / "summary.json", summary)
    return summary


def split_runs(records: list[dict], config: TrainConfig) -> dict[str, list[dict]]:
    """Learning-curve records per sweep value (label -> records over that value's seeds)."""
    label = f"{config.relabel.strategy} ({config.run.seeds} seed{'s' if config.run.seeds > 1 else ''})"
    if config.sweep_axis is None:
        return {label: records}
    name, values = config.sweep_axis
    s = config.run.seeds
    part = lambda r, i: {k: x[i * s : (i + 1) * s] if isinstance(x, list) else x for k, x in r.items()}
    return {f"{name}={v:g}": [part(r, i) for r in records] for i, v in enumerate(values)}


def _barrier(name: str) -> None:
    from jax.experimental import multihost_utils

    multihost_utils.sync_global_devices(name)
