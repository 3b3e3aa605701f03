"""Where a run's evaluation records go: `open_loggers(names, out, config)` -> a `Logger` with `log(record)` and
`close()`. A record is one evaluation of runner.loop: env_steps, updates, wall_s and per-run lists (run r = sweep
value r // seeds, seed index r % seeds).

Loggers (names):
- `jsonl`: OUT/metrics.jsonl, one record a line (report.append_jsonl).
- `csv`: OUT/metrics.csv, one row per run per evaluation (report.csv_text), rewritten after every record.
- `tensorboard`: OUT/tensorboard/<run label>/, one event directory per run (labels `seed0`, or
  `learning_rate=0.001,seed1` in a sweep) so that TensorBoard overlays the seeds; scalars named as in
  metrics.jsonl (eval_return, critic_loss, ..., updates, wall_s) at global step env_steps.
  View with `tensorboard --logdir OUT/tensorboard`.
- `wandb` (`pip install 'hipi-jax[wandb]'`): one offline W&B run per hipi run, all in one group (the run
  directory's name, or $WANDB_RUN_GROUP) of project hipi-jax (or $WANDB_PROJECT), each named GROUP/<run label>
  and configured with the TrainConfig, its run index, seed index and swept value. This is what W&B users
  expect of seeds and sweeps: the UI groups runs into mean ± spread curves and groups or filters them by a
  config key (e.g. relabel_fraction), which per-run keys inside one W&B run would not allow. Metrics use
  env_steps as their x-axis (define_metric). Upload later with `wandb sync OUT/wandb/offline-run-*`.

Resume: `resume_step` = env_steps of the checkpoint, i.e. of the last record kept. The loggers then continue in
the same files: jsonl keeps the records up to resume_step; csv is rebuilt from them; TensorBoard opens a new
event file with purge_step = resume_step + 1, so TensorBoard drops the points an interrupted run logged after
the checkpoint; W&B cannot resume an offline run nor delete points, so OUT/wandb is rebuilt: fresh runs replay
the records of metrics.jsonl up to resume_step, then continue (one complete run per hipi run to sync).
Without resume_step a logger starts afresh: it removes what an earlier run left in its file or directory.
Only one process should log (the CLI's process 0).
"""

from __future__ import annotations

import importlib
import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Protocol

from hipi_jax import report, rundir

if TYPE_CHECKING:
    from hipi_jax.config import TrainConfig

LOGGERS = ("tensorboard", "wandb")  # the optional ones (hipi-train --logger); the CLI always writes jsonl and csv
NAMES = ("jsonl", "csv", *LOGGERS)
METRICS_JSONL, METRICS_CSV, TENSORBOARD_DIR, WANDB_DIR = "metrics.jsonl", "metrics.csv", "tensorboard", "wandb"
_INSTALL = {"tensorboard": ("tensorboardX", "tensorboardX"), "wandb": ("wandb", "'hipi-jax[wandb]'")}


class Logger(Protocol):
    def log(self, record: dict) -> None: ...

    def close(self) -> None: ...


class Loggers:
    """Several loggers as one (none: logs nothing); a context manager that closes them."""

    def __init__(self, loggers: Sequence[Logger] = ()):
        self.loggers = list(loggers)

    def log(self, record: dict) -> None:
        for logger in self.loggers:
            logger.log(record)

    def close(self) -> None:
        """Close every logger, then raise the first error any raised."""
        errors = []
        for logger in self.loggers:
            try:
                logger.close()
            except Exception as e:  # noqa: BLE001 (the others must still close)
                errors.append(e)
        self.loggers = []
        if errors:
            raise errors[0]

    def __enter__(self) -> Loggers:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def run_labels(config: TrainConfig) -> list[str]:
    """Each run's label: `seed{s}`, or `{name}={value},seed{s}` when `config` sweeps."""
    labels = []
    for run in config.run_table():
        sweep = [f"{k}={_number(v)}" for k, v in run.items() if k not in ("run", "seed_index")]
        labels.append(",".join([*sweep, f"seed{run['seed_index']}"]))
    return labels


def _number(v: float) -> str:
    return f"{v:g}" if float(f"{v:g}") == v else repr(v)


def check(names: Sequence[str]) -> dict[str, ModuleType]:
    """The modules the named loggers need; ValueError (one line) for an unknown name or a missing package."""
    modules = {}
    for name in names:
        if name not in NAMES:
            raise ValueError(f"unknown logger {name!r}; valid: {', '.join(NAMES)}")
        if name in _INSTALL:
            module, package = _INSTALL[name]
            try:
                modules[name] = importlib.import_module(module)
            except ImportError:
                raise ValueError(f"the {name} logger needs {module}: pip install {package}") from None
    return modules


def open_loggers(names: Sequence[str], out: Path, config: TrainConfig, resume_step: int | None = None) -> Loggers:
    """The named loggers (of NAMES) writing under the run directory `out`, as one; resuming after the record
    at env_steps = `resume_step` when given, else starting afresh (see the module docstring). Checks every
    name and package before it touches `out`."""
    names = list(dict.fromkeys(names))
    modules = check(names)
    if resume_step is not None and resume_step < 0:
        raise ValueError(f"resume_step={resume_step} must be >= 0")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    history = _history(out, resume_step) if {"jsonl", "csv", "wandb"} & set(names) else []
    opened = Loggers()
    try:
        for name in names:
            if name == "jsonl":
                opened.loggers.append(JsonlLogger(out / METRICS_JSONL, history, resume_step))
            elif name == "csv":
                opened.loggers.append(CsvLogger(out / METRICS_CSV, config, history))
            elif name == "tensorboard":
                opened.loggers.append(TensorBoardLogger(out / TENSORBOARD_DIR, config, resume_step))
            else:
                opened.loggers.append(WandbLogger(modules["wandb"], out, config, history))
    except BaseException:
        opened.close()
        raise
    return opened


def _history(out: Path, resume_step: int | None) -> list[dict]:
    """The records of OUT/metrics.jsonl up to env_steps = resume_step (none without resume_step)."""
    path = out / METRICS_JSONL
    if resume_step is None:
        return []
    records = rundir.read_jsonl(path) if path.exists() else []
    for number, r in enumerate(records, start=1):
        if not isinstance(r, dict) or not isinstance(r.get("env_steps"), int):
            raise ValueError(f"--resume: record {number} of {path} is not a training record (no env_steps): {r!r}")
    history = [r for r in records if r["env_steps"] <= resume_step]
    if not history or history[-1]["env_steps"] != resume_step:
        logging.getLogger("hipi_jax").warning(
            "%s holds no record at the checkpoint's env step %d (%s): the records before it are lost, and "
            "metrics.csv and curves.png start again after it",
            path, resume_step, "missing" if not path.exists() else f"{len(history)} record(s) up to it",
        )  # fmt: skip
    return history


class JsonlLogger:
    """metrics.jsonl: the records up to the checkpoint (on resume), then one line per record."""

    def __init__(self, path: Path, history: list[dict], resume_step: int | None):
        self.path = path
        if resume_step is None:
            path.unlink(missing_ok=True)
        else:
            report.write_jsonl(path, history)

    def log(self, record: dict) -> None:
        report.append_jsonl(self.path, record)

    def close(self) -> None:
        pass


class CsvLogger:
    """metrics.csv, rebuilt from every record so far after each one (a new metric adds a column)."""

    def __init__(self, path: Path, config: TrainConfig, history: list[dict]):
        self.path, self.config, self.records = path, config, list(history)
        if self.records:
            report.write_csv(path, self.records, config)
        else:
            path.unlink(missing_ok=True)

    def log(self, record: dict) -> None:
        self.records.append(record)
        report.write_csv(self.path, self.records, self.config)

    def close(self) -> None:
        pass


def _run_values(record: dict, run: int) -> dict[str, float | int]:
    """Run `run`'s numbers of `record`: its entry of each per-run list and the run-wide numbers."""
    values = {}
    for k, v in record.items():
        x = v[run] if isinstance(v, list) else v
        if isinstance(x, int | float) and not isinstance(x, bool):
            values[k] = x
    return values


class TensorBoardLogger:
    """One tensorboardX SummaryWriter per run under `root`/<run label>, global step = env_steps."""

    def __init__(self, root: Path, config: TrainConfig, resume_step: int | None):
        from tensorboardX import SummaryWriter

        if resume_step is None:
            shutil.rmtree(root, ignore_errors=True)
            purge, suffix = None, ""
        else:  # TensorBoard drops the points of earlier files at steps >= purge_step; the suffix keeps this
            # file sorting after (and distinct from) one opened in the same second
            purge, suffix = resume_step + 1, f".resume{resume_step:015d}"
        self.writers = [
            SummaryWriter(str(root / label), purge_step=purge, filename_suffix=suffix) for label in run_labels(config)
        ]

    def log(self, record: dict) -> None:
        step = record["env_steps"]
        for r, writer in enumerate(self.writers):
            for k, x in _run_values(record, r).items():
                if k != "env_steps":
                    writer.add_scalar(k, x, global_step=step)
            writer.flush()

    def close(self) -> None:
        for writer in self.writers:
            writer.close()


class WandbLogger:
    """One offline W&B run per hipi run (see the module docstring); rebuilds OUT/wandb on every open."""

    def __init__(self, wandb: ModuleType, out: Path, config: TrainConfig, history: list[dict]):
        shutil.rmtree(out / WANDB_DIR, ignore_errors=True)
        (out / WANDB_DIR).mkdir()
        group = os.environ.get("WANDB_RUN_GROUP") or out.resolve().name
        project = os.environ.get("WANDB_PROJECT") or "hipi-jax"
        self.runs = []
        try:
            self._init(wandb, out, config, group, project)
        except BaseException:
            self.close()
            raise
        for record in history:
            self.log(record)

    def _init(self, wandb: ModuleType, out: Path, config: TrainConfig, group: str, project: str) -> None:
        for run, label in zip(config.run_table(), run_labels(config), strict=True):
            self.runs.append(
                wandb.init(
                    project=project,
                    group=group,
                    name=f"{group}/{label}",
                    job_type="train",
                    config={**config.options(), **run},  # the swept value replaces the option's
                    dir=str(out),
                    mode="offline",
                    reinit="create_new",  # several runs at once in this process (wandb >= 0.19.10)
                    settings=wandb.Settings(console="off"),  # the console is the process's, not a run's
                )
            )
            self.runs[-1].define_metric("env_steps")
            self.runs[-1].define_metric("*", step_metric="env_steps")

    def log(self, record: dict) -> None:
        for r, run in enumerate(self.runs):
            run.log(_run_values(record, r))

    def close(self) -> None:
        for run in self.runs:
            run.finish()
        self.runs = []
